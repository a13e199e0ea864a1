"""
Record closed-loop episodes: an mp4 of the camera views and a rosbag2 (mcap) per episode.

Shapes: T steps, V cameras, H x W pixels, A action dim.

An episode is recorded as an `ahawam_ros.sim.episode.SimEpisode`, the record the scripted
expert makes of a demonstration; the video shows its `tiled_frames()`. The bag is written by
the demonstration writer (`ahawam_ros.data.demo_bags`), so evaluation episodes read back like
demonstrations: images, joint states, the command sent, the reward.
"""

from pathlib import Path
import shutil
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ahawam_ros.data.demo_bags import write_episode_bag_atomic
from ahawam_ros.data.features import FeatureConfig
from ahawam_ros.robot import CONTROL_RATE_HZ
from ahawam_ros.sim.episode import SimEpisode
import cv2
import numpy as np


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
        keys = ('qpos', 'qvel', 'actions', 'reward', 'time', 'object_pose')
        self._rows: Dict[str, List[Any]] = {key: [] for key in keys}

    def add(self, observation: Any, command: np.ndarray) -> None:
        """
        Keep the observation a command was computed from, and the (A,) command sent.

        `observation` has `images` (camera -> (H, W, 3)), `qpos`, `qvel` (A,), `reward` and
        `time`, like `ahawam_ros.sim.aloha_env.Observation`; its `object_pose` is kept when it
        has one (an empty row otherwise).
        """
        for camera in self.cameras:
            self._frames[camera].append(observation.images[camera])
        self._rows['qpos'].append(observation.qpos)
        self._rows['qvel'].append(observation.qvel)
        self._rows['actions'].append(np.asarray(command, np.float64))
        self._rows['reward'].append(float(observation.reward))
        self._rows['time'].append(float(observation.time))
        pose = getattr(observation, 'object_pose', None)
        self._rows['object_pose'].append(np.zeros(0) if pose is None else pose)

    def finish(self, task: str, seed: int, success: bool) -> SimEpisode:
        """Return the episode recorded so far as arrays (object_pose (T, 0) if none was seen)."""
        if not self._rows['time']:
            raise ValueError('nothing was recorded')
        rows = {k: np.asarray(v, np.float64) for k, v in self._rows.items()}
        images = {c: np.stack(frames) for c, frames in self._frames.items()}  # (T, H, W, 3)
        return SimEpisode(task=task, seed=int(seed), success=bool(success), images=images,
                          **rows)


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


def write_bag(episode: SimEpisode, path: Path,
              metadata: Optional[Mapping[str, Any]] = None) -> Path:
    """Write the episode as a rosbag2 (mcap) directory at `path` (replaced if it exists)."""
    first = next(iter(episode.images.values()))  # (T, H, W, 3)
    features = FeatureConfig(task=episode.task, cameras=tuple(episode.images),
                             image_height=int(first.shape[1]), image_width=int(first.shape[2]))
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    return write_episode_bag_atomic(episode, path, features, extra_metadata=metadata)
