"""
A plain Python environment over gym-aloha's bimanual MuJoCo scenes (joint position control).

The scenes, objects and reward are gym-aloha's; the physics is driven directly through the
`mujoco` bindings (the same engine dm_control wraps) so that only the configured cameras are
rendered, at the configured size, with shadows and multisampling off. `MUJOCO_GL` defaults to
egl (set by `ahawam_ros.sim` before MuJoCo is imported).

Units and order follow `ahawam_ros.robot`: 14 joints, left arm then right arm, radians for the
arm joints, grippers normalised 0 (closed) .. 1 (open) as in gym-aloha.
"""

import dataclasses
from typing import Dict, Optional, Tuple

from ahawam_ros.robot import ACTION_DIM, CONTROL_RATE_HZ, JOINT_NAMES
from ahawam_ros.sim.renderer import TiledRenderer
from ahawam_ros.sim.tasks import (check_placement_margin, get_task, MAX_REWARD,
                                  object_qpos_slices, placement_poses, TASKS)
from gym_aloha.constants import (
    PUPPET_GRIPPER_POSITION_CLOSE, PUPPET_GRIPPER_POSITION_OPEN, START_ARM_POSE)
import mujoco
import numpy as np

CONTROL_PERIOD = 1.0 / CONTROL_RATE_HZ  # s, one control step
SCENE_CAMERAS: Tuple[str, ...] = (
    'top', 'angle', 'front_close', 'left_pillar', 'right_pillar', 'left_wrist', 'right_wrist')
GRIPPER_SPAN = PUPPET_GRIPPER_POSITION_OPEN - PUPPET_GRIPPER_POSITION_CLOSE  # m, 0 -> 1
# Raw MuJoCo qpos of the arms: per arm 6 joints then the two finger slides (16 in all).
ARM_QPOS = 16
_ARM_RAW = (slice(0, 6), slice(8, 14))  # the six arm joints of each arm in raw qpos
_FINGER_RAW = (6, 14)  # the left finger slide of each gripper in raw qpos


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """
    What to simulate and what to render.

    Attributes
    ----------
    task : str
        'transfer_cube' or 'insertion'.
    cameras : tuple of str
        Cameras rendered each step (V), a subset of SCENE_CAMERAS; empty renders nothing.
    image_height, image_width : int
        Size of every rendered image (H, W).
    seed : int
        Seeds the episode seeds drawn when `reset()` is called without one.
    episode_len : int
        Control steps of one episode (the expert's length and the evaluation horizon).
    placement_margin : float
        0: objects placed by gym-aloha's samplers (evaluations). > 0 (m): each object's box
        widened by this on every side (`tasks.placement_poses`; demonstrations only).

    """

    task: str = 'transfer_cube'
    cameras: Tuple[str, ...] = ('top', 'left_wrist', 'right_wrist')
    image_height: int = 120
    image_width: int = 160
    seed: int = 0
    episode_len: int = 400
    placement_margin: float = 0.0

    def __post_init__(self) -> None:
        """Validate every field; a bad one raises ValueError naming it."""
        if self.task not in TASKS:
            raise ValueError(f'SimConfig.task: unknown task {self.task!r}; '
                             f'known: {sorted(TASKS)}')
        object.__setattr__(self, 'cameras', tuple(self.cameras))
        unknown = [c for c in self.cameras if c not in SCENE_CAMERAS]
        if unknown or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f'SimConfig.cameras: {self.cameras!r} must be distinct names '
                             f'from {SCENE_CAMERAS}')
        for name in ('image_height', 'image_width'):
            value = getattr(self, name)
            if not isinstance(value, int) or not 8 <= value <= 2048:
                raise ValueError(f'SimConfig.{name}: {value!r} is not an int in [8, 2048]')
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f'SimConfig.seed: {self.seed!r} is not a non-negative int')
        if not isinstance(self.episode_len, int) or self.episode_len < 1:
            raise ValueError(f'SimConfig.episode_len: {self.episode_len!r} is not a positive int')
        try:
            check_placement_margin(self.placement_margin)
        except ValueError as exc:
            raise ValueError(f'SimConfig.{exc}') from None


SIM_PRESETS: Dict[str, SimConfig] = {
    'transfer_cube': SimConfig(),
    'insertion': SimConfig(task='insertion'),
    'transfer_cube_top': SimConfig(cameras=('top',)),
}


def sim_preset(name: str) -> SimConfig:
    """Return the named SimConfig preset, or raise listing the valid names."""
    if name not in SIM_PRESETS:
        raise ValueError(f'unknown sim preset {name!r}; valid: {", ".join(SIM_PRESETS)}')
    return SIM_PRESETS[name]


@dataclasses.dataclass
class Observation:
    """
    What the simulator shows after a reset or a step.

    Attributes
    ----------
    images : dict of str to numpy.ndarray
        camera -> uint8 (H, W, 3) RGB, one per configured camera.
    qpos : numpy.ndarray
        float64 (A,) joint positions in JOINT_NAMES order (A = 14).
    qvel : numpy.ndarray
        float64 (A,) joint velocities (rad/s; grippers in normalised units per s).
    object_pose : numpy.ndarray
        float64 (7 * n_objects,) privileged object poses: position and wxyz quaternion each.
    reward : float
        Staged task reward in 0..4.
    success : bool
        True when the reward is the task's maximum.
    time : float
        Simulation time in s (0 after a reset).
    step : int
        Control steps since the reset.

    """

    images: Dict[str, np.ndarray]
    qpos: np.ndarray
    qvel: np.ndarray
    object_pose: np.ndarray
    reward: float
    success: bool
    time: float
    step: int


def gripper_to_finger(normalised: np.ndarray) -> np.ndarray:
    """Map normalised gripper openings (0 closed .. 1 open) to finger slide positions (m)."""
    return PUPPET_GRIPPER_POSITION_CLOSE + np.asarray(normalised) * GRIPPER_SPAN


def finger_to_gripper(finger: np.ndarray) -> np.ndarray:
    """Map finger slide positions (m) to normalised gripper openings (0 closed .. 1 open)."""
    return (np.asarray(finger) - PUPPET_GRIPPER_POSITION_CLOSE) / GRIPPER_SPAN


def joint_state(data: mujoco.MjData) -> Tuple[np.ndarray, np.ndarray]:
    """Return the (A,) joint positions and (A,) velocities of `data` in JOINT_NAMES order."""
    qpos, qvel = np.empty(ACTION_DIM), np.empty(ACTION_DIM)
    for arm, (joints, finger) in enumerate(zip(_ARM_RAW, _FINGER_RAW)):
        qpos[arm * 7:arm * 7 + 6] = data.qpos[joints]
        qvel[arm * 7:arm * 7 + 6] = data.qvel[joints]
        qpos[arm * 7 + 6] = finger_to_gripper(data.qpos[finger])
        qvel[arm * 7 + 6] = data.qvel[finger] / GRIPPER_SPAN
    return qpos, qvel


def command_to_ctrl(action: np.ndarray) -> np.ndarray:
    """Map an (A,) joint command to the scene's 16 position actuators (fingers mirrored)."""
    ctrl = np.empty(ARM_QPOS)
    for arm, joints in enumerate(_ARM_RAW):
        ctrl[joints] = action[arm * 7:arm * 7 + 6]
        finger = gripper_to_finger(action[arm * 7 + 6])
        ctrl[joints.stop], ctrl[joints.stop + 1] = finger, -finger
    return ctrl


class AlohaSim:
    """
    The bimanual ALOHA scene under 50 Hz absolute joint position control.

    Parameters
    ----------
    config : SimConfig
        Task, cameras, image size and seeding.

    """

    def __init__(self, config: SimConfig) -> None:
        """Load the task's scene and set up the renderer of the configured cameras."""
        self.config = config
        self.task = get_task(config.task)
        self.model = mujoco.MjModel.from_xml_path(str(self.task.xml_path()))
        # Shadows (4096^2 maps) and multisampling dominate software rendering cost.
        self.model.vis.quality.shadowsize = 0
        self.model.vis.quality.offsamples = 0
        self.data = mujoco.MjData(self.model)
        self.substeps = int(round(CONTROL_PERIOD / self.model.opt.timestep))
        self._objects = object_qpos_slices(self.model, self.task)
        self._renderer: Optional[TiledRenderer] = None
        if config.cameras:
            self._renderer = TiledRenderer(self.model, config.cameras, config.image_height,
                                           config.image_width)
        self._seeds = np.random.default_rng(config.seed)
        self.episode_seed: Optional[int] = None
        self._step = 0

    @property
    def joint_names(self) -> Tuple[str, ...]:
        """Joint names of `qpos`, `qvel` and actions (JOINT_NAMES)."""
        return JOINT_NAMES

    def reset(self, seed: Optional[int] = None) -> Observation:
        """
        Start an episode: arms at the start pose, objects placed from `seed`.

        The same seed gives the same object poses and the same images. Without a seed one is
        drawn from the generator seeded by `config.seed`.
        """
        if seed is None:
            seed = int(self._seeds.integers(2 ** 31))
        self.episode_seed = seed
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:ARM_QPOS] = START_ARM_POSE
        self.data.ctrl[:] = START_ARM_POSE
        poses = placement_poses(self.task, seed, self.config.placement_margin)
        for index, qpos_slice in enumerate(self._objects):
            self.data.qpos[qpos_slice] = poses[index * 7:(index + 1) * 7]
        mujoco.mj_forward(self.model, self.data)
        self._step = 0
        return self._observe()

    def step(self, action: np.ndarray, render: bool = True) -> Observation:
        """
        Apply an (A,) absolute joint command for one control period (CONTROL_PERIOD s).

        The arm joints are in radians and the grippers normalised 0..1; the scene's actuator
        ranges clamp out-of-range commands. With `render` False the observation has no
        images (a camera slower than the control rate).
        """
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (ACTION_DIM,) or not np.all(np.isfinite(action)):
            raise ValueError(f'action must be a finite ({ACTION_DIM},) array, got {action!r}')
        if self.episode_seed is None:
            raise RuntimeError('call reset() before step()')
        self.data.ctrl[:] = command_to_ctrl(action)
        mujoco.mj_step(self.model, self.data, nstep=self.substeps)
        # Recompute positions and contacts for the new state: images and reward match qpos.
        mujoco.mj_forward(self.model, self.data)
        self._step += 1
        return self._observe(render)

    def render(self) -> Dict[str, np.ndarray]:
        """Render the configured cameras now: camera -> uint8 (H, W, 3)."""
        return self._renderer.render(self.data) if self._renderer else {}

    def _observe(self, render: bool = True) -> Observation:
        qpos, qvel = joint_state(self.data)
        reward = float(self.task.reward(self.model, self.data))
        poses = [self.data.qpos[s] for s in self._objects]
        return Observation(images=self.render() if render else {}, qpos=qpos, qvel=qvel,
                           object_pose=np.concatenate(poses), reward=reward,
                           success=reward >= MAX_REWARD, time=float(self.data.time),
                           step=self._step)

    def close(self) -> None:
        """Release the renderer (the physics needs no cleanup)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> 'AlohaSim':
        """Return self; the renderer is released on exit."""
        return self

    def __exit__(self, *exc_info) -> None:
        """Release the renderer."""
        self.close()
