"""
The interface between the runtime and a world-action policy, and a fake policy for tests.

Shapes: V cameras, H x W pixels, A action dim (joints), K chunk length.
"""

from dataclasses import dataclass
import threading
import time
from typing import Any, Callable, List, Protocol, runtime_checkable, Tuple

import numpy as np
import torch


@runtime_checkable
class ChunkPolicy(Protocol):
    """
    What the runtime calls; the model's internals stay behind it (see docs/DESIGN.md).

    `plan` and `predict_chunk` may run concurrently in different threads (the planner and the
    executor), so an implementation must not mutate a context after returning it.

    Attributes
    ----------
    chunk_len : int
        K, the number of control steps in one chunk.
    action_dim : int
        A, the number of joints.
    control_period : float
        Seconds between two consecutive actions of a chunk.

    """

    chunk_len: int
    action_dim: int
    control_period: float

    def reset(self) -> None:
        """Start a new episode: clear the rolling memory and the time index."""

    def plan(self, images: np.ndarray, step: int) -> Any:
        """
        Run one planner refresh.

        Parameters
        ----------
        images : np.ndarray
            uint8 (V, H, W, 3) RGB, one frame per configured camera.
        step : int
            Control step index of the observation in the episode.

        Returns
        -------
        Any
            An opaque context (for AHA-WAM the per-layer K/V tensors).

        """

    def predict_chunk(self, images: np.ndarray, proprio: np.ndarray, context: Any,
                      step: int) -> np.ndarray:
        """
        Run one executor update.

        Parameters
        ----------
        images : np.ndarray
            uint8 (V, H, W, 3) RGB, the latest frames.
        proprio : np.ndarray
            float32 (A,) joint positions at the chunk start, in robot units.
        context : Any
            A context returned by `plan`.
        step : int
            Control step index of the chunk start in the episode.

        Returns
        -------
        np.ndarray
            float32 (K, A) absolute joint position targets for steps step .. step + K - 1.

        """


def step_at(stamp: float, episode_start: float, period: float) -> int:
    """Return the control step index of time `stamp` in an episode begun at `episode_start`."""
    return max(0, int(round((stamp - episode_start) / period)))


@dataclass(frozen=True)
class FakeContext:
    """
    Context of `FakePolicy`: the planner step and the joint target it steers toward.

    Attributes
    ----------
    step : int
        The step passed to `plan`.
    target : torch.Tensor
        float32 (A,) joint target; a pure function of `step` (see `FakePolicy.target_of`).

    """

    step: int
    target: torch.Tensor


class FakePolicy:
    """
    Deterministic stand-in for AHA-WAM, usable by tests of every layer.

    `plan(images, step)` returns a `FakeContext` whose target depends only on `step`;
    `predict_chunk` returns a linear ramp of K actions from `proprio` to that target, reaching
    it at the last action. Optional artificial latency goes through `sleep`, so a test can pass
    a fake clock's `advance` to simulate slow inference without waiting.

    Parameters
    ----------
    chunk_len : int
        K.
    action_dim : int
        A.
    control_period : float
        Seconds per control step.
    plan_latency, chunk_latency : float
        Seconds `sleep` is called with inside `plan` and `predict_chunk`.
    amplitude : float
        Peak magnitude of the targets (radians); keep it inside the joint limits.
    sleep : Callable[[float], None]
        How latency is spent (`time.sleep` by default).

    Attributes
    ----------
    emit_nan : bool
        When True, `predict_chunk` puts NaN into the middle action of every chunk.
    plan_calls : list of int
        Steps of every `plan` call, in order.
    chunk_calls : list of (int, int)
        (step, context step) of every `predict_chunk` call, in order.

    """

    def __init__(self, chunk_len: int = 8, action_dim: int = 14, control_period: float = 0.02,
                 plan_latency: float = 0.0, chunk_latency: float = 0.0, amplitude: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep):
        if chunk_len < 1 or action_dim < 1 or control_period <= 0.0:
            raise ValueError(
                f'bad FakePolicy shape: chunk_len={chunk_len} action_dim={action_dim} '
                f'control_period={control_period}')
        self.chunk_len = chunk_len
        self.action_dim = action_dim
        self.control_period = control_period
        self.plan_latency = plan_latency
        self.chunk_latency = chunk_latency
        self.amplitude = amplitude
        self.emit_nan = False
        self.resets = 0
        self.plan_calls: List[int] = []
        self.chunk_calls: List[Tuple[int, int]] = []
        self._sleep = sleep
        self._lock = threading.Lock()

    def target_of(self, step: int) -> np.ndarray:
        """Return the float32 (A,) target of the context planned at `step`."""
        phase = 0.05 * step + np.arange(self.action_dim)
        return (self.amplitude * np.sin(phase)).astype(np.float32)

    def reset(self) -> None:
        with self._lock:
            self.resets += 1

    def plan(self, images: np.ndarray, step: int) -> FakeContext:
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f'images must be (V, H, W, 3), got {images.shape}')
        if self.plan_latency > 0.0:
            self._sleep(self.plan_latency)
        with self._lock:
            self.plan_calls.append(int(step))
        return FakeContext(step=int(step), target=torch.from_numpy(self.target_of(step)))

    def predict_chunk(self, images: np.ndarray, proprio: np.ndarray, context: FakeContext,
                      step: int) -> np.ndarray:
        if proprio.shape != (self.action_dim,):
            raise ValueError(f'proprio must be ({self.action_dim},), got {proprio.shape}')
        if self.chunk_latency > 0.0:
            self._sleep(self.chunk_latency)
        start = proprio.astype(np.float32)
        target = context.target.numpy()
        fraction = np.arange(1, self.chunk_len + 1, dtype=np.float32) / self.chunk_len  # (K,)
        actions = start[None, :] + fraction[:, None] * (target - start)[None, :]  # (K, A)
        if self.emit_nan:
            actions[self.chunk_len // 2, :] = np.nan
        with self._lock:
            self.chunk_calls.append((int(step), context.step))
        return actions.astype(np.float32)
