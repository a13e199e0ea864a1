"""
Helpers for tests and benchmarks of the model: synthetic episodes and de-zeroed models.

Shapes: T steps, V views, H x W pixels, A action dim.
"""

from typing import Dict

from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.config import ModelConfig
from ahawam_ros.model.sample_builder import build_sample, collate_samples
import numpy as np
import torch


def synthetic_episode(config: ModelConfig, length: int, seed: int = 0) -> Dict[str, np.ndarray]:
    """
    Return a random episode of `length` steps shaped for `config`.

    Returns
    -------
    dict
        'frames' (T, V, H, W, 3) uint8, 'joint_positions' (T, A) and 'actions' (T, A) float32
        (smooth random walks).

    """
    rng = np.random.default_rng(seed)
    ae, action_dim = config.autoencoder, config.executor.action_dim
    frames = rng.integers(0, 256, (length, ae.num_views, ae.view_height, ae.view_width, 3),
                          dtype=np.uint8)
    walk = np.cumsum(rng.normal(scale=0.05, size=(length, action_dim)), axis=0)  # (T, A)
    return {'frames': frames, 'joint_positions': walk.astype(np.float32),
            'actions': np.roll(walk, -1, axis=0).astype(np.float32)}


def synthetic_batch(config: ModelConfig, batch_size: int, seed: int = 0,
                    length: int = 120) -> Dict[str, torch.Tensor]:
    """Return a collated training batch from one synthetic episode (random starts/offsets)."""
    episode = synthetic_episode(config, length, seed)
    rng = np.random.default_rng(seed + 1)
    samples = [build_sample(episode['frames'], episode['joint_positions'], episode['actions'],
                            int(rng.integers(0, length)),
                            int(rng.integers(0, config.objective.max_offset + 1)), config)
               for _ in range(batch_size)]
    return collate_samples(samples)


@torch.no_grad()
def perturb_zero_inits(model: AhaWamModel, std: float = 0.05, seed: int = 0) -> None:
    """
    Give every zero-initialised output layer random weights.

    At initialisation the DiT heads and the OVCR delta are zero, which hides gradient paths
    and edits; tests that probe those paths call this first.
    """
    generator = torch.Generator().manual_seed(seed)
    tensors = [model.planner.head.weight, model.executor.head.weight, model.ovcr.delta_out,
               model.ovcr.delta_out_bias]
    for tensor in tensors:
        tensor.copy_(std * torch.randn(tensor.shape, generator=generator))
