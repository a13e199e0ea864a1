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
and dataset of the arms has it. The label is a heuristic for pick-and-carry tasks. Two forms
(`ObjectiveConfig.grasp_target`): the object the gripper that closes first picks up (the
left one on a tie: Insertion's grippers close at the same step on the socket and the peg and
hold them to the end, so that label is the socket's grasp point), or each object a gripper
picks up, one slot per arm (Insertion: the socket and the peg; a close that takes over an
object handed over is the same object, so TransferCube has one).
"""

from typing import Dict, List, Optional, Sequence, Tuple

from ahawam_ros.data.episode import Episode
from ahawam_ros.kinematics import ArmKinematics
from ahawam_ros.model.config import GRASP_TARGETS
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
    Return (T, 3) positions of the object the first gripper to close picks up, else None.

    None when no gripper closes. Parameters as `hindsight_object_positions`.
    """
    grasps = _Grasps(joint_positions, actions, joint_names, kinematics)
    if not grasps.onsets:
        return None
    step, _, arm = grasps.onsets[0]
    return grasps.carry(step, arm)[0]


def hindsight_object_positions(joint_positions: np.ndarray, actions: np.ndarray,
                               joint_names: Sequence[str],
                               kinematics: Optional[ArmKinematics] = None
                               ) -> Optional[np.ndarray]:
    """
    Return (T, len(ARMS), 3) positions of every object a gripper picks up, else None.

    Slot i holds the object that arm `ARMS[i]` picks up (its first close that is not the
    taking of an object handed over), NaN when that arm picks none up; None when no gripper
    closes. TransferCube: the cube in the right arm's slot (the left takes it over);
    Insertion: the socket in the left's, the peg in the right's.

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
    grasps = _Grasps(joint_positions, actions, joint_names, kinematics)
    if not grasps.onsets:
        return None
    out = np.full((len(joint_positions), len(ARMS), 3), np.nan)
    taken = set()  # arms whose close took over an object already counted
    for step, slot, arm in grasps.onsets:
        if arm not in taken:
            out[:, slot], takers = grasps.carry(step, arm)
            taken.update(takers)
    return out


def grasp_positions(episode: Episode, target: str) -> Optional[np.ndarray]:
    """
    Return the (T, P) grasp-point target of an episode, else None (no gripper closes).

    `target` as `ObjectiveConfig.grasp_target`: 'first' (P = 3,
    `hindsight_object_position`) or 'each' (P = 3 len(ARMS), `hindsight_object_positions`).
    """
    if target not in GRASP_TARGETS:
        raise ValueError(f'grasp target {target!r}: must be one of {GRASP_TARGETS}')
    label = (hindsight_object_position if target == 'first' else hindsight_object_positions)(
        episode.joint_positions, episode.actions, episode.joint_names)
    return None if label is None else label.reshape(len(label), -1)


class _Grasps:
    """The grippers' first closes in an episode, and objects carried from them."""

    def __init__(self, joint_positions: np.ndarray, actions: np.ndarray,
                 joint_names: Sequence[str], kinematics: Optional[ArmKinematics]) -> None:
        index = {name: i for i, name in enumerate(joint_names)}
        self.joint_positions, self.joint_names = joint_positions, joint_names
        self.kinematics = kinematics
        self.commands = {arm: actions[:, index[f'{arm}_gripper']] for arm in ARMS
                         if f'{arm}_gripper' in index}
        onsets = {arm: closing_step(command) for arm, command in self.commands.items()}
        # (step, slot, arm) in time order, the left arm first on a tie
        self.onsets: List[Tuple[int, int, str]] = sorted(
            (step, ARMS.index(arm), arm) for arm, step in onsets.items() if step is not None)
        self._tips: Dict[str, np.ndarray] = {}

    def fingertips(self, arm: str) -> np.ndarray:
        """Return (T, 3): the middle of the arm's two fingers at every step."""
        if arm not in self._tips:
            self.kinematics = self.kinematics or ArmKinematics(self.joint_names)
            self._tips[arm] = np.array([
                self.kinematics.link_positions(row, fingertip_links(arm)).mean(0)
                for row in self.joint_positions])
        return self._tips[arm]

    def carry(self, step: int, holder: str) -> Tuple[np.ndarray, List[str]]:
        """
        Follow the object `holder` grasps at `step` (module docstring).

        Returns its (T, 3) positions and the arms it was handed over to, in order.
        """
        position = self.fingertips(holder).copy()
        position[:step] = position[step]  # lying where it is grasped, then carried
        takers: List[str] = []
        while True:  # hand-overs: the holder opens while another gripper has closed
            released = opening_step(self.commands[holder], step)
            if released is None:
                return position, takers
            others = [arm for onset, _, arm in self.onsets if arm != holder and onset < released
                      and _holds(self.commands[arm], onset, released)]
            if not others:  # put down: it lies where it was let go
                position[released:] = position[released]
                return position, takers
            step, holder = released, others[0]  # the taker carries it on, as it was held
            takers.append(holder)
            tips = self.fingertips(holder)
            position[step:] = tips[step:] + (position[step] - tips[step])


def _holds(gripper: np.ndarray, onset: int, step: int) -> bool:
    """Return True when a gripper that closed at `onset` has not opened again by `step`."""
    opened = opening_step(gripper, onset)
    return opened is None or opened > step
