"""
Read a rosbag2 demonstration (mcap or sqlite3) into an `Episode` on the control clock.

The joint commands define the steps: step t is the t-th message on the command topic (the
command actually sent). Each step takes the nearest previous (at or before its log time)
image of every camera and joint state; commands sent before every stream has produced a
message are dropped. A camera topic carries raw `sensor_msgs/Image` (rgb8/bgr8) or
`sensor_msgs/CompressedImage` (jpeg/png); either way its frames must have the FeatureConfig's
image size. Topic names and expected types come from a `FeatureConfig`: the bag's
own recorded features (`ahawam.features` custom data, written by `demo_bags`) when none is
given, else the default preset. A bag that lacks a topic, carries a different message type,
has no messages on a topic, is truncated or holds malformed messages raises `BagError` naming
the bag, the topic and what was expected.

Shapes: T steps, V cameras, H x W pixels, A joints.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from ahawam_ros.data.camera_images import decode_camera
from ahawam_ros.data.episode import Episode
from ahawam_ros.data.features import CAMERA_MSGS, FeatureConfig
from ahawam_ros.data.typestore import ahawam_typestore
import numpy as np
from rosbags.rosbag2 import Reader, ReaderError


METADATA_PREFIX = 'ahawam.'  # custom_data keys written by demo_bags (JSON values)
PathLike = Union[str, Path]


class BagError(ValueError):
    """A bag that cannot be read as a demonstration (the message says which and why)."""


def find_bags(root: PathLike) -> List[Path]:
    """
    Return the rosbag2 directories at or under `root`, sorted by path.

    A bag directory holds a `metadata.yaml`; hidden directories (staging folders of
    unfinished recordings) are skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f'bag directory {root} does not exist')
    if (root / 'metadata.yaml').is_file():
        return [root]
    found = [p.parent for p in root.rglob('metadata.yaml')
             if not any(part.startswith('.') for part in p.relative_to(root).parts)]
    return sorted(found)


def open_bag(path: Path) -> Reader:
    """Open a rosbag2 directory with rosbags; a bag that cannot be opened raises BagError."""
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, FileNotFoundError, OSError) as exc:
        raise BagError(f'cannot open bag {path}: truncated or corrupt, or not a rosbag2 '
                       f'directory ({exc})') from exc
    return reader


def bag_custom_metadata(reader: Reader) -> Dict[str, Any]:
    """Return the `ahawam.*` custom data of an open bag, prefix removed, values JSON-decoded."""
    custom = reader.storage.metadata.custom if hasattr(reader.storage, 'metadata') else None
    out = {}
    for key, value in (custom or {}).items():
        if key.startswith(METADATA_PREFIX):
            try:
                out[key[len(METADATA_PREFIX):]] = json.loads(value)
            except json.JSONDecodeError:
                out[key[len(METADATA_PREFIX):]] = value
    return out


def camera_topics_in(reader: Reader, features: FeatureConfig) -> Tuple[str, ...]:
    """
    Return the bag's topic of each camera of `features`, in view order.

    The configured topic, else its image_transport `<topic>/compressed` sibling when only that
    was recorded (a robot's bag of compressed cameras). A camera with neither keeps the
    configured name, so that `check_topics` reports it missing.
    """
    topics = reader.topics
    out = []
    for topic in features.camera_topics().values():
        compressed = topic.rstrip('/') + '/compressed'
        out.append(compressed if topic not in topics and compressed in topics else topic)
    return tuple(out)


def check_topics(reader: Reader, path: Path,
                 expected: Dict[str, Tuple[str, ...]]) -> Dict[str, Any]:
    """Return topic -> connections for the `expected` topic -> accepted types, or BagError."""
    topics = reader.topics
    conns = {}
    for topic, msgtypes in expected.items():
        msgtype = ' or '.join(msgtypes)
        if topic not in topics:
            raise BagError(f'bag {path} lacks topic {topic!r} (expected type {msgtype}); it '
                           f'has {sorted(topics)}')
        actual = topics[topic].msgtype
        if actual not in msgtypes:
            raise BagError(f'bag {path}: topic {topic!r} has type {actual}, expected {msgtype}')
        if topics[topic].msgcount == 0:
            raise BagError(f'bag {path}: no messages on topic {topic!r} (empty bag?)')
        conns[topic] = topics[topic].connections
    return conns


def _check_size(height: int, width: int, shape: Tuple[int, int, int]) -> None:
    if (height, width, 3) != tuple(shape):
        raise ValueError(f'image of {height}x{width}, expected {shape[0]}x{shape[1]} (the '
                         f'FeatureConfig image size)')


def _camera_image(msg: Any, msgtype: str, shape: Tuple[int, int, int]) -> np.ndarray:
    """Decode a camera message of type `msgtype` (one of CAMERA_MSGS) to uint8 `shape` RGB."""
    rgb = decode_camera(msg, msgtype)  # (H, W, 3)
    _check_size(rgb.shape[0], rgb.shape[1], shape)
    return rgb


def _joint_positions(msg: Any, joint_names: Tuple[str, ...]) -> np.ndarray:
    """Return (A,) positions of a `sensor_msgs/JointState`, reordered to `joint_names`."""
    index = {name: i for i, name in enumerate(msg.name)}
    missing = [name for name in joint_names if name not in index]
    if missing:
        raise ValueError(f'joint state lacks joints {missing}')
    if len(msg.position) != len(msg.name):
        raise ValueError(f'joint state has {len(msg.name)} names but {len(msg.position)} '
                         'positions')
    return np.asarray(msg.position, np.float64)[[index[name] for name in joint_names]]


def _command(msg: Any, num_joints: int) -> np.ndarray:
    """Return the (A,) joint command of a `std_msgs/Float64MultiArray`."""
    if len(msg.data) != num_joints:
        raise ValueError(f'command has {len(msg.data)} values, expected {num_joints} joints')
    return np.asarray(msg.data, np.float64)


def _read_streams(reader: Reader, path: Path, features: FeatureConfig
                  ) -> Dict[str, Tuple[np.ndarray, List[np.ndarray]]]:
    """Return topic -> (int64 (N,) log times, N decoded arrays) for every required topic."""
    cameras = camera_topics_in(reader, features)
    types = features.topic_types()
    required = {topic: CAMERA_MSGS if topic in cameras else (types[topic],) for topic in
                (*cameras, features.joint_state_topic, features.command_topic)}
    conns = check_topics(reader, path, required)
    # topic -> decoder of (message, its connection's type)
    decode = {topic: (lambda m, msgtype: _camera_image(m, msgtype, features.image_shape))
              for topic in cameras}
    decode[features.joint_state_topic] = lambda m, _: _joint_positions(m, features.joint_names)
    decode[features.command_topic] = lambda m, _: _command(m, len(features.joint_names))
    store = ahawam_typestore()
    streams: Dict[str, Tuple[List[int], List[np.ndarray]]] = {t: ([], []) for t in required}
    try:
        for conn, stamp, raw in reader.messages([c for cs in conns.values() for c in cs]):
            try:
                value = decode[conn.topic](store.deserialize_cdr(raw, conn.msgtype),
                                           conn.msgtype)
            except Exception as exc:  # noqa: B902 - any decoding failure is a bad message
                raise BagError(f'bag {path}: bad message on {conn.topic!r} at t={stamp} ns: '
                               f'{exc}') from exc
            streams[conn.topic][0].append(stamp)
            streams[conn.topic][1].append(value)
    except ReaderError as exc:
        raise BagError(f'bag {path} is truncated or corrupt: {exc}') from exc
    return {topic: _sorted(times, values) for topic, (times, values) in streams.items()}


def _sorted(times: List[int], values: List[np.ndarray]) -> Tuple[np.ndarray, List[np.ndarray]]:
    order = np.argsort(np.asarray(times, np.int64), kind='stable')
    return np.asarray(times, np.int64)[order], [values[i] for i in order]


def _previous(times: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Index of the last of `times` (sorted) at or before each of `at`; -1 when none."""
    return np.searchsorted(times, at, side='right') - 1


def resolve_features(path: PathLike, features: Optional[FeatureConfig] = None) -> FeatureConfig:
    """Return `features`, else the bag's recorded FeatureConfig, else the default preset."""
    if features is not None:
        return features
    reader = open_bag(Path(path))
    try:
        recorded = bag_custom_metadata(reader).get('features')
    finally:
        reader.close()
    if not recorded:
        return FeatureConfig()
    # A bag recorded by another version may carry fields this FeatureConfig lacks.
    known = {f.name for f in dataclasses.fields(FeatureConfig)}
    return FeatureConfig.from_dict({k: v for k, v in recorded.items() if k in known})


def read_episode(path: PathLike, features: Optional[FeatureConfig] = None) -> Episode:
    """
    Read one bag into an `Episode` aligned on the command clock.

    Parameters
    ----------
    path : str or Path
        A rosbag2 directory (mcap or sqlite3 storage).
    features : FeatureConfig, optional
        Topics, cameras, image size and joints; see `resolve_features`.

    Returns
    -------
    Episode
        images uint8 (T, V, H, W, 3), joint_positions and actions float64 (T, A), timestamps
        int64 (T,) (the commands' log times); the task is the bag's recorded task, else
        `features.task`.

    Raises
    ------
    BagError
        Missing topic, wrong message type, empty topic, truncated bag or malformed message.

    """
    path = Path(path)
    features = resolve_features(path, features)
    reader = open_bag(path)
    try:
        task = bag_custom_metadata(reader).get('task', features.task)
        cameras = camera_topics_in(reader, features)
        streams = _read_streams(reader, path, features)
    finally:
        reader.close()
    command_times, commands = streams[features.command_topic]
    observed = [t for t in streams if t != features.command_topic]
    index = {t: _previous(streams[t][0], command_times) for t in observed}  # (N,) each
    keep = np.all([index[t] >= 0 for t in observed], axis=0)  # (N,) every stream has spoken
    if not keep.any():
        raise BagError(f'bag {path}: no command is preceded by an image of every camera and a '
                       'joint state')
    steps = np.flatnonzero(keep)
    images = np.stack([np.stack([streams[topic][1][index[topic][s]] for topic in cameras])
                       for s in steps])
    joints = np.stack([streams[features.joint_state_topic][1][index[features.joint_state_topic][s]]
                       for s in steps])
    return Episode(images=images, joint_positions=joints,
                   actions=np.stack([commands[s] for s in steps]),
                   timestamps=command_times[steps], task=str(task), cameras=features.cameras,
                   joint_names=features.joint_names)
