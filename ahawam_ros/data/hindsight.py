"""
Object positions a robot's own recording gives in hindsight, with no object sensing.

Shapes: T steps, A joints.

The object is where a gripper closes on it. At the step a gripper's command starts to close,
its fingertips are where the object is (up to a constant offset, the grasp's); before that
step the object lies there, after it the object moves with that gripper, and with the other
gripper once that one closes too (a hand-over). Read from the joint states and the commands
alone, by forward kinematics of the shipped URDF, so every bag and dataset of the arms has
it. The label is a heuristic for pick-and-carry tasks: one object, grasped by the gripper
that closes first.
"""

from typing import Dict, Optional, Sequence, Tuple

from ahawam_ros.kinematics import ArmKinematics
from ahawam_ros.robot import ARMS
import numpy as np

CLOSE_DROP = 0.2  # a gripper command this far (normalised units) below its open level: closing


def fingertip_links(arm: str) -> Tuple[str, str]:
    """Return the URDF links of one arm's two fingers."""
    return f'{arm}_left_finger_link', f'{arm}_right_finger_link'


def closing_step(gripper: np.ndarray, drop: float = CLOSE_DROP) -> Optional[int]:
    """
    Return the step at which a (T,) gripper command starts its first close, else None.

    Closing: the command falls `drop` below the highest value it had before; the step
    returned is where that fall began (the last step before it that was not lower than the
    one before it).
    """
    gripper = np.asarray(gripper, np.float64)
    closed = np.flatnonzero(np.maximum.accumulate(gripper) - gripper >= drop)
    if closed.size == 0:
        return None
    step = int(closed[0])
    while step > 0 and gripper[step - 1] > gripper[step]:
        step -= 1
    return step


def hindsight_object_position(joint_positions: np.ndarray, actions: np.ndarray,
                              joint_names: Sequence[str],
                              kinematics: Optional[ArmKinematics] = None
                              ) -> Optional[np.ndarray]:
    """
    Return (T, 3) object positions in the URDF root frame, or None when no gripper closes.

    Parameters
    ----------
    joint_positions : np.ndarray
        (T, A) measured joints (where the fingers are).
    actions : np.ndarray
        (T, A) commands (when a gripper is told to close).
    joint_names : sequence of str
        The A joint names; '<arm>_gripper' for each arm of `robot.ARMS`.
    kinematics : ArmKinematics, optional
        Forward kinematics of the URDF for `joint_names` (built when omitted).

    """
    index = {name: i for i, name in enumerate(joint_names)}
    onsets = {arm: closing_step(actions[:, index[f'{arm}_gripper']]) for arm in ARMS
              if f'{arm}_gripper' in index}
    grasps = sorted((step, arm) for arm, step in onsets.items() if step is not None)
    if not grasps:
        return None
    kinematics = kinematics or ArmKinematics(joint_names)
    tips: Dict[str, np.ndarray] = {}

    def fingertips(arm: str) -> np.ndarray:  # (T, 3): the middle of the arm's two fingers
        if arm not in tips:
            tips[arm] = np.array([kinematics.link_positions(row, fingertip_links(arm)).mean(0)
                                  for row in joint_positions])
        return tips[arm]

    first_step, first_arm = grasps[0]
    position = fingertips(first_arm).copy()
    position[:first_step] = position[first_step]  # lying where it is grasped
    for step, arm in grasps[1:]:  # then carried by the other hand after its grasp
        position[step + 1:] = fingertips(arm)[step + 1:]
    return position
