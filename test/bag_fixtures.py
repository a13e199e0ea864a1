"""
Synthetic bags for tests of the bag evaluator: known joint states and commands, tiny images.

`lockstep_messages` builds the messages of a bag in which every control step logs a frame of
each camera, a joint state and a command at the same time (as `demo_bags` writes them);
`compress_cameras` turns its raw camera frames into png or jpeg `CompressedImage`s; `write_bag`
writes any message list as mcap or sqlite3, with the FeatureConfig recorded so that
`ahawam eval-bag` finds the topics on its own.

Shapes: T steps, H x W pixels, A joints.
"""

import json
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from ahawam_ros.data.features import COMMAND_MSG, COMPRESSED_IMAGE_MSG, FeatureConfig
from ahawam_ros.data.features import IMAGE_MSG, JOINT_STATE_MSG, TRAJECTORY_MSG
import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

STORE = get_typestore(Stores.ROS2_KILTED)
PERIOD_NS = 20_000_000  # 50 Hz
Message = Tuple[str, str, int, Any]  # topic, type, log time (ns), message
Frame = Callable[[int, int], np.ndarray]  # (step, view) -> uint8 (H, W, 3) RGB


def _header(stamp_ns: int) -> Any:
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    time = STORE.types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)
    return STORE.types['std_msgs/msg/Header'](stamp=time, frame_id='')


def image_msg(stamp_ns: int, rgb: np.ndarray) -> Any:
    """Return an rgb8 `sensor_msgs/Image` of uint8 (H, W, 3) `rgb`."""
    height, width, _ = rgb.shape
    return STORE.types['sensor_msgs/msg/Image'](
        header=_header(stamp_ns), height=height, width=width, encoding='rgb8', is_bigendian=0,
        step=width * 3, data=np.ascontiguousarray(rgb, np.uint8).reshape(-1))


def compressed_msg(stamp_ns: int, rgb: np.ndarray, fmt: str = 'png') -> Any:
    """Return a `sensor_msgs/CompressedImage` of uint8 (H, W, 3) `rgb` encoded as `fmt`."""
    ok, encoded = cv2.imencode(f'.{fmt}', np.ascontiguousarray(rgb[..., ::-1]))  # wants BGR
    if not ok:
        raise ValueError(f'OpenCV cannot encode {fmt!r}')
    return STORE.types[COMPRESSED_IMAGE_MSG](header=_header(stamp_ns), format=fmt,
                                             data=encoded.reshape(-1))


def compress_cameras(messages: Iterable[Message], fmt: str = 'png') -> List[Message]:
    """Return `messages` with every rgb8 `Image` made a `CompressedImage` of its pixels."""
    out = []
    for topic, msgtype, stamp, message in messages:
        if msgtype == IMAGE_MSG:
            rgb = np.asarray(message.data, np.uint8).reshape(message.height, message.width, 3)
            msgtype, message = COMPRESSED_IMAGE_MSG, compressed_msg(stamp, rgb, fmt)
        out.append((topic, msgtype, stamp, message))
    return out


def gradient_frame(shape: Tuple[int, int, int]) -> Frame:
    """Return a `Frame` of smooth colour gradients, different per step, view and channel."""
    height, width, _ = shape
    rows, cols = np.mgrid[0:height, 0:width]  # (H, W) each

    def frame(step: int, view: int) -> np.ndarray:
        red = 40 + 100 * cols / width + 3 * step
        green = 60 + 120 * rows / height + 20 * view
        blue = 200 - 80 * (rows + cols) / (height + width) - 2 * step
        return np.clip(np.stack([red, green, blue], -1), 0, 255).astype(np.uint8)

    return frame


def joint_msg(stamp_ns: int, positions: np.ndarray, names: Iterable[str]) -> Any:
    """Return a `sensor_msgs/JointState` of (A,) `positions`."""
    return STORE.types['sensor_msgs/msg/JointState'](
        header=_header(stamp_ns), name=list(names), position=np.asarray(positions, np.float64),
        velocity=np.zeros(0), effort=np.zeros(0))


def command_msg(values: np.ndarray) -> Any:
    """Return a `std_msgs/Float64MultiArray` of (A,) `values`."""
    layout = STORE.types['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0)
    return STORE.types['std_msgs/msg/Float64MultiArray'](
        layout=layout, data=np.asarray(values, np.float64))


def trajectory_msg(stamp_ns: int, values: np.ndarray, names: Iterable[str]) -> Any:
    """Return a one-point `trajectory_msgs/JointTrajectory` reaching (A,) `values`."""
    empty = np.zeros(0)
    point = STORE.types['trajectory_msgs/msg/JointTrajectoryPoint'](
        positions=np.asarray(values, np.float64), velocities=empty, accelerations=empty,
        effort=empty, time_from_start=STORE.types['builtin_interfaces/msg/Duration'](
            sec=0, nanosec=PERIOD_NS))
    return STORE.types['trajectory_msgs/msg/JointTrajectory'](
        header=_header(stamp_ns), joint_names=list(names), points=[point])


def lockstep_messages(features: FeatureConfig, joints: np.ndarray, commands: np.ndarray,
                      trajectory: bool = False, frame: Optional[Frame] = None) -> List[Message]:
    """
    Return the messages of a bag of T steps, all topics of step t logged at t * PERIOD_NS.

    Parameters
    ----------
    features : FeatureConfig
        Topics, cameras, image size and joint names.
    joints, commands : np.ndarray
        (T, A) joint states and recorded commands.
    trajectory : bool
        Record the commands on the trajectory topic (JointTrajectory) instead.
    frame : callable, optional
        (step, view) -> uint8 (H, W, 3) RGB image; a uniform grey (16 view + step) % 256 by
        default.

    """
    names = features.joint_names
    messages: List[Message] = []
    for t, (state, command) in enumerate(zip(joints, commands)):
        stamp = t * PERIOD_NS
        for view, topic in enumerate(features.camera_topics().values()):
            rgb = frame(t, view) if frame else np.full(features.image_shape,
                                                       (16 * view + t) % 256, np.uint8)
            messages.append((topic, IMAGE_MSG, stamp, image_msg(stamp, rgb)))
        messages.append((features.joint_state_topic, JOINT_STATE_MSG, stamp,
                         joint_msg(stamp, state, names)))
        if trajectory:
            messages.append((features.trajectory_topic, TRAJECTORY_MSG, stamp,
                             trajectory_msg(stamp, command, names)))
        else:
            messages.append((features.command_topic, COMMAND_MSG, stamp, command_msg(command)))
    return messages


def write_bag(path: Path, messages: Iterable[Message], features: Optional[FeatureConfig] = None,
              storage: StoragePlugin = StoragePlugin.MCAP,
              topics: Optional[Dict[str, str]] = None) -> Path:
    """
    Write `messages` as a rosbag2 directory at `path` (which must not exist).

    Parameters
    ----------
    path : Path
        The bag directory to create.
    messages : iterable of (str, str, int, message)
        Topic, type, log time (ns) and message, in any order.
    features : FeatureConfig, optional
        Recorded as the bag's `ahawam.features` custom data.
    storage : StoragePlugin
        mcap or sqlite3.
    topics : dict, optional
        topic -> type connections to add even without messages (an empty topic).

    """
    with Writer(path, version=9, storage_plugin=storage) as writer:
        if features is not None:
            writer.set_custom_data('ahawam.features', json.dumps(features.to_dict()))
        connections = {topic: writer.add_connection(topic, msgtype, typestore=STORE)
                       for topic, msgtype in (topics or {}).items()}
        for topic, msgtype, stamp, message in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=STORE)
            writer.write(connections[topic], stamp, STORE.serialize_cdr(message, msgtype))
    return Path(path)
