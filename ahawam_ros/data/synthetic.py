"""
A synthetic training episode shaped for a model config (tests and benchmarks of training).

Shapes: T steps, V views, H x W pixels, A action dim.
"""

from typing import Optional

from ahawam_ros.data.episode import Episode
from ahawam_ros.model.config import ModelConfig
from ahawam_ros.model.testing import synthetic_episode
import numpy as np


def synthetic_training_episode(config: ModelConfig, length: int, seed: int = 0,
                               object_position: Optional[np.ndarray] = None) -> Episode:
    """Return `synthetic_episode` as an `Episode` (generic camera and joint names, task 0)."""
    data = synthetic_episode(config, length, seed)
    return Episode(images=data['frames'], joint_positions=data['joint_positions'].astype(float),
                   actions=data['actions'].astype(float),
                   timestamps=np.arange(length, dtype=np.int64) * 20_000_000,
                   task=config.task.task_names[0],
                   cameras=tuple(f'view{i}' for i in range(config.autoencoder.num_views)),
                   joint_names=tuple(f'joint{i}' for i in range(config.executor.action_dim)),
                   object_position=object_position)
