"""
Normalisation statistics of a dataset: per-joint mean and std of actions and joint positions.

For a model with relative actions (`ExecutorConfig.relative_actions`) the action statistics
are those of a[t + k] - q[t], k < K: the chunk targets relative to the joint state at the
chunk start, as the model predicts them (`relative_chunk` = K).

The statistics are the model's `NormStats` (the model standardises x -> (x - mean) / std and a
checkpoint carries them). They are computed once over every step of a dataset's episodes and
saved as JSON beside the episode cache, keyed by the episodes they were computed from, so a
later run over the same data loads them instead of recomputing.

Shapes: T steps, A joints.
"""

import hashlib
import json
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from ahawam_ros.model.norm_stats import NormStats
import numpy as np


MIN_STD = 1e-2  # a joint that never moves (std ~ 0) keeps unit scale instead of exploding
PathLike = Union[str, Path]


def relative_actions(actions: np.ndarray, joint_positions: np.ndarray,
                     chunk_len: int) -> np.ndarray:
    """(T, A) actions and joint positions -> (T, K, A) a[min(t + k, T - 1)] - q[t]."""
    steps = len(actions)
    targets = np.minimum(np.arange(steps)[:, None] + np.arange(chunk_len)[None], steps - 1)
    return actions[targets] - joint_positions[:, None]


def compute_norm_stats(episodes: Iterable, min_std: float = MIN_STD,
                       relative_chunk: int = 0) -> NormStats:
    """
    Compute per-joint statistics over every step of `episodes`.

    Parameters
    ----------
    episodes : iterable of Episode
        Each with `actions` and `joint_positions`, (T, A) arrays.
    min_std : float
        Lower bound of every std.
    relative_chunk : int
        K > 0: action statistics of the relative targets (`relative_actions`); 0: absolute.

    Returns
    -------
    NormStats
        Mean and std (length A each) of actions and of joint positions.

    """
    episodes = list(episodes)
    if not episodes:
        raise ValueError('cannot compute normalisation statistics over no episodes')
    arrays = [(np.asarray(e.actions, np.float64), np.asarray(e.joint_positions, np.float64))
              for e in episodes]
    if relative_chunk > 0:
        arrays = [(relative_actions(a, q, relative_chunk).reshape(-1, a.shape[-1]), q)
                  for a, q in arrays]
    actions = np.concatenate([a for a, _ in arrays])  # (N, A)
    joints = np.concatenate([q for _, q in arrays])
    return NormStats.from_arrays(actions, joints, min_std=min_std)


def stats_path(cache_dir: PathLike, episode_keys: Sequence[str],
               relative_chunk: int = 0) -> Path:
    """Return the JSON path of the statistics of the episodes with these cache keys."""
    digest = hashlib.sha256('\n'.join(sorted(episode_keys)).encode()).hexdigest()[:16]
    suffix = f'-relative{relative_chunk}' if relative_chunk > 0 else ''
    return Path(cache_dir) / f'norm_stats-{digest}{suffix}.json'


def save_norm_stats(path: PathLike, stats: NormStats, num_steps: int,
                    episode_keys: Sequence[str] = ()) -> None:
    """Write `stats` with how many steps and which episodes they summarise."""
    data = {'norm_stats': stats.to_dict(), 'num_steps': int(num_steps),
            'episodes': sorted(episode_keys)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f'.tmp{id(data)}')
    tmp.write_text(json.dumps(data, indent=2) + '\n')
    tmp.replace(path)  # atomic: a reader never sees half a file


def load_norm_stats(path: PathLike) -> NormStats:
    """Read statistics written by `save_norm_stats`."""
    return NormStats.from_dict(json.loads(Path(path).read_text())['norm_stats'])


def dataset_norm_stats(episodes: Sequence, episode_keys: Sequence[str],
                       cache_dir: Optional[PathLike] = None,
                       relative_chunk: int = 0) -> NormStats:
    """
    Return the statistics of `episodes`, loaded from `cache_dir` when computed before.

    Parameters
    ----------
    episodes : sequence of Episode
        The dataset's episodes.
    episode_keys : sequence of str
        Their cache keys (identify the data the statistics belong to).
    cache_dir : str or Path, optional
        Where the JSON lives; without one the statistics are computed and not saved.
    relative_chunk : int
        See `compute_norm_stats`.

    """
    if cache_dir is None:
        return compute_norm_stats(episodes, relative_chunk=relative_chunk)
    path = stats_path(cache_dir, episode_keys, relative_chunk)
    if path.is_file():
        return load_norm_stats(path)
    stats = compute_norm_stats(episodes, relative_chunk=relative_chunk)
    save_norm_stats(path, stats, sum(len(e) for e in episodes), episode_keys)
    return stats
