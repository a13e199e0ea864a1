"""
The two ALOHA tasks: scene files, object placement per seed and the staged reward.

The scenes are gym-aloha's MJCF files, read from the installed package at run time. Object
poses are drawn with gym-aloha's own samplers, so a seed places the objects exactly where
`gym_aloha` places them for the same seed. Demonstrations may instead spread the objects over
their boxes widened by a margin (`placement_poses`): the evaluation's edges then lie inside the
demonstrated area. The reward mirrors gym-aloha's staged contact
reward (0..4) but looks contacts up by geom id instead of by name, which is faster.
"""

import dataclasses
from pathlib import Path
from typing import Callable, Dict, FrozenSet, Set, Tuple

try:
    import mujoco
    from gym_aloha import utils as aloha_utils
    from gym_aloha.constants import ASSETS_DIR
except ImportError as exc:  # the simulator is an optional part of an install
    raise ImportError(
        'ahawam_ros.sim needs the simulator: pip install -r requirements/sim.txt') from exc
import numpy as np

MAX_REWARD = 4
LEFT_FINGER = 'vx300s_left/10_left_gripper_finger'
RIGHT_FINGER = 'vx300s_right/10_right_gripper_finger'
SOCKET_WALLS = ('socket-1', 'socket-2', 'socket-3', 'socket-4')


class ContactSet:
    """
    The geom pairs in contact in one physics state, queried by geom name.

    Parameters
    ----------
    model : mujoco.MjModel
        The model whose geom names are looked up.
    data : mujoco.MjData
        The state whose contacts are read (after `mj_forward` or `mj_step`).

    """

    def __init__(self, model: 'mujoco.MjModel', data: 'mujoco.MjData') -> None:
        """Collect the contacting geom pairs of `data`."""
        geoms = data.contact.geom[:data.ncon]  # (ncon, 2) geom ids
        self._pairs: Set[FrozenSet[int]] = {frozenset(map(int, pair)) for pair in geoms}
        self._model = model

    def _id(self, name: str) -> int:
        return mujoco.mj_name2id(self._model, mujoco.mjtObj.mjOBJ_GEOM, name)

    def touching(self, first: str, *others: str) -> bool:
        """Return True when geom `first` touches any of the geoms `others`."""
        a = self._id(first)
        return any(frozenset((a, self._id(b))) in self._pairs for b in others)


def transfer_cube_reward(model: 'mujoco.MjModel', data: 'mujoco.MjData') -> int:
    """
    Return the staged TransferCube reward.

    1 the right gripper touches the cube, 2 ... and lifts it off the table, 3 the left
    gripper touches it, 4 ... and the cube is off the table (transferred).
    """
    contacts = ContactSet(model, data)
    right = contacts.touching('red_box', RIGHT_FINGER)
    left = contacts.touching('red_box', LEFT_FINGER)
    on_table = contacts.touching('red_box', 'table')
    if left:
        return 3 if on_table else 4
    if right:
        return 1 if on_table else 2
    return 0


def insertion_reward(model: 'mujoco.MjModel', data: 'mujoco.MjData') -> int:
    """
    Return the staged Insertion reward.

    1 both grippers touch their objects, 2 ... with both objects off the table, 3 the peg
    touches the socket in the air, 4 the peg touches the pin inside the socket.
    """
    contacts = ContactSet(model, data)
    if contacts.touching('red_peg', 'pin'):
        return 4
    both_lifted = not (contacts.touching('red_peg', 'table')
                       or any(contacts.touching(wall, 'table') for wall in SOCKET_WALLS))
    if contacts.touching('red_peg', *SOCKET_WALLS) and both_lifted:
        return 3
    grasped = (contacts.touching('red_peg', RIGHT_FINGER)
               and any(contacts.touching(wall, LEFT_FINGER) for wall in SOCKET_WALLS))
    if grasped:
        return 2 if both_lifted else 1
    return 0


def _cube_poses(seed: int) -> np.ndarray:
    return np.asarray(aloha_utils.sample_box_pose(seed), dtype=np.float64)


def _peg_socket_poses(seed: int) -> np.ndarray:
    return np.concatenate(aloha_utils.sample_insertion_pose(seed)).astype(np.float64)


# Each object's placement box as gym-aloha samples it: (x low, x high), (y low, y high), z (m).
Box = Tuple[Tuple[float, float], Tuple[float, float], float]
CUBE_BOX: Box = ((0.0, 0.2), (0.4, 0.6), 0.05)
PEG_BOX: Box = ((0.1, 0.2), (0.4, 0.6), 0.05)
SOCKET_BOX: Box = ((-0.2, -0.1), (0.4, 0.6), 0.05)
MAX_PLACEMENT_MARGIN = 0.1  # m


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """
    One task: its scene files, its objects and how to place and score them.

    Attributes
    ----------
    name : str
        The task name used in configs and bag metadata.
    joint_xml : str
        MJCF file (in gym-aloha's assets) of the joint-position-controlled scene.
    mocap_xml : str
        MJCF file of the end-effector (mocap) variant used by the scripted expert.
    object_joints : tuple of str
        Free joints of the objects, in the order of `sample_poses`' output.
    sample_poses : callable
        seed -> (7 * n_objects,) float64: position (3) and wxyz quaternion (4) per object.
    reward : callable
        (model, data) -> int staged reward in 0..MAX_REWARD.
    boxes : tuple
        Per object, the `Box` that `sample_poses` draws its position from (upright, uniform).

    """

    name: str
    joint_xml: str
    mocap_xml: str
    object_joints: Tuple[str, ...]
    sample_poses: Callable[[int], np.ndarray]
    reward: Callable[['mujoco.MjModel', 'mujoco.MjData'], int]
    boxes: Tuple[Box, ...]

    def xml_path(self, mocap: bool = False) -> Path:
        """Return the absolute path of the installed scene file."""
        return Path(ASSETS_DIR) / (self.mocap_xml if mocap else self.joint_xml)


TASKS: Dict[str, TaskSpec] = {
    'transfer_cube': TaskSpec(
        name='transfer_cube',
        joint_xml='bimanual_viperx_transfer_cube.xml',
        mocap_xml='bimanual_viperx_end_effector_transfer_cube.xml',
        object_joints=('red_box_joint',),
        sample_poses=_cube_poses,
        reward=transfer_cube_reward,
        boxes=(CUBE_BOX,)),
    'insertion': TaskSpec(
        name='insertion',
        joint_xml='bimanual_viperx_insertion.xml',
        mocap_xml='bimanual_viperx_end_effector_insertion.xml',
        object_joints=('red_peg_joint', 'blue_socket_joint'),
        sample_poses=_peg_socket_poses,
        reward=insertion_reward,
        boxes=(PEG_BOX, SOCKET_BOX)),
}


def get_task(name: str) -> TaskSpec:
    """Return the task called `name`, or raise listing the known tasks."""
    if name not in TASKS:
        raise ValueError(f'unknown task {name!r}; known tasks: {", ".join(sorted(TASKS))}')
    return TASKS[name]


def check_placement_margin(margin: float) -> float:
    """Return `margin` as a float if it is a number in [0, MAX_PLACEMENT_MARGIN], else raise."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) \
            or not 0.0 <= margin <= MAX_PLACEMENT_MARGIN:
        raise ValueError(f'placement margin: {margin!r} is not a number of metres in '
                         f'[0, {MAX_PLACEMENT_MARGIN}]')
    return float(margin)


def placement_poses(task: TaskSpec, seed: int, margin: float = 0.0) -> np.ndarray:
    """
    Return (7 * n_objects,) float64 object poses for `seed`: position (3), wxyz quaternion (4).

    With `margin` 0, gym-aloha's placement (`task.sample_poses`). With `margin` > 0 (m),
    each object upright at a position uniform over its box widened by `margin` on every
    side, from a generator of its own seeded by `seed` (deterministic; a different
    placement from gym-aloha's for the same seed).
    """
    margin = check_placement_margin(margin)
    if margin == 0.0:
        return task.sample_poses(seed)
    rng = np.random.default_rng((seed, 0x9A1ACE))
    poses = []
    for (x_low, x_high), (y_low, y_high), z in task.boxes:
        x = rng.uniform(x_low - margin, x_high + margin)
        y = rng.uniform(y_low - margin, y_high + margin)
        poses.append([x, y, z, 1.0, 0.0, 0.0, 0.0])
    return np.asarray(poses, dtype=np.float64).reshape(-1)


def object_names(task: TaskSpec) -> Tuple[str, ...]:
    """Return the names of `task`'s objects (their free joints' names less '_joint')."""
    return tuple(joint[:-len('_joint')] if joint.endswith('_joint') else joint
                 for joint in task.object_joints)


def object_qpos_slices(model: 'mujoco.MjModel', task: TaskSpec) -> Tuple[slice, ...]:
    """Return, per object of `task`, the slice of `data.qpos` holding its 7-D free-joint pose."""
    slices = []
    for joint in task.object_joints:
        adr = model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)]
        slices.append(slice(int(adr), int(adr) + 7))
    return tuple(slices)
