"""
One simulated episode, whoever drove it: the scripted expert or a policy in closed loop.

Shapes: T control steps, V cameras, H x W pixels, A joints (JOINT_NAMES order, A = 14),
N objects.

Step t holds the observation at sim time t * CONTROL_PERIOD and the command sent then. The
bag writer (`ahawam_ros.data.demo_bags.EpisodeLike`) and the conversion for training
(`ahawam_ros.data.episode.from_sim_episode`) read this record by its fields only, so the
data package never imports the simulator.
"""

import dataclasses
from typing import Dict, List

from ahawam_ros.images import tile_views
from ahawam_ros.robot import JOINT_NAMES
import numpy as np

OBJECT_POSE_SIZE = 7  # an object's pose in `object_pose`: x, y, z, then a wxyz quaternion


def object_positions(object_pose: np.ndarray) -> np.ndarray:
    """Return the (N, 3) centres of the N objects of one step's (7 N,) `object_pose`."""
    return np.asarray(object_pose).reshape(-1, OBJECT_POSE_SIZE)[:, :3]


@dataclasses.dataclass
class SimEpisode:
    """
    T control steps of simulator observations and the commands sent.

    Produced by `ahawam_ros.sim.scripted_expert.ScriptedExpert.record` (demonstrations) and
    `ahawam_ros.eval.closed_loop.record.EpisodeRecorder.finish` (closed-loop evaluation).

    Attributes
    ----------
    task : str
        Task name.
    seed : int
        Seed of the object placement.
    success : bool
        True when the task's maximum reward was reached at some step (for the scripted expert,
        the state after the last command included: gym-aloha's episodes terminate there).
    images : dict of str to numpy.ndarray
        camera -> uint8 (T, H, W, 3) RGB, in view order.
    qpos, qvel : numpy.ndarray
        float64 (T, A) observed joint positions and velocities.
    actions : numpy.ndarray
        float64 (T, A) absolute joint commands sent at each step.
    reward : numpy.ndarray
        float64 (T,) staged reward of each observed state.
    time : numpy.ndarray
        float64 (T,) sim time of each observation (s).
    object_pose : numpy.ndarray
        float64 (T, 7 * N) privileged object poses (position and wxyz quaternion each);
        (T, 0) when the observations had none.

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
    object_pose: np.ndarray

    def __post_init__(self) -> None:
        """Check that every field has T steps; a bad one raises ValueError naming it."""
        steps = len(self.actions)
        if steps < 1:
            raise ValueError('SimEpisode: an episode needs at least one step')
        expected = {'qpos': (steps, len(JOINT_NAMES)), 'qvel': (steps, len(JOINT_NAMES)),
                    'actions': (steps, len(JOINT_NAMES)), 'reward': (steps,),
                    'time': (steps,)}
        for name, shape in expected.items():
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f'SimEpisode.{name}: expected shape {shape}, got '
                                 f'{np.shape(getattr(self, name))}')
        pose = np.shape(self.object_pose)
        if len(pose) != 2 or pose[0] != steps:
            raise ValueError(f'SimEpisode.object_pose: expected shape ({steps}, 7 * N), '
                             f'got {pose}')
        for camera, frames in self.images.items():
            shape = np.shape(frames)
            if frames.dtype != np.uint8 or len(shape) != 4 or (shape[0], shape[3]) != (steps, 3):
                raise ValueError(f'SimEpisode.images[{camera!r}]: expected uint8 '
                                 f'({steps}, H, W, 3), got {frames.dtype} {frames.shape}')

    @property
    def joint_names(self) -> tuple:
        """Joint names of the columns of qpos, qvel and actions."""
        return JOINT_NAMES

    def __len__(self) -> int:
        """Return T, the number of control steps."""
        return len(self.actions)

    def tiled_frames(self) -> List[np.ndarray]:
        """Return one uint8 (H, V*W, 3) RGB image per step, the views side by side."""
        views = list(self.images.values())  # V of (T, H, W, 3)
        return [tile_views([view[step] for view in views]) for step in range(len(self))]
