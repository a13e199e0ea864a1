"""
Synthetic bags in the Interbotix ALOHA layout, and their twin in this package's layout.

`aloha_messages` lays out one episode as a real ALOHA bag does (see
`config/mappings/aloha_interbotix.yaml`): four 480x640-style bgr8 cameras (small here),
per-arm `/follower_{left,right}/joint_states` with Interbotix joint names in a shuffled order,
extra joints, and the gripper as a finger position in metres, and per-arm
`/{left,right}_arm_controller/joint_trajectory` commands with the gripper as a motor angle.
`twin_messages` lays out the same episode in the default layout (rgb8 cameras,
`/joint_states`, `/joint_commands`) at the log times the mapping's merge rule gives: each
merged value is logged when the later arm's message is. Both bags read or replayed must give
the same episode and the same trace.

Step t (base = (t + 1) * PERIOD_NS): cameras and the left arm's state at base - 4 ms, the
right arm's state at base - 2 ms, the left command at base - 1 ms, the right command at base.

Shapes: T steps, H x W pixels, A = 14 policy joints.
"""

from typing import List, Optional, Tuple

from ahawam_ros.data.features import COMMAND_MSG, FeatureConfig, IMAGE_MSG, JOINT_STATE_MSG
from ahawam_ros.data.features import TRAJECTORY_MSG
from ahawam_ros.robot import ARMS
from bag_fixtures import command_msg, gradient_frame, image_msg, joint_msg
from bag_fixtures import Message, PERIOD_NS, trajectory_msg
import numpy as np

MS = 1_000_000
FINGER = (0.01844, 0.05800)  # gripper finger closed, open (m): the shipped mapping's range
GRIPPER_ANGLE = (-0.6213, 1.4910)  # gripper motor closed, open (rad)
ALOHA_CAMERAS = {'top': '/cam_high/camera/color/image_rect_raw',
                 'low': '/cam_low/camera/color/image_rect_raw',
                 'left_wrist': '/cam_left_wrist/camera/color/image_rect_raw',
                 'right_wrist': '/cam_right_wrist/camera/color/image_rect_raw'}
TWIN_CAMERAS = ('top', 'left_wrist', 'right_wrist')  # the views the shipped mapping takes
ARM_NAMES = ('waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate')
STATE_ORDER = ('right_finger', 'wrist_rotate', 'gripper', 'waist', 'elbow', 'left_finger',
               'shoulder', 'wrist_angle', 'forearm_roll')  # as a driver may list them


def _unit(value: float, bounds: Tuple[float, float]) -> float:
    """Map a normalised gripper value (0 closed .. 1 open) to robot units."""
    return bounds[0] + value * (bounds[1] - bounds[0])


def bgr_image_msg(stamp_ns: int, rgb: np.ndarray):
    """Return a bgr8 `sensor_msgs/Image` of uint8 (H, W, 3) `rgb`."""
    msg = image_msg(stamp_ns, np.ascontiguousarray(rgb[..., ::-1]))
    msg.encoding = 'bgr8'
    return msg


def arm_state(stamp_ns: int, arm: int, joints: np.ndarray, drop: str = ''):
    """Return the Interbotix JointState of arm `arm` (0 left) from policy joints (A,)."""
    values = dict(zip(ARM_NAMES, joints[7 * arm:7 * arm + 6]))
    grip = joints[7 * arm + 6]
    values.update(gripper=_unit(grip, GRIPPER_ANGLE), left_finger=_unit(grip, FINGER),
                  right_finger=-_unit(grip, FINGER))
    names = [name for name in STATE_ORDER if name != drop]
    return joint_msg(stamp_ns, [values[name] for name in names], names)


def arm_command(stamp_ns: int, arm: int, commands: np.ndarray):
    """Return the per-arm JointTrajectory of policy commands (A,), gripper in radians."""
    values = [*commands[7 * arm:7 * arm + 6], _unit(commands[7 * arm + 6], GRIPPER_ANGLE)]
    return trajectory_msg(stamp_ns, values, [*ARM_NAMES, 'gripper'])


def aloha_messages(joints: np.ndarray, commands: np.ndarray, size: Tuple[int, int] = (48, 64),
                   drop_joint: str = '', skip: Optional[str] = None) -> List[Message]:
    """
    Return the messages of an ALOHA-layout bag of T steps.

    Parameters
    ----------
    joints, commands : np.ndarray
        (T, A) measured joints and commands in policy units (grippers 0 .. 1).
    size : (int, int)
        (H, W) of the camera frames (gradients, distinct per step and view).
    drop_joint : str
        An Interbotix joint name left out of the right arm's joint states.
    skip : str, optional
        A topic left out of the bag.

    """
    frame = gradient_frame((*size, 3))
    messages: List[Message] = []
    for t, (state, command) in enumerate(zip(joints, commands)):
        base = (t + 1) * PERIOD_NS
        for view, topic in enumerate(ALOHA_CAMERAS.values()):
            messages.append((topic, IMAGE_MSG, base - 4 * MS,
                             bgr_image_msg(base - 4 * MS, frame(t, view))))
        for arm, side in enumerate(ARMS):
            stamp = base - (4 - 2 * arm) * MS
            messages.append((f'/follower_{side}/joint_states', JOINT_STATE_MSG, stamp,
                             arm_state(stamp, arm, state, drop_joint if arm else '')))
            stamp = base - (1 - arm) * MS
            messages.append((f'/{side}_arm_controller/joint_trajectory', TRAJECTORY_MSG, stamp,
                             arm_command(stamp, arm, command)))
    return [m for m in messages if m[0] != skip]


def twin_features(size: Tuple[int, int] = (48, 64)) -> FeatureConfig:
    """Return the default-layout FeatureConfig of the twin bag (recorded in it)."""
    return FeatureConfig(cameras=TWIN_CAMERAS, image_height=size[0], image_width=size[1])


def twin_messages(joints: np.ndarray, commands: np.ndarray,
                  size: Tuple[int, int] = (48, 64)) -> List[Message]:
    """Return the default-layout messages that the ALOHA bag's mapping makes of the episode."""
    features = twin_features(size)
    frame = gradient_frame((*size, 3))
    views = [list(ALOHA_CAMERAS).index(name) for name in TWIN_CAMERAS]
    messages: List[Message] = []
    for t, (state, command) in enumerate(zip(joints, commands)):
        base = (t + 1) * PERIOD_NS
        for name, view in zip(TWIN_CAMERAS, views):
            messages.append((features.camera_topic(name), IMAGE_MSG, base - 4 * MS,
                             image_msg(base - 4 * MS, frame(t, view))))
        messages.append((features.joint_state_topic, JOINT_STATE_MSG, base - 2 * MS,
                         joint_msg(base - 2 * MS, state, features.joint_names)))
        messages.append((features.command_topic, COMMAND_MSG, base, command_msg(command)))
    return messages


def episode_values(steps: int) -> Tuple[np.ndarray, np.ndarray]:
    """Return (T, A) joints and commands inside the arms' limits, grippers in 0 .. 1."""
    t = np.arange(steps, dtype=np.float64)[:, None]
    joints = 0.1 + 0.01 * np.arange(14)[None, :] + 0.002 * t
    joints[:, [6, 13]] = 0.2 + 0.02 * t  # grippers open over the episode
    commands = joints + 0.004
    return joints, commands
