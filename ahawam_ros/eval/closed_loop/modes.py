"""
The evaluation modes: what the executor runs against in async, sync and planner-off.

- async: AHA-WAM, the executor reads the newest planner context (nothing to adapt).
- sync: the Fast-WAM baseline; `SyncPolicy` makes each executor update a whole
  `sync_update` (planner refresh, then the executor, on the same frame).
- planner-off: the executor against `blank_context` (see `ahawam_ros.eval.closed_loop.lockstep`).
"""

from dataclasses import fields, is_dataclass, replace
from typing import Any

from ahawam_ros.runtime.policy_api import ChunkPolicy
import numpy as np
import torch

ASYNC, SYNC, PLANNER_OFF = 'async', 'sync', 'planner-off'
MODES = (ASYNC, SYNC, PLANNER_OFF)
SYNC_CONTEXT = 'sync: the planner runs inside each update'  # what the executor slot holds


class SyncPolicy:
    """
    A policy whose executor update is the synchronous baseline (Fast-WAM).

    `predict_chunk` ignores the context and calls `sync_update`, or, for a policy without one,
    `plan` then `predict_chunk` on the same frame.
    """

    def __init__(self, policy: ChunkPolicy):
        self.policy = policy
        self.chunk_len = policy.chunk_len
        self.action_dim = policy.action_dim
        self.control_period = policy.control_period

    def reset(self) -> None:
        self.policy.reset()

    def plan(self, images: np.ndarray, step: int) -> Any:
        return self.policy.plan(images, step)

    def predict_chunk(self, images: np.ndarray, proprio: np.ndarray, context: Any,
                      step: int) -> np.ndarray:
        sync_update = getattr(self.policy, 'sync_update', None)
        if sync_update is not None:
            return sync_update(images, proprio, step)
        return self.policy.predict_chunk(images, proprio, self.policy.plan(images, step), step)


def blank_context(context: Any) -> Any:
    """
    Return `context` with every tensor or array replaced by zeros of its shape and dtype.

    Works on a tensor, an array, a dataclass (fields replaced) or a tuple / list of these;
    other values are kept.
    """
    if isinstance(context, torch.Tensor):
        return torch.zeros_like(context)
    if isinstance(context, np.ndarray):
        return np.zeros_like(context)
    if is_dataclass(context) and not isinstance(context, type):
        return replace(context, **{f.name: blank_context(getattr(context, f.name))
                                   for f in fields(context) if f.init})
    if isinstance(context, (tuple, list)):
        return type(context)(blank_context(item) for item in context)
    return context
