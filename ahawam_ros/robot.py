"""The bimanual arms: joint names, limits, and control rate shared by every component."""

from typing import Tuple

ARM_JOINTS: Tuple[str, ...] = (
    'waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate', 'gripper',
)
ARMS: Tuple[str, ...] = ('left', 'right')
JOINT_NAMES: Tuple[str, ...] = tuple(f'{arm}_{joint}' for arm in ARMS for joint in ARM_JOINTS)
ACTION_DIM = len(JOINT_NAMES)  # A = 14
CONTROL_RATE_HZ = 50.0  # gym-aloha steps its physics at 50 Hz control
CAMERA_EVERY = 2  # the cameras run at 25 Hz: a frame every 2nd control step

# Position limits of one ViperX 300s arm in ARM_JOINTS order: radians for the six arm joints
# (the joint ranges of gym-aloha's MJCF, vx300s_left.xml), the gripper normalised 0 (closed)
# .. 1 (open). test/sim/test_sim_urdf.py checks them against the installed MJCF.
_ARM_LOWER: Tuple[float, ...] = (-3.14158, -1.85005, -1.76278, -3.14158, -1.8675, -3.14158, 0.0)
_ARM_UPPER: Tuple[float, ...] = (3.14158, 1.25664, 1.6057, 3.14158, 2.23402, 3.14158, 1.0)
JOINT_LOWER: Tuple[float, ...] = _ARM_LOWER * len(ARMS)  # (A,) in JOINT_NAMES order
JOINT_UPPER: Tuple[float, ...] = _ARM_UPPER * len(ARMS)  # (A,) in JOINT_NAMES order

# Seeds of the embedded simulator's episodes: demonstrations are recorded from seeds below
# this one, closed-loop evaluation (eval-sim, eval-grounding, the demo) starts at it, so a
# score is always taken on object placements never trained on.
FIRST_HELD_OUT_SEED = 1000
