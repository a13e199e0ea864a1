"""
Record closed-loop episodes: an mp4 of the camera views and a rosbag2 (mcap) per episode.

Shapes: T steps, V cameras, H x W pixels, A action dim.

The bag is written by the demonstration writer (`ahawam_ros.data.demo_bags`), so evaluation
episodes read back like demonstrations: images, joint states, the command sent, the reward.
"""

from dataclasses import dataclass
from pathlib import Path
import shutil
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ahawam_ros.data.demo_bags import write_episode_bag_atomic
from ahawam_ros.data.features import FeatureConfig
from ahawam_ros.robot import CONTROL_RATE_HZ
import cv2
import numpy as np


@dataclass
class RecordedEpisode:
    """
    One recorded episode, shaped as `demo_bags.EpisodeLike` (what the bag writer reads).

    Attributes
    ----------
    task, seed, success :
        Task name, episode seed, any-step success.
    images : dict of str to np.ndarray
        Camera -> uint8 (T, H, W, 3), in view order.
    qpos, qvel, actions : np.ndarray
        (T, A) joint positions and velocities observed, commands sent.
    reward, time : np.ndarray
        (T,) staged reward and simulated time (s) of each observation.

    """

    task: str
    seed: int
    success: bool
    images: Dict[str, np.ndarray]
    qpos: np.ndarray
    qvel: np.ndarray
    actions: np.ndarray
    reward: np.ndarray
    time: np.ndarray

    def tiled_frames(self) -> List[np.ndarray]:
        """Return one uint8 (H, V*W, 3) RGB image per step, the views side by side."""
        views = list(self.images.values())
        return [np.concatenate([v[t] for v in views], axis=1) for t in range(len(self.time))]


class EpisodeRecorder:
    """
    Collects one episode step by step (the `recorder` of `closed_loop.run_episode`).

    Parameters
    ----------
    cameras : sequence of str
        Cameras to keep, in view order.

    """

    def __init__(self, cameras: Sequence[str]):
        self.cameras = tuple(cameras)
        self._frames: Dict[str, List[np.ndarray]] = {c: [] for c in self.cameras}
        keys = ('qpos', 'qvel', 'actions', 'reward', 'time')
        self._rows: Dict[str, List[Any]] = {key: [] for key in keys}

    def add(self, observation: Any, command: np.ndarray) -> None:
        """Keep the observation a command was computed from, and the (A,) command sent."""
        for camera in self.cameras:
            self._frames[camera].append(observation.images[camera])
        self._rows['qpos'].append(observation.qpos)
        self._rows['qvel'].append(observation.qvel)
        self._rows['actions'].append(np.asarray(command, np.float64))
        self._rows['reward'].append(float(observation.reward))
        self._rows['time'].append(float(observation.time))

    def finish(self, task: str, seed: int, success: bool) -> RecordedEpisode:
        """Return the episode recorded so far as arrays."""
        if not self._rows['time']:
            raise ValueError('nothing was recorded')
        rows = {k: np.asarray(v, np.float64) for k, v in self._rows.items()}
        images = {c: np.stack(frames) for c, frames in self._frames.items()}  # (T, H, W, 3)
        return RecordedEpisode(task, int(seed), bool(success), images, **rows)


def write_video(frames: List[np.ndarray], path: Path, fps: float = CONTROL_RATE_HZ) -> Path:
    """Write uint8 (H, W, 3) RGB frames as an mp4 (mp4v) at `fps`; return the path."""
    if not frames:
        raise ValueError('no frames to write')
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f'cannot open a video writer for {path}')
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return Path(path)


def write_bag(episode: RecordedEpisode, path: Path,
              metadata: Optional[Mapping[str, Any]] = None) -> Path:
    """Write the episode as a rosbag2 (mcap) directory at `path` (replaced if it exists)."""
    first = next(iter(episode.images.values()))  # (T, H, W, 3)
    features = FeatureConfig(task=episode.task, cameras=tuple(episode.images),
                             image_height=int(first.shape[1]), image_width=int(first.shape[2]))
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    return write_episode_bag_atomic(episode, path, features, extra_metadata=metadata)
