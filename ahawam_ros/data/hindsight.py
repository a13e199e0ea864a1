"""
Object positions a robot's own recording gives in hindsight, with no object sensing.

Shapes: T steps, A joints.

The object is where a gripper closes on it. At the step a gripper's command starts to close,
its fingertips are where the object is (up to a constant offset, the grasp's); before that
step the object lies there, after it the object moves with that gripper until the gripper
opens again, and from then on with the other gripper if that one has closed meanwhile (a
hand-over, as in TransferCube: the label goes on from where it was, moving with the taker's
fingertips, so that it does not jump by the two grasps' different offsets). Read from the
joint states and the commands alone, by forward kinematics of the shipped URDF, so every bag
and dataset of the arms has it. The label is a heuristic for pick-and-carry tasks: one
object, grasped by the gripper that closes first (the left one on a tie: Insertion's grippers
close at the same step on the socket and the peg and hold them to the end, so its label is
the socket's grasp point, then the left hand).
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
    return opening_step(-np.asarray(gripper, np.float64), 0, drop)  # a close: -command opens


def opening_step(gripper: np.ndarray, after: int, rise: float = CLOSE_DROP) -> Optional[int]:
    """
    Return the step at which a (T,) gripper command starts to open again after `after`.

    Opening: the command rises `rise` above the lowest value it had since `after`; the step
    returned is where that rise began. None when it never does.
    """
    gripper = np.asarray(gripper, np.float64)[after:]
    opened = np.flatnonzero(gripper - np.minimum.accumulate(gripper) >= rise)
    if opened.size == 0:
        return None
    step = int(opened[0])
    while step > 0 and gripper[step - 1] < gripper[step]:
        step -= 1
    return after + step


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
    commands = {arm: actions[:, index[f'{arm}_gripper']] for arm in ARMS
                if f'{arm}_gripper' in index}
    onsets = {arm: closing_step(command) for arm, command in commands.items()}
    grasps = sorted((step, ARMS.index(arm), arm) for arm, step in onsets.items()
                    if step is not None)
    if not grasps:
        return None
    kinematics = kinematics or ArmKinematics(joint_names)
    tips: Dict[str, np.ndarray] = {}

    def fingertips(arm: str) -> np.ndarray:  # (T, 3): the middle of the arm's two fingers
        if arm not in tips:
            tips[arm] = np.array([kinematics.link_positions(row, fingertip_links(arm)).mean(0)
                                  for row in joint_positions])
        return tips[arm]

    step, _, holder = grasps[0]
    position = fingertips(holder).copy()
    position[:step] = position[step]  # lying where it is grasped, then carried
    while True:  # hand-overs: the holder opens while another gripper has closed
        released = opening_step(commands[holder], step)
        if released is None:
            return position
        takers = [arm for onset, _, arm in grasps
                  if arm != holder and onset < released and _holds(commands[arm], onset, released)]
        if not takers:  # put down: it lies where it was let go
            position[released:] = position[released]
            return position
        step, holder = released, takers[0]  # from here the taker carries it, as it was held
        position[step:] = fingertips(holder)[step:] + (position[step] - fingertips(holder)[step])


def _holds(gripper: np.ndarray, onset: int, step: int) -> bool:
    """Return True when a gripper that closed at `onset` has not opened again by `step`."""
    opened = opening_step(gripper, onset)
    return opened is None or opened > step
