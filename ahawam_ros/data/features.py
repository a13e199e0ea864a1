"""
The topic-to-feature mapping shared by demonstration bags, training and the live nodes.

One `FeatureConfig` says which topics carry which policy inputs and outputs, with which
message types: camera images (sensor_msgs/msg/Image, rgb8; bags may carry
sensor_msgs/msg/CompressedImage jpeg/png on a camera topic instead), joint states
(sensor_msgs/msg/JointState, names = robot.JOINT_NAMES), the joint command actually sent
(std_msgs/msg/Float64MultiArray), the planned joint trajectory
(trajectory_msgs/msg/JointTrajectory) and the simulator's reward (std_msgs/msg/Float64).
Message types are named as strings, so this module needs neither rclpy nor message packages.

Default cameras: `top` plus the two wrist cameras at 120 x 160. For TransferCube the top view
locates the cube on the table before either wrist camera sees it (it is 3-4 red pixels on the
grey table at this size, enough to localise), and the wrist views resolve the grasp and the
handover at close range, where it matters. It is also the real ALOHA's layout (a high camera
and two wrist cameras). Rendering the three costs about 14 ms a step on two CPU cores.
"""

import dataclasses
import re
from typing import Any, Dict, Mapping, Tuple

from ahawam_ros.robot import JOINT_NAMES

IMAGE_MSG = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE_MSG = 'sensor_msgs/msg/CompressedImage'
CAMERA_MSGS = (IMAGE_MSG, COMPRESSED_IMAGE_MSG)  # what a bag's camera topic may carry
JOINT_STATE_MSG = 'sensor_msgs/msg/JointState'
COMMAND_MSG = 'std_msgs/msg/Float64MultiArray'
TRAJECTORY_MSG = 'trajectory_msgs/msg/JointTrajectory'
REWARD_MSG = 'std_msgs/msg/Float64'
IMAGE_ENCODING = 'rgb8'

_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_]*$')
_TOPIC = re.compile(r'^/[A-Za-z0-9_{}/]*[A-Za-z0-9_}]$')


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """
    Which topics carry which features, and the image format.

    Attributes
    ----------
    task : str
        Task name (recorded with demonstrations; selects task conditioning).
    cameras : tuple of str
        Camera names, in the order the policy stacks its views (V).
    image_height, image_width : int
        Size of every camera image (H, W); images are RGB uint8.
    camera_topic_pattern : str
        Topic of a camera, with `{name}` replaced by the camera name.
    camera_frame_pattern : str
        frame_id of a camera's images (its optical frame in the URDF), `{name}` likewise.
    joint_state_topic, command_topic, trajectory_topic, reward_topic : str
        Topics of the joint state, the joint command sent, the planned trajectory and the
        reward.
    joint_names : tuple of str
        Joint names in state, command and trajectory messages (A of them).

    """

    task: str = 'transfer_cube'
    cameras: Tuple[str, ...] = ('top', 'left_wrist', 'right_wrist')
    image_height: int = 120
    image_width: int = 160
    camera_topic_pattern: str = '/cameras/{name}/image_raw'
    camera_frame_pattern: str = '{name}_optical_frame'
    joint_state_topic: str = '/joint_states'
    command_topic: str = '/joint_commands'
    trajectory_topic: str = '/joint_trajectory'
    reward_topic: str = '/sim/reward'
    joint_names: Tuple[str, ...] = JOINT_NAMES

    def __post_init__(self) -> None:
        """Validate every field; a bad one raises ValueError naming it."""
        object.__setattr__(self, 'cameras', tuple(self.cameras))
        object.__setattr__(self, 'joint_names', tuple(self.joint_names))
        if not self.task or not _NAME.match(self.task):
            raise ValueError(f'FeatureConfig.task: {self.task!r} is not a plain name')
        for field in ('cameras', 'joint_names'):
            names = getattr(self, field)
            if not names or len(set(names)) != len(names) or not all(map(_NAME.match, names)):
                raise ValueError(f'FeatureConfig.{field}: {names!r} must be distinct plain names')
        for field in ('image_height', 'image_width'):
            value = getattr(self, field)
            if not isinstance(value, int) or not 8 <= value <= 4096:
                raise ValueError(f'FeatureConfig.{field}: {value!r} is not an int in [8, 4096]')
        for field in ('camera_topic_pattern', 'camera_frame_pattern'):
            if '{name}' not in getattr(self, field):
                raise ValueError(f'FeatureConfig.{field}: {getattr(self, field)!r} lacks {{name}}')
        topics = {f'camera_topic_pattern ({c})': self.camera_topic(c) for c in self.cameras}
        for field in ('joint_state_topic', 'command_topic', 'trajectory_topic', 'reward_topic'):
            topics[field] = getattr(self, field)
        for field, topic in topics.items():
            if not _TOPIC.match(topic) or '//' in topic:
                raise ValueError(f'FeatureConfig.{field}: {topic!r} is not an absolute topic name')
        if len(set(topics.values())) != len(topics):
            raise ValueError(f'FeatureConfig: topics must be distinct, got {topics}')

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        """Shape (H, W, 3) of every camera image."""
        return (self.image_height, self.image_width, 3)

    def camera_topic(self, name: str) -> str:
        """Return the image topic of camera `name`."""
        return self.camera_topic_pattern.format(name=name)

    def camera_frame(self, name: str) -> str:
        """Return the frame_id of camera `name`'s images."""
        return self.camera_frame_pattern.format(name=name)

    def camera_topics(self) -> Dict[str, str]:
        """Return camera name -> image topic, in camera order."""
        return {name: self.camera_topic(name) for name in self.cameras}

    def topic_types(self) -> Dict[str, str]:
        """
        Return topic -> message type name for every feature topic (cameras first).

        These are the types `demo_bags` writes; a bag read for training or evaluation may
        carry any of CAMERA_MSGS on a camera topic.
        """
        types = {topic: IMAGE_MSG for topic in self.camera_topics().values()}
        types[self.joint_state_topic] = JOINT_STATE_MSG
        types[self.command_topic] = COMMAND_MSG
        types[self.trajectory_topic] = TRAJECTORY_MSG
        types[self.reward_topic] = REWARD_MSG
        return types

    def to_dict(self) -> Dict[str, Any]:
        """Return the fields as plain JSON-ready values (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'FeatureConfig':
        """Build from `to_dict()` output; an unknown key fails naming the valid ones."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f'FeatureConfig: unknown field(s) {unknown}; valid: {sorted(fields)}')
        return cls(**values)


FEATURE_PRESETS: Dict[str, FeatureConfig] = {
    'transfer_cube': FeatureConfig(),
    'insertion': FeatureConfig(task='insertion'),
    'transfer_cube_top': FeatureConfig(cameras=('top',)),
}


def feature_preset(name: str) -> FeatureConfig:
    """Return the named FeatureConfig preset, or raise listing the valid names."""
    if name not in FEATURE_PRESETS:
        raise ValueError(f'unknown feature preset {name!r}; valid: {", ".join(FEATURE_PRESETS)}')
    return FEATURE_PRESETS[name]
