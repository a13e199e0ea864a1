"""
The first grasp attempt of an episode and how far the gripper was from the object then.

A grasp attempt is a control step whose gripper command falls below `CLOSING` (normalised
opening: 0 closed, 1 open) after the previous command of that gripper was at or above it; the
grippers start nearly closed, so an attempt needs an opening first. The distance is taken
from the simulator's state at that step: the midpoint of the gripper's two fingertips to the
centre of the nearest of the task's objects (TransferCube's cube; Insertion's peg or socket,
one per arm), in metres. Each arm's first attempt is measured (`first_grasp_distances_m`) and
the episode's figure is the nearer of the two: a stray early closing of the arm that is not
picking must not hide how close the picking arm came. It tells a policy that closes on air
beside the cube (cube-blind, a few cm off) from one that closes on it (the scripted expert:
1.7 cm, its tips beside the cube's centre).
"""

import math
from typing import Any, Dict, Optional

from ahawam_ros.robot import ARMS, JOINT_NAMES
from ahawam_ros.sim.episode import OBJECT_POSE_SIZE, object_positions
import numpy as np

CLOSING = 0.5  # normalised opening below which a command closes the gripper
GRIPPERS = tuple(JOINT_NAMES.index(f'{arm}_gripper') for arm in ARMS)  # command columns
_FINGER_GEOMS = ('vx300s_{arm}/10_left_gripper_finger', 'vx300s_{arm}/10_right_gripper_finger')


def fingertip_midpoint(model: Any, data: Any, arm: str) -> np.ndarray:
    """
    Return the (3,) world position midway between the fingertips of `arm` (m).

    A fingertip is the end of the finger pad's bounding box along its longest axis, on the
    side away from the gripper body: the pads' centres sit about 5 cm above the tips.
    """
    import mujoco
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name.format(arm=arm))
           for name in _FINGER_GEOMS]
    if min(ids) < 0:
        raise ValueError(f'the scene has no finger pads of the {arm} arm')
    tips = []
    for index in ids:
        rotation = data.geom_xmat[index].reshape(3, 3)  # geom frame -> world
        centre = data.geom_xpos[index] + rotation @ model.geom_aabb[index][:3]
        axis = int(np.argmax(model.geom_aabb[index][3:]))  # the finger's length
        reach = rotation[:, axis] * model.geom_aabb[index][3 + axis]  # (3,) centre -> end
        palm = data.xpos[model.geom_bodyid[index]]  # the finger link's origin, at the palm
        sign = 1.0 if np.dot(reach, centre - palm) >= 0.0 else -1.0
        tips.append(centre + sign * reach)
    return np.mean(tips, axis=0)


class FirstGrasp:
    """
    Watches an episode's commands for each arm's first grasp attempt; measures it then.

    Call `update` once per control step with the command sent at the observation of that
    step, before the simulator steps; read `summary()` at the end.
    """

    def __init__(self, closing: float = CLOSING):
        self.closing = closing
        self.previous: Optional[np.ndarray] = None  # (2,) last gripper commands
        self.steps = {arm: -1 for arm in ARMS}
        self.distances = {arm: math.nan for arm in ARMS}
        self.offsets: Dict[str, Optional[list]] = dict.fromkeys(ARMS)  # tip - object

    def update(self, index: int, command: np.ndarray, observation: Any, env: Any) -> None:
        """
        Check step `index`'s (A,) command; at an arm's first attempt, measure `env`'s state.

        `env` needs MuJoCo `model` and `data` and the observation an `object_pose`; without
        them the attempt is still found and its distance stays NaN.
        """
        grippers = np.asarray(command, dtype=np.float64)[list(GRIPPERS)]  # (2,)
        previous, self.previous = self.previous, grippers
        if previous is None:
            return
        closing = (previous >= self.closing) & (grippers < self.closing)
        for arm, closes in zip(ARMS, closing):
            if closes and self.steps[arm] < 0:
                self.steps[arm] = index
                offset = self._offset(arm, observation, env)
                if offset is not None:
                    self.distances[arm] = float(np.linalg.norm(offset))
                    self.offsets[arm] = [float(v) for v in offset]

    @staticmethod
    def _offset(arm: str, observation: Any, env: Any) -> Optional[np.ndarray]:
        """Return the (3,) fingertip midpoint minus the nearest object's centre, else None."""
        pose = getattr(observation, 'object_pose', None)
        model, data = getattr(env, 'model', None), getattr(env, 'data', None)
        if pose is None or len(pose) < 3 or model is None or data is None:
            return None
        pose = np.asarray(pose, dtype=np.float64)
        centres = object_positions(pose[:len(pose) // OBJECT_POSE_SIZE * OBJECT_POSE_SIZE])
        if not len(centres):  # a bare position
            centres = pose[None, :3]
        offsets = fingertip_midpoint(model, data, arm)[None] - centres  # (objects, 3)
        return offsets[int(np.argmin(np.linalg.norm(offsets, axis=1)))]

    def summary(self) -> Dict[str, Any]:
        """
        Return the nearer arm's first attempt: step (-1: none), arm ('' if none), distance (m).

        'first_grasp_steps' holds every arm's first attempt step (-1: none) and
        'first_grasp_distances_m' its distance (NaN: none, or not measured) and
        'first_grasp_offsets_m' the (3,) world vector object centre -> fingertips (None).
        """
        attempted = [arm for arm in ARMS if self.steps[arm] >= 0]

        def order(arm: str) -> tuple:  # measured first, nearest first, then earliest
            distance = self.distances[arm]
            return math.isnan(distance), 0.0 if math.isnan(distance) else distance, self.steps[arm]

        arm = min(attempted, default='', key=order)
        return {'first_grasp_step': self.steps.get(arm, -1), 'first_grasp_arm': arm,
                'first_grasp_distance_m': self.distances.get(arm, math.nan),
                'first_grasp_steps': dict(self.steps),
                'first_grasp_distances_m': dict(self.distances),
                'first_grasp_offsets_m': dict(self.offsets)}
