"""
The end-effector (mocap) variant of the ALOHA scenes, used to script demonstrations.

In gym-aloha's `*_end_effector_*` scenes each gripper is welded to a mocap body; moving the
mocap bodies drags the arms along, and the finger actuators still take position commands.
The weld keeps the gripper at a fixed offset from its mocap body, so the mocap point is a
tool point about 2 cm short of the fingertips, centred between the fingers. Poses here are
those of the mocap bodies: position (3) and wxyz quaternion (4) in the world frame.
"""

from typing import Tuple

from ahawam_ros.sim.aloha_env import (
    ARM_QPOS, CONTROL_PERIOD, gripper_to_finger, joint_state)
from ahawam_ros.sim.tasks import object_qpos_slices, placement_poses, TaskSpec
from gym_aloha.constants import START_ARM_POSE
import mujoco
import numpy as np

ARM_SIDES = ('left', 'right')


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the wxyz quaternion product a * b."""
    out = np.empty(4)
    mujoco.mju_mulQuat(out, np.asarray(a, float), np.asarray(b, float))
    return out


def quat_conj(q: np.ndarray) -> np.ndarray:
    """Return the inverse of a unit wxyz quaternion."""
    out = np.empty(4)
    mujoco.mju_negQuat(out, np.asarray(q, float))
    return out


def quat_axis_angle(axis: Tuple[float, float, float], angle: float) -> np.ndarray:
    """Return the wxyz quaternion of a rotation by `angle` (rad) about `axis`."""
    out = np.empty(4)
    mujoco.mju_axisAngle2Quat(out, np.asarray(axis, float), angle)
    return out


def quat_rotate(q: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """Rotate the 3-vector `vec` by the wxyz quaternion `q`."""
    out = np.empty(3)
    mujoco.mju_rotVecQuat(out, np.asarray(vec, float), np.asarray(q, float))
    return out


def quat_slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Interpolate from `a` (t = 0) to `b` (t = 1) along the shortest great arc."""
    velocity = np.empty(3)
    mujoco.mju_subQuat(velocity, np.asarray(b, float), np.asarray(a, float))
    out = np.array(a, dtype=float)
    mujoco.mju_quatIntegrate(out, velocity, t)
    return out


class MocapSim:
    """
    Physics-only end-effector scene: mocap poses and gripper openings in, joint states out.

    Parameters
    ----------
    task : TaskSpec
        The task whose end-effector scene is loaded.

    """

    def __init__(self, task: TaskSpec) -> None:
        """Load the task's end-effector scene and read the welds' offsets."""
        self.task = task
        self.model = mujoco.MjModel.from_xml_path(str(task.xml_path(mocap=True)))
        self.data = mujoco.MjData(self.model)
        self.substeps = int(round(CONTROL_PERIOD / self.model.opt.timestep))
        self._objects = object_qpos_slices(self.model, task)
        # Weld of each side: gripper_pos = mocap_pos + R(mocap) relpos, gripper_q = mocap_q relq.
        self._grippers = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY,
                                            f'vx300s_{side}/gripper_link') for side in ARM_SIDES]
        self._rel_pos = [self.model.eq_data[i, 3:6].copy() for i in range(2)]
        self._rel_quat = [self.model.eq_data[i, 6:10].copy() for i in range(2)]

    def reset(self, seed: int, placement_margin: float = 0.0) -> None:
        """
        Start pose of the arms, objects placed from `seed`, mocap bodies on the grippers.

        `placement_margin` (m) as in `tasks.placement_poses`.
        """
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:ARM_QPOS] = START_ARM_POSE
        poses = placement_poses(self.task, seed, placement_margin)
        for index, qpos_slice in enumerate(self._objects):
            self.data.qpos[qpos_slice] = poses[index * 7:(index + 1) * 7]
        mujoco.mj_forward(self.model, self.data)
        for arm in range(2):
            pose = self.gripper_to_mocap(arm, self.data.xpos[self._grippers[arm]],
                                         self.data.xquat[self._grippers[arm]])
            self.data.mocap_pos[arm], self.data.mocap_quat[arm] = pose[:3], pose[3:]
        start_fingers = np.array(START_ARM_POSE)[[6, 7, 14, 15]]
        self.data.ctrl[:] = start_fingers
        mujoco.mj_forward(self.model, self.data)

    def gripper_to_mocap(self, arm: int, pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
        """Return the (7,) mocap pose that holds gripper `arm` at pose (pos, quat)."""
        mocap_quat = quat_mul(quat, quat_conj(self._rel_quat[arm]))
        mocap_pos = pos - quat_rotate(mocap_quat, self._rel_pos[arm])
        return np.concatenate([mocap_pos, mocap_quat])

    def mocap_pose(self, arm: int) -> np.ndarray:
        """Return the current (7,) mocap pose of `arm` (0 left, 1 right)."""
        return np.concatenate([self.data.mocap_pos[arm], self.data.mocap_quat[arm]])

    def step(self, left: np.ndarray, right: np.ndarray, grippers: np.ndarray) -> None:
        """
        Advance one control period towards the given targets.

        Parameters
        ----------
        left, right : numpy.ndarray
            (7,) target mocap poses of the left and right grippers.
        grippers : numpy.ndarray
            (2,) normalised gripper commands, left then right (0 closed .. 1 open).

        """
        for arm, pose in enumerate((left, right)):
            self.data.mocap_pos[arm], self.data.mocap_quat[arm] = pose[:3], pose[3:]
        fingers = gripper_to_finger(np.asarray(grippers, dtype=float))
        self.data.ctrl[:] = [fingers[0], -fingers[0], fingers[1], -fingers[1]]
        mujoco.mj_step(self.model, self.data, nstep=self.substeps)
        mujoco.mj_forward(self.model, self.data)

    def joint_positions(self) -> np.ndarray:
        """Return the (A,) joint positions in JOINT_NAMES order."""
        return joint_state(self.data)[0]

    def object_pose(self, index: int = 0) -> np.ndarray:
        """Return the (7,) pose of object `index` of the task."""
        return self.data.qpos[self._objects[index]].copy()

    def reward(self) -> int:
        """Return the staged task reward of the current state."""
        return self.task.reward(self.model, self.data)
