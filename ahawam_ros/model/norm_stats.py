"""
Normalisation statistics of actions and proprioception (robot units <-> model units).

The model works on standardised joint values, x_norm = (x - mean) / std per joint. The
statistics travel with a checkpoint (JSON) so that a policy maps back to robot units.

Shapes: A action dim (joints).
"""

from dataclasses import dataclass
from typing import Any, Dict, Sequence, Tuple

import numpy as np
import torch

FIELDS = ('action_mean', 'action_std', 'proprio_mean', 'proprio_std')


@dataclass(frozen=True)
class NormStats:
    """
    Per-joint mean and std of actions and of joint positions (proprio).

    Attributes
    ----------
    action_mean, action_std, proprio_mean, proprio_std : tuple of float
        Length A each; stds are > 0.

    """

    action_mean: Tuple[float, ...]
    action_std: Tuple[float, ...]
    proprio_mean: Tuple[float, ...]
    proprio_std: Tuple[float, ...]

    def __post_init__(self):
        for name in FIELDS:
            value = tuple(float(v) for v in getattr(self, name))
            object.__setattr__(self, name, value)
            if not np.all(np.isfinite(value)):
                raise ValueError(f'NormStats.{name} = {value!r}: must be finite')
        sizes = {len(getattr(self, name)) for name in FIELDS}
        if len(sizes) != 1:
            raise ValueError(f'NormStats: fields have different lengths {sorted(sizes)}')
        for name in ('action_std', 'proprio_std'):
            if min(getattr(self, name)) <= 0.0:
                raise ValueError(f'NormStats.{name} = {getattr(self, name)!r}: must be > 0')

    @property
    def action_dim(self) -> int:
        """Return A."""
        return len(self.action_mean)

    @classmethod
    def identity(cls, action_dim: int) -> 'NormStats':
        """Return statistics that leave values unchanged (mean 0, std 1)."""
        zeros, ones = (0.0,) * action_dim, (1.0,) * action_dim
        return cls(zeros, ones, zeros, ones)

    @classmethod
    def from_arrays(cls, actions: np.ndarray, joint_positions: np.ndarray,
                    min_std: float = 1e-2) -> 'NormStats':
        """Compute statistics from (N, A) actions and (N, A) joint positions."""
        def moments(x: np.ndarray) -> Tuple[Sequence[float], Sequence[float]]:
            x = np.asarray(x, dtype=np.float64)
            x = x.reshape(-1, x.shape[-1])  # (N, A)
            return x.mean(0).tolist(), np.maximum(x.std(0), min_std).tolist()

        action_mean, action_std = moments(actions)
        proprio_mean, proprio_std = moments(joint_positions)
        return cls(action_mean, action_std, proprio_mean, proprio_std)

    def tensors(self, device=None) -> Dict[str, torch.Tensor]:
        """Return the four fields as float32 (A,) tensors."""
        return {name: torch.tensor(getattr(self, name), dtype=torch.float32, device=device)
                for name in FIELDS}

    def to_dict(self) -> Dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {name: list(getattr(self, name)) for name in FIELDS}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> 'NormStats':
        """Invert `to_dict`; unknown or missing keys raise naming them."""
        unknown, missing = sorted(set(data) - set(FIELDS)), sorted(set(FIELDS) - set(data))
        if unknown or missing:
            raise ValueError(f'NormStats: unknown keys {unknown}, missing keys {missing}')
        return cls(**data)
