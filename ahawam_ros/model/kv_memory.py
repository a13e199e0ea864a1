"""
The planner context and the rolling K/V memory of planner refreshes.

A refresh produces, for every layer, the keys (after q/k norm and RoPE at the frame's global
temporal position) and values of the current frame's S tokens. `RollingKVMemory` keeps the
last N of them (FIFO) and hands the planner their concatenation, which every layer of the
next refresh prepends to its own keys/values. Memory and per-refresh cost are bounded by N.

Shapes: L layers, B batch, H heads, S tokens per frame, hd head dim, N capacity.
"""

from collections import deque
from dataclasses import dataclass
from typing import Deque, Optional, Tuple

import torch


@dataclass(frozen=True)
class PlannerContext:
    """
    One planner refresh's layerwise context, shared by reference and never mutated.

    Attributes
    ----------
    keys, values : torch.Tensor
        (L, H, M, hd) float32: per layer, the keys (post norm and RoPE) and values of the M = S
        tokens of the current frame. `keys[l]` is layer l; the executor reads views of these
        tensors and never copies or writes them.
    step : int
        Control step of the observation the planner saw.
    position : float
        Its global temporal RoPE position (step / rope_steps_per_unit).
    version : int
        Refresh counter in the episode (1 for the first refresh after `reset`).

    """

    keys: torch.Tensor
    values: torch.Tensor
    step: int
    position: float
    version: int

    @property
    def num_layers(self) -> int:
        """L."""
        return self.keys.shape[0]

    @property
    def num_tokens(self) -> int:
        """M."""
        return self.keys.shape[2]


class RollingKVMemory:
    """
    FIFO of the last `capacity` refreshes' per-layer keys and values.

    Parameters
    ----------
    capacity : int
        N, the number of refreshes kept.

    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f'RollingKVMemory capacity must be >= 1, got {capacity}')
        self.capacity = capacity
        self._entries: Deque[Tuple[torch.Tensor, torch.Tensor]] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._entries)

    def reset(self) -> None:
        """Forget every entry (a new episode)."""
        self._entries.clear()

    def append(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store one refresh's (L, B, H, S, hd) keys and values, dropping the oldest past N."""
        self._entries.append((keys, values))

    def entries(self) -> Tuple[Tuple[torch.Tensor, torch.Tensor], ...]:
        """Return the stored (keys, values) pairs, oldest first."""
        return tuple(self._entries)

    def stacked(self) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """Concatenation of all entries along tokens, (L, B, H, len * S, hd) each, or None."""
        if not self._entries:
            return None
        keys = torch.cat([k for k, _ in self._entries], dim=3)  # (L, B, H, n S, hd)
        values = torch.cat([v for _, v in self._entries], dim=3)
        return keys, values

    def padded(self, blank: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        All entries, then `blank` (zeros shaped like one entry) up to the capacity.

        A compiled refresh takes this fixed-size memory and masks the padding out: one graph
        serves every fill. Returns keys and values, (L, B, H, N S, hd) each.
        """
        pad = [blank] * (self.capacity - len(self._entries))
        keys = torch.cat([k for k, _ in self._entries] + pad, dim=3)  # (L, B, H, N S, hd)
        values = torch.cat([v for _, v in self._entries] + pad, dim=3)
        return keys, values
