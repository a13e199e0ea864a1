"""The bimanual arms: joint names, limits, and control rate shared by every component."""

from typing import Tuple

ARM_JOINTS: Tuple[str, ...] = (
    'waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate', 'gripper',
)
ARMS: Tuple[str, ...] = ('left', 'right')
JOINT_NAMES: Tuple[str, ...] = tuple(f'{arm}_{joint}' for arm in ARMS for joint in ARM_JOINTS)
ACTION_DIM = len(JOINT_NAMES)  # A = 14
CONTROL_RATE_HZ = 50.0  # gym-aloha steps its physics at 50 Hz control
