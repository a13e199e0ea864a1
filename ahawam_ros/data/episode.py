"""
One demonstration on the control clock: what training reads, whatever recorded it.

Step t holds the observation the policy saw at step t (images, joint positions) and the joint
command that was sent then. Bags (`bag_reader`) and the simulator's scripted episodes
(`from_sim_episode`) both become an `Episode`; datasets and the cache only know this class.

Shapes: T control steps, V cameras, H x W pixels, A joints.
"""

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

import numpy as np


@dataclass
class Episode:
    """
    A demonstration resampled on the control clock.

    Attributes
    ----------
    images : numpy.ndarray
        uint8 (T, V, H, W, 3) RGB, one frame per camera per step (may be a read-only memmap).
    joint_positions : numpy.ndarray
        float64 (T, A) measured joint positions (robot units, `joint_names` order).
    actions : numpy.ndarray
        float64 (T, A) joint commands sent at each step (absolute position targets).
    timestamps : numpy.ndarray
        int64 (T,) time of each step's command (ns, the recording's clock).
    task : str
        Task name (selects the task conditioning).
    cameras : tuple of str
        The V camera names, in view order.
    joint_names : tuple of str
        The A joint names.
    object_position : numpy.ndarray, optional
        float64 (T, P) the position head's training target, P a multiple of 3: the task's
        first object as a simulated demonstration recorded it (privileged state, P = 3), or
        grasp points in hindsight (`data/hindsight.py`; NaN where a slot has no object).
        Never a policy input.

    """

    images: np.ndarray
    joint_positions: np.ndarray
    actions: np.ndarray
    timestamps: np.ndarray
    task: str
    cameras: Tuple[str, ...]
    joint_names: Tuple[str, ...]
    object_position: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.cameras, self.joint_names = tuple(self.cameras), tuple(self.joint_names)
        steps = len(self.actions)
        if steps < 1:
            raise ValueError('Episode: an episode needs at least one step')
        if self.images.dtype != np.uint8 or self.images.ndim != 5 or self.images.shape[-1] != 3:
            raise ValueError(f'Episode.images: expected uint8 (T, V, H, W, 3), got '
                             f'{self.images.dtype} {self.images.shape}')
        if self.images.shape[1] != len(self.cameras):
            raise ValueError(f'Episode.images: {self.images.shape[1]} views but cameras '
                             f'{self.cameras}')
        for name in ('joint_positions', 'actions'):
            value = getattr(self, name)
            if value.shape != (steps, len(self.joint_names)):
                raise ValueError(f'Episode.{name}: expected shape {(steps, len(self.joint_names))}'
                                 f', got {value.shape}')
        position = self.object_position
        if position is not None and (position.ndim != 2 or len(position) != steps
                                     or position.shape[1] % 3 or not position.shape[1]):
            raise ValueError(f'Episode.object_position: expected shape ({steps}, 3 n), got '
                             f'{position.shape}')
        if len(self.images) != steps or self.timestamps.shape != (steps,):
            raise ValueError(f'Episode: {steps} actions but {len(self.images)} image steps and '
                             f'{self.timestamps.shape} timestamps')

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        """(H, W, 3) of every frame."""
        return tuple(self.images.shape[2:])


def from_sim_episode(sim_episode: Any, cameras: Optional[Sequence[str]] = None) -> Episode:
    """
    Convert a simulator episode (`ahawam_ros.sim.episode.SimEpisode`) to an `Episode`.

    Parameters
    ----------
    sim_episode : object
        Has `images` (camera -> uint8 (T, H, W, 3)), `qpos` and `actions` (T, A), `time`
        (T,) in s, `task` and `joint_names` (duck-typed: the simulator stays optional).
    cameras : sequence of str, optional
        Views to keep, in order; all of the episode's cameras when omitted.

    Returns
    -------
    Episode
        The same steps; timestamps are the sim times in ns.

    """
    names = tuple(cameras or sim_episode.images)
    missing = [name for name in names if name not in sim_episode.images]
    if missing:
        raise ValueError(f'simulator episode has no camera(s) {missing}; it has '
                         f'{sorted(sim_episode.images)}')
    images = np.stack([sim_episode.images[name] for name in names], axis=1)  # (T, V, H, W, 3)
    timestamps = np.round(np.asarray(sim_episode.time, dtype=np.float64) * 1e9).astype(np.int64)
    poses = getattr(sim_episode, 'object_pose', None)
    if poses is not None and np.shape(poses)[-1] < 3:
        poses = None  # a scene without objects
    return Episode(images=images, joint_positions=np.asarray(sim_episode.qpos, np.float64),
                   actions=np.asarray(sim_episode.actions, np.float64), timestamps=timestamps,
                   task=sim_episode.task, cameras=names,
                   joint_names=tuple(sim_episode.joint_names),
                   object_position=(None if poses is None
                                    else np.asarray(poses, np.float64)[:, :3]))


def as_episode(item: Any) -> Episode:
    """Return `item` if it is an `Episode`, else convert a simulator episode (all cameras)."""
    return item if isinstance(item, Episode) else from_sim_episode(item)
