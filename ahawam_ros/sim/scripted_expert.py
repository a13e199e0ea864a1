"""
Scripted demonstrations: plan gripper waypoints, roll out with mocap, replay joint commands.

An episode is made in three passes over the same seed:

1. plan keyframes of both tool points (pose and gripper opening) from the object poses
   (`ahawam_ros.sim.expert_plans`);
2. roll the plan out in the end-effector (mocap) scene and record the joint positions it
   produces: these become the joint commands (the grippers take the planned openings);
3. replay the commands in the joint-position scene (`AlohaSim`), first without cameras to
   check success, then, for successful seeds only, with the cameras to record the episode.

Two changes to the mocap scene (only there: the recorded physics is the stock joint scene):
the welds are stiffened (impedance 0.95 instead of gym-aloha's 0.25), because with the stock
welds the joints' friction leaves the grippers centimetres and tenths of radians off target;
and weak springs pull forearm_roll and wrist_rotate towards 0, because without them the weld
often resolves the first reorientation by flipping both by about pi (a "wrist-flipped" arm,
beyond the joint limits), which makes the demonstrations bimodal.

Noise injection (DART, `action_noise`): the replayed commands are the expert's plus smooth
random noise on the arm joints (an Ornstein-Uhlenbeck process with standard deviation
`action_noise` rad and time constant `NOISE_TIME_CONSTANT`), while the recorded action labels
stay the clean commands. The arm then visits states off the nominal path, labelled with the
command that leads back to it: the corrective data that compounding error needs.
"""

import dataclasses
from typing import List, Optional

from ahawam_ros.robot import ARMS, CONTROL_RATE_HZ, JOINT_LOWER, JOINT_NAMES, JOINT_UPPER
from ahawam_ros.sim.aloha_env import AlohaSim, Observation, SimConfig
from ahawam_ros.sim.episode import SimEpisode
from ahawam_ros.sim.expert_plans import make_plan
from ahawam_ros.sim.mocap_sim import MocapSim
from ahawam_ros.sim.tasks import get_task
import mujoco
import numpy as np

WELD_IMPEDANCE = 0.95
POSTURE_STIFFNESS = 10.0  # N m / rad on forearm_roll and wrist_rotate, towards 0
POSTURE_JOINTS = ('forearm_roll', 'wrist_rotate')
NOISE_TIME_CONSTANT = 0.4  # s, correlation time of the injected command noise
GRIPPER_INDICES = (6, 13)  # the grippers get no injected noise


def command_noise(seed: int, steps: int, sigma: float,
                  control_rate_hz: float = CONTROL_RATE_HZ) -> np.ndarray:
    """
    Return (steps, A) smooth noise for the arm joints of episode `seed` (grippers 0).

    An Ornstein-Uhlenbeck process per joint, stationary standard deviation `sigma` rad,
    correlation time `NOISE_TIME_CONSTANT`, starting from its stationary distribution;
    deterministic given the seed.
    """
    noise = np.zeros((steps, len(JOINT_NAMES)))
    if sigma <= 0.0:
        return noise
    rng = np.random.default_rng((seed, 0xDA27))
    decay = float(np.exp(-1.0 / (control_rate_hz * NOISE_TIME_CONSTANT)))
    kicks = rng.normal(size=noise.shape) * sigma
    noise[0] = kicks[0]
    for t in range(1, steps):
        noise[t] = decay * noise[t - 1] + np.sqrt(1.0 - decay ** 2) * kicks[t]
    noise[:, list(GRIPPER_INDICES)] = 0.0
    return noise


def _tune_mocap_scene(model: mujoco.MjModel) -> None:
    """Stiffen the mocap welds and add the posture springs (see the module docstring)."""
    model.eq_solimp[:, :2] = WELD_IMPEDANCE
    for arm in ARMS:
        for joint in POSTURE_JOINTS:
            index = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, f'vx300s_{arm}/{joint}')
            model.jnt_stiffness[index] = POSTURE_STIFFNESS
            model.qpos_spring[model.jnt_qposadr[index]] = 0.0


class ScriptedExpert:
    """
    Generates expert episodes for one SimConfig, reusing its simulators between seeds.

    Parameters
    ----------
    config : SimConfig
        Task, cameras, image size and episode length of the recorded episodes.

    """

    def __init__(self, config: SimConfig) -> None:
        """Create the mocap scene and the joint scenes (without and with cameras)."""
        self.config = config
        self._mocap = MocapSim(get_task(config.task))
        _tune_mocap_scene(self._mocap.model)
        self._check = AlohaSim(dataclasses.replace(config, cameras=()))
        self._sim = AlohaSim(config)

    def joint_commands(self, seed: int) -> np.ndarray:
        """Plan and roll out the mocap expert for `seed`; return float64 (T, A) commands."""
        self._mocap.reset(seed, self.config.placement_margin)
        plan = make_plan(self.config.task, self._mocap)
        commands = np.empty((self.config.episode_len, len(JOINT_NAMES)))
        for step in range(self.config.episode_len):
            left, right, grippers = plan.targets(step + 1)
            self._mocap.step(left, right, grippers)
            commands[step] = self._mocap.joint_positions()
            commands[step, [6, 13]] = grippers  # the commanded, not the measured, opening
        # The mocap scene's joint limits are soft: keep the commands inside the robot's.
        return np.clip(commands, JOINT_LOWER, JOINT_UPPER)

    def replay_succeeds(self, seed: int, commands: np.ndarray) -> bool:
        """Replay `commands` in the joint scene without cameras; True if the task succeeds."""
        self._check.reset(seed)
        # Every command is applied (no early exit), exactly as `record` will replay them.
        successes = [self._check.step(action).success for action in commands]
        return any(successes)

    def record(self, seed: int, commands: np.ndarray,
               labels: Optional[np.ndarray] = None) -> SimEpisode:
        """
        Replay `commands` in the joint scene with the cameras and return the episode.

        The episode's actions are `labels` when given (the clean commands of a noisy replay),
        else `commands`.
        """
        observations: List[Observation] = [self._sim.reset(seed)]
        for action in commands[:-1]:
            observations.append(self._sim.step(action))
        final = self._sim.step(commands[-1])
        return SimEpisode(
            task=self.config.task, seed=seed,
            success=bool(final.success or any(o.success for o in observations)),
            images={cam: np.stack([o.images[cam] for o in observations])
                    for cam in self.config.cameras},
            qpos=np.stack([o.qpos for o in observations]),
            qvel=np.stack([o.qvel for o in observations]),
            actions=np.array(commands if labels is None else labels, dtype=np.float64),
            reward=np.array([o.reward for o in observations]),
            time=np.array([o.time for o in observations]),
            object_pose=np.stack([o.object_pose for o in observations]))

    def episode(self, seed: int, action_noise: float = 0.0) -> Optional[SimEpisode]:
        """
        Return the recorded episode of `seed`, or None when the replay fails the task.

        With `action_noise` > 0 the replayed commands carry `command_noise` and the episode's
        actions are the clean commands (DART, see the module docstring).
        """
        labels = self.joint_commands(seed)
        noise = command_noise(seed, len(labels), action_noise)
        commands = np.clip(labels + noise, JOINT_LOWER, JOINT_UPPER)
        if not self.replay_succeeds(seed, commands):
            return None
        return self.record(seed, commands, labels if action_noise > 0 else None)

    def close(self) -> None:
        """Release the renderers."""
        self._sim.close()
        self._check.close()

    def __enter__(self) -> 'ScriptedExpert':
        """Return self; the renderers are released on exit."""
        return self

    def __exit__(self, *exc_info) -> None:
        """Release the renderers."""
        self.close()


def generate_episode(task: str, seed: int,
                     sim_config: Optional[SimConfig] = None) -> Optional[SimEpisode]:
    """
    Generate one scripted episode of `task` for `seed`, or None if the expert fails.

    Parameters
    ----------
    task : str
        'transfer_cube' or 'insertion' (overrides `sim_config.task`).
    seed : int
        Object placement seed.
    sim_config : SimConfig, optional
        Cameras, image size and episode length (defaults: SimConfig()).

    """
    config = dataclasses.replace(sim_config or SimConfig(), task=task)
    with ScriptedExpert(config) as expert:
        return expert.episode(seed)
