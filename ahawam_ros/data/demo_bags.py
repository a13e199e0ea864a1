"""
Write demonstration episodes as rosbag2 (mcap) bags, with `rosbags` and no ROS install.

One bag per episode, one message per control step on each feature topic of a FeatureConfig:
camera images, joint states, the joint command sent, the planned trajectory and the reward.
Header stamps and bag log times are the simulation time (0 at the episode start). Episode
metadata (task, seed, success, ...) goes into the bag's `custom_data` (metadata.yaml) and,
whole, into a sidecar `episode.json` in the bag directory.

Trajectory messages hold the next `trajectory_horizon` commands from the current step; point
k is the target for stamp + (k + 1) control periods.
"""

import json
from pathlib import Path
import shutil
from typing import Any, Dict, Mapping, Optional, Protocol

from ahawam_ros.data.features import FeatureConfig, IMAGE_ENCODING
from ahawam_ros.robot import CONTROL_RATE_HZ
import numpy as np
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores
from rosbags.typesys.store import Typestore

METADATA_FILE = 'episode.json'
METADATA_PREFIX = 'ahawam.'


class EpisodeLike(Protocol):
    """What the writer reads from an episode (`ahawam_ros.sim.episode.SimEpisode` fits)."""

    task: str
    seed: int
    success: bool
    images: Mapping[str, np.ndarray]  # camera -> uint8 (T, H, W, 3)
    qpos: np.ndarray  # (T, A)
    qvel: np.ndarray  # (T, A)
    actions: np.ndarray  # (T, A)
    reward: np.ndarray  # (T,)
    time: np.ndarray  # (T,) s


def _check_episode(episode: EpisodeLike, features: FeatureConfig) -> int:
    steps = len(episode.actions)
    joints = len(features.joint_names)
    for name in ('qpos', 'qvel', 'actions'):
        shape = np.shape(getattr(episode, name))
        if shape != (steps, joints):
            raise ValueError(f'episode.{name} has shape {shape}, expected ({steps}, {joints})')
    if np.shape(episode.reward) != (steps,) or np.shape(episode.time) != (steps,):
        raise ValueError(f'episode.reward and episode.time must have shape ({steps},)')
    for camera in features.cameras:
        if camera not in episode.images:
            raise ValueError(f'episode has no images of camera {camera!r}')
        images = episode.images[camera]
        if images.shape != (steps, *features.image_shape) or images.dtype != np.uint8:
            raise ValueError(f'images of {camera!r}: {images.dtype} {images.shape}, expected '
                             f'uint8 {(steps, *features.image_shape)}')
    return steps


class _Messages:
    """Builds the feature messages of one step with a rosbags typestore."""

    def __init__(self, store: Typestore, features: FeatureConfig) -> None:
        self.types = store.types
        self.features = features
        self.joint_names = list(features.joint_names)

    def header(self, stamp_ns: int, frame_id: str = '') -> Any:
        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        time = self.types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)
        return self.types['std_msgs/msg/Header'](stamp=time, frame_id=frame_id)

    def image(self, stamp_ns: int, camera: str, rgb: np.ndarray) -> Any:
        height, width, _ = rgb.shape
        return self.types['sensor_msgs/msg/Image'](
            header=self.header(stamp_ns, self.features.camera_frame(camera)), height=height,
            width=width, encoding=IMAGE_ENCODING, is_bigendian=0, step=width * 3,
            data=np.ascontiguousarray(rgb).reshape(-1))

    def joint_state(self, stamp_ns: int, qpos: np.ndarray, qvel: np.ndarray) -> Any:
        return self.types['sensor_msgs/msg/JointState'](
            header=self.header(stamp_ns), name=self.joint_names,
            position=np.asarray(qpos, np.float64), velocity=np.asarray(qvel, np.float64),
            effort=np.zeros(0, np.float64))

    def command(self, action: np.ndarray) -> Any:
        dim = self.types['std_msgs/msg/MultiArrayDimension'](
            label='joints', size=len(action), stride=len(action))
        layout = self.types['std_msgs/msg/MultiArrayLayout'](dim=[dim], data_offset=0)
        return self.types['std_msgs/msg/Float64MultiArray'](
            layout=layout, data=np.asarray(action, np.float64))

    def trajectory(self, stamp_ns: int, actions: np.ndarray, period_ns: int) -> Any:
        """Build a JointTrajectory of the (K, A) `actions`, point k due at (k + 1) periods."""
        empty = np.zeros(0, np.float64)
        point_type = self.types['trajectory_msgs/msg/JointTrajectoryPoint']
        duration_type = self.types['builtin_interfaces/msg/Duration']
        points = []
        for k, action in enumerate(actions):
            sec, nanosec = divmod((k + 1) * period_ns, 1_000_000_000)
            points.append(point_type(
                positions=np.asarray(action, np.float64), velocities=empty,
                accelerations=empty, effort=empty,
                time_from_start=duration_type(sec=sec, nanosec=nanosec)))
        return self.types['trajectory_msgs/msg/JointTrajectory'](
            header=self.header(stamp_ns), joint_names=self.joint_names, points=points)

    def reward(self, value: float) -> Any:
        return self.types['std_msgs/msg/Float64'](data=float(value))


def episode_metadata(episode: EpisodeLike, features: FeatureConfig,
                     extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Return the JSON-ready metadata written with a bag."""
    metadata = {
        'task': episode.task, 'seed': int(episode.seed), 'success': bool(episode.success),
        'num_steps': len(episode.actions), 'control_rate_hz': CONTROL_RATE_HZ,
        'features': features.to_dict(),
    }
    metadata.update(extra or {})
    return metadata


def write_episode_bag(episode: EpisodeLike, path: Path, features: FeatureConfig, *,
                      trajectory_horizon: int = 1, compress: bool = True,
                      extra_metadata: Optional[Mapping[str, Any]] = None) -> Path:
    """
    Write `episode` as a rosbag2 mcap bag directory at `path` (which must not exist).

    Parameters
    ----------
    episode : EpisodeLike
        T steps of images, joint states, commands, rewards and sim times.
    path : pathlib.Path
        The bag directory to create.
    features : FeatureConfig
        Topics, cameras, image size and joint names.
    trajectory_horizon : int
        Commands per trajectory message (fewer near the episode end).
    compress : bool
        zstd-compress the mcap chunks (rendered images shrink several-fold).
    extra_metadata : mapping, optional
        More JSON-ready metadata to record (e.g. the generator's settings).

    Returns
    -------
    pathlib.Path
        The bag directory.

    """
    steps = _check_episode(episode, features)
    if trajectory_horizon < 1:
        raise ValueError(f'trajectory_horizon must be >= 1, got {trajectory_horizon}')
    path = Path(path)
    store = get_typestore(Stores.ROS2_KILTED)
    build = _Messages(store, features)
    period_ns = int(round(1e9 / CONTROL_RATE_HZ))
    metadata = episode_metadata(episode, features, extra_metadata)
    writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
    if compress:
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    for key, value in metadata.items():
        writer.set_custom_data(METADATA_PREFIX + key, json.dumps(value))
    with writer:
        conns = {topic: writer.add_connection(topic, msgtype, typestore=store)
                 for topic, msgtype in features.topic_types().items()}

        def put(topic: str, message: Any, stamp_ns: int) -> None:
            data = store.serialize_cdr(message, features.topic_types()[topic])
            writer.write(conns[topic], stamp_ns, data)

        for t in range(steps):
            stamp = int(round(float(episode.time[t]) * 1e9))
            for camera, topic in features.camera_topics().items():
                put(topic, build.image(stamp, camera, episode.images[camera][t]), stamp)
            put(features.joint_state_topic,
                build.joint_state(stamp, episode.qpos[t], episode.qvel[t]), stamp)
            put(features.command_topic, build.command(episode.actions[t]), stamp)
            future = episode.actions[t:t + trajectory_horizon]
            put(features.trajectory_topic, build.trajectory(stamp, future, period_ns), stamp)
            put(features.reward_topic, build.reward(episode.reward[t]), stamp)
    (path / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + '\n')
    return path


def write_episode_bag_atomic(episode: EpisodeLike, path: Path, features: FeatureConfig,
                             **kwargs: Any) -> Path:
    """Write like `write_episode_bag`, in a hidden staging folder moved to `path` when done."""
    path = Path(path)
    # The bag keeps its final name inside the staging folder: its files are named after it.
    staging = path.parent / f'.{path.name}.partial'
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    write_episode_bag(episode, staging / path.name, features, **kwargs)
    (staging / path.name).rename(path)
    staging.rmdir()
    return path


def read_bag_metadata(path: Path) -> Dict[str, Any]:
    """Return the episode metadata stored beside the bag at `path` (its episode.json)."""
    return json.loads((Path(path) / METADATA_FILE).read_text())
