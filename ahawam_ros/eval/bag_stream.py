"""
Stream the inputs and recorded commands of one rosbag2 bag (mcap or sqlite3) in log-time order.

The evaluator replays a bag as the nodes lived it: camera frames and joint states arrive at
their log times, one message at a time, so a long bag never has to fit in memory. The recorded
command is `/joint_commands` (std_msgs/Float64MultiArray, what the executor sent), or the
first point of each `/joint_trajectory` message when that is what the bag has. A camera topic
carries raw `sensor_msgs/Image` (rgb8/bgr8) or `sensor_msgs/CompressedImage` (jpeg/png), of
any size (the replay checks or resizes it). Topics and types are checked when the bag is
opened: a missing topic, a wrong type or an empty topic raises `BagError` naming the bag, the
topic and what was expected, before any replay starts.

Shapes: H x W pixels, A joints.
"""

from pathlib import Path
from typing import Any, Dict, Iterator, NamedTuple, Optional, Sequence, Tuple

from ahawam_ros.data.bag_reader import bag_custom_metadata, BagError, camera_topics_in
from ahawam_ros.data.bag_reader import check_topics, open_bag
from ahawam_ros.data.camera_images import decode_camera
from ahawam_ros.data.features import CAMERA_MSGS, COMMAND_MSG
from ahawam_ros.data.features import FeatureConfig, JOINT_STATE_MSG, TRAJECTORY_MSG
from ahawam_ros.data.typestore import ahawam_typestore
import numpy as np
from rosbags.rosbag2 import ReaderError

IMAGE = 'image'
JOINTS = 'joints'
COMMAND = 'command'
COMMAND_TYPES = (COMMAND_MSG, TRAJECTORY_MSG)


class BagMessage(NamedTuple):
    """One decoded message: what it is, when it was logged and its value."""

    kind: str  # IMAGE, JOINTS or COMMAND
    stamp_ns: int  # log time relative to the bag's first message
    camera: int  # view index for IMAGE, else -1
    value: np.ndarray  # IMAGE: uint8 (H, W, 3) RGB; JOINTS, COMMAND: float64 (A,)


def _by_name(names: Sequence[str], values: Sequence[float], joint_names: Tuple[str, ...],
             what: str) -> np.ndarray:
    """Return (A,) `values` reordered from `names` to `joint_names`; finite or ValueError."""
    index = {name: i for i, name in enumerate(names)}
    missing = [name for name in joint_names if name not in index]
    if missing:
        raise ValueError(f'{what} lacks joints {missing}')
    if len(values) != len(names):
        raise ValueError(f'{what} has {len(names)} names but {len(values)} positions')
    out = np.asarray(values, np.float64)[[index[name] for name in joint_names]]
    if not np.all(np.isfinite(out)):
        raise ValueError(f'{what} has non-finite positions')
    return out


def decode_joint_state(msg: Any, joint_names: Tuple[str, ...]) -> np.ndarray:
    """Return the (A,) positions of a `sensor_msgs/JointState` in `joint_names` order."""
    return _by_name(msg.name, msg.position, joint_names, 'joint state')


def decode_command(msg: Any, joint_names: Tuple[str, ...]) -> np.ndarray:
    """Return the (A,) joint command of a `std_msgs/Float64MultiArray` (policy order)."""
    if len(msg.data) != len(joint_names):
        raise ValueError(f'command has {len(msg.data)} values, expected {len(joint_names)} '
                         'joints')
    return np.asarray(msg.data, np.float64)


def decode_trajectory(msg: Any, joint_names: Tuple[str, ...]) -> np.ndarray:
    """Return the first point of a `trajectory_msgs/JointTrajectory` as (A,) targets."""
    if not msg.points:
        raise ValueError('trajectory has no points')
    return _by_name(msg.joint_names, msg.points[0].positions, joint_names, 'trajectory')


class BagSource:
    """
    An open, validated bag; iterate `messages()` once, then `close()` (or use `with`).

    Parameters
    ----------
    path : Path
        The rosbag2 directory.
    features : FeatureConfig
        Camera topics (in view order), joint state topic and joint names.
    command_topic : str
        The recorded command topic; '' picks `features.command_topic` if the bag has it, else
        `features.trajectory_topic`.

    Attributes
    ----------
    camera_topics : tuple of str
        The bag's topic of each camera, in view order: the configured one, or its
        `.../compressed` sibling when only that was recorded.
    task : str
        The bag's recorded task, else `features.task`.
    duration_ns : int
        Log time of the last message relative to the first.

    """

    def __init__(self, path: Path, features: FeatureConfig, command_topic: str = ''):
        self.path = Path(path)
        self.features = features
        self._reader = open_bag(self.path)
        try:
            self.command_topic = command_topic or self._pick_command_topic()
            self.camera_topics = camera_topics_in(self._reader, features)  # view order
            expected = {topic: CAMERA_MSGS for topic in self.camera_topics}
            expected[features.joint_state_topic] = (JOINT_STATE_MSG,)
            expected[self.command_topic] = (self._command_type(),)
            self._connections = check_topics(self._reader, self.path, expected)
            self.task = str(bag_custom_metadata(self._reader).get('task', features.task))
        except BaseException:
            self._reader.close()
            raise
        self.start_ns = int(self._reader.start_time)
        self.duration_ns = max(0, int(self._reader.end_time) - 1 - self.start_ns)

    def _pick_command_topic(self) -> str:
        topics = self._reader.topics
        for topic in (self.features.command_topic, self.features.trajectory_topic):
            if topic in topics:
                return topic
        raise BagError(
            f'bag {self.path} has no command topic: it lacks {self.features.command_topic!r} '
            f'({COMMAND_MSG}) and {self.features.trajectory_topic!r} ({TRAJECTORY_MSG}); it '
            f'has {sorted(topics)} (name another with --command-topic)')

    def _command_type(self) -> str:
        info = self._reader.topics.get(self.command_topic)
        expected = ' or '.join(COMMAND_TYPES)
        if info is None:
            raise BagError(f'bag {self.path} lacks topic {self.command_topic!r} (expected type '
                           f'{expected}); it has {sorted(self._reader.topics)}')
        if info.msgtype not in COMMAND_TYPES:
            raise BagError(f'bag {self.path}: topic {self.command_topic!r} has type '
                           f'{info.msgtype}, expected {expected}')
        return info.msgtype

    def messages(self) -> Iterator[BagMessage]:
        """
        Yield every camera frame, joint state and recorded command in log-time order.

        Raises
        ------
        BagError
            A truncated or corrupt bag, or a message that does not decode (named with its
            topic and log time).

        """
        store = ahawam_typestore()
        cameras = {topic: i for i, topic in enumerate(self.camera_topics)}
        trajectory = self._command_type() == TRAJECTORY_MSG
        wanted = [conn for conns in self._connections.values() for conn in conns]
        last = 0
        try:
            for conn, stamp, raw in self._reader.messages(wanted):
                last = max(last, int(stamp) - self.start_ns)  # never back in time
                try:
                    message = self._decode(store.deserialize_cdr(raw, conn.msgtype), conn.topic,
                                           conn.msgtype, cameras, trajectory)
                except Exception as exc:  # noqa: B902 - any decoding failure is a bad message
                    raise BagError(f'bag {self.path}: bad message on {conn.topic!r} at '
                                   f'{last * 1e-9:.3f} s: {exc}') from exc
                yield message._replace(stamp_ns=last)
        except ReaderError as exc:
            raise BagError(f'bag {self.path} is truncated or corrupt: {exc}') from exc

    def _decode(self, msg: Any, topic: str, msgtype: str, cameras: Dict[str, int],
                trajectory: bool) -> BagMessage:
        names = self.features.joint_names
        if topic in cameras:
            return BagMessage(IMAGE, 0, cameras[topic], decode_camera(msg, msgtype))
        if topic == self.command_topic:
            decode = decode_trajectory if trajectory else decode_command
            return BagMessage(COMMAND, 0, -1, decode(msg, names))
        return BagMessage(JOINTS, 0, -1, decode_joint_state(msg, names))

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> 'BagSource':
        return self

    def __exit__(self, *exc_info: Optional[Any]) -> None:
        self.close()
