"""
Time alignment and seam blending of action chunks for the command timer.

Shapes: K chunk length, A action dim, N actions left in the executing plan.

A chunk is computed off the command timer from an observation taken at `t0`; its action k is
meant for time t0 + k * period. When it arrives at `now`, the actions already in the past (the
inference delay) are dropped: the plan continues at index round((now - t0) / period). Those
stale actions are counted (`stale_actions`): a well-timed update keeps them at about its own
latency in control steps, and they are the actions a faster update would have used. The seam
with what was executing is blended (see `BlendMode`), and the command timer reads the action
for its own time with `next_action(now)`; past the end of the plan there is none (hold).
"""

from dataclasses import dataclass
import enum
import math
import threading
from typing import NamedTuple, Optional, Tuple

import numpy as np

ACCEPTED = 'accepted'
DROP_STALE = 'stale'  # every action of the chunk is already in the past
DROP_OUT_OF_ORDER = 'out_of_order'  # observed before the chunk that is executing


class BlendMode(str, enum.Enum):
    """
    How the new chunk takes over from the plan that is executing.

    NONE: hard switch at the seam.
    LINEAR: over the first B new actions, a = (1 - w) old + w new with w = (b + 1) / (B + 1),
        b = 0 .. B - 1; from action B on, only the new chunk. Removes the step at the seam and
        lets new information take over within B ticks.
    WEIGHTED: temporal ensembling as in ACT: every time step averages all predictions made for
        it, the i-th oldest weighted exp(-m i) (m = `ensemble_decay`; m > 0 favours older
        predictions, smoother but laggier, m < 0 newer ones). Spans the whole overlap.
    """

    NONE = 'none'
    LINEAR = 'linear'
    WEIGHTED = 'weighted'


@dataclass(frozen=True)
class SchedulerConfig:
    """
    Chunk scheduler settings (built from `ExecutorSettings`, which holds the defaults).

    Attributes
    ----------
    blend : str
        A `BlendMode` value: 'none', 'linear' or 'weighted'.
    blend_steps : int
        B, crossfade length in control steps for 'linear' (0 is a hard switch).
    ensemble_decay : float
        m of the 'weighted' mode; ACT uses 0.01.

    """

    blend: str
    blend_steps: int
    ensemble_decay: float

    def __post_init__(self):
        valid = [mode.value for mode in BlendMode]
        if self.blend not in valid:
            raise ValueError(f'blend must be one of {valid}, got {self.blend!r}')
        if self.blend_steps < 0:
            raise ValueError(f'blend_steps must be >= 0, got {self.blend_steps}')
        if not math.isfinite(self.ensemble_decay):
            raise ValueError(f'ensemble_decay must be finite, got {self.ensemble_decay}')


@dataclass(frozen=True)
class ActionChunk:
    """
    A chunk as it leaves the policy, stamped for alignment.

    Attributes
    ----------
    actions : np.ndarray
        (K, A) absolute joint targets; action k is for time t0 + k * period.
    t0 : float
        Time (s) of the observation the chunk was computed from (its step 0).
    period : float
        Control period (s).
    context_seq : int
        Sequence number of the planner context used (-1 if unknown).
    context_stamp : float
        Observation time (s) of that context; used for the stale-context check.

    """

    actions: np.ndarray
    t0: float
    period: float
    context_seq: int = -1
    context_stamp: float = math.nan

    def __post_init__(self):
        if self.actions.ndim != 2 or self.actions.shape[0] < 1:
            raise ValueError(f'actions must be (K, A) with K >= 1, got {self.actions.shape}')
        if not self.period > 0.0:
            raise ValueError(f'period must be > 0, got {self.period}')


class PlannedAction(NamedTuple):
    """The action for one command tick, the plan's next ones, and where they came from."""

    action: np.ndarray  # (A,)
    index: int  # index into the executing plan
    context_seq: int
    context_stamp: float
    ahead: np.ndarray  # (n, A) the plan's actions after `action`, one period apart (n >= 0)
    period: float  # s between two actions of the plan


@dataclass(frozen=True)
class _Plan:
    """The executing timeline: row n is for time t0 + n * period (N rows)."""

    actions: np.ndarray  # (N, A) float64
    weight: np.ndarray  # (N,) sum of ensemble weights (WEIGHTED only)
    count: np.ndarray  # (N,) predictions averaged into each row (WEIGHTED only)
    t0: float
    period: float
    chunk_t0: float
    context_seq: int
    context_stamp: float

    def row_at(self, t: float) -> int:
        return _nearest_index(t, self.t0, self.period)


def _nearest_index(t: float, t0: float, period: float) -> int:
    # floor(x + 0.5), not round(): Python rounds half to even, which is less predictable
    return int(math.floor((t - t0) / period + 0.5))


class ChunkScheduler:
    """
    Aligns arriving chunks by time and serves one action per command tick; thread-safe.

    `offer` is called by the chunk worker, `next_action` by the command timer.

    Parameters
    ----------
    config : SchedulerConfig
        Blend settings.

    """

    def __init__(self, config: SchedulerConfig):
        self.config = config
        self._mode = BlendMode(config.blend)
        self._plan: Optional[_Plan] = None
        self._lock = threading.Lock()
        self._stale_total = 0  # actions already in the past at arrival, over every chunk
        self._stale_chunks = 0  # chunks counted in _stale_total (accepted or all stale)

    def reset(self) -> None:
        """Drop the executing plan (new episode, or after a fault)."""
        with self._lock:
            self._plan = None

    def reconfigure(self, config: SchedulerConfig) -> None:
        """Blend the next accepted chunk with new settings; the executing plan is kept."""
        with self._lock:
            self.config, self._mode = config, BlendMode(config.blend)

    def offer(self, chunk: ActionChunk, now: float) -> str:
        """
        Align `chunk` to `now`, blend it into the executing plan and make it current.

        Parameters
        ----------
        chunk : ActionChunk
            The new chunk, (K, A).
        now : float
            Arrival time (s), read after inference finished.

        Returns
        -------
        str
            `ACCEPTED`, or why it was dropped: `DROP_STALE` (all K actions are in the past)
            or `DROP_OUT_OF_ORDER` (computed from an observation older than the current one).

        """
        first = max(0, _nearest_index(now, chunk.t0, chunk.period))
        with self._lock:
            if first >= chunk.actions.shape[0]:
                self._count_stale(chunk.actions.shape[0])
                return DROP_STALE
            old = self._plan
            if old is not None and chunk.t0 < old.chunk_t0:
                return DROP_OUT_OF_ORDER
            self._count_stale(first)
            self._plan = self._merge(old, chunk, first)
        return ACCEPTED

    def _count_stale(self, actions: int) -> None:
        self._stale_total += actions
        self._stale_chunks += 1

    def stale_actions(self) -> Tuple[int, int]:
        """
        Return (stale actions, chunks): actions already past at arrival, over every chunk.

        Counts accepted chunks and chunks dropped as wholly stale (all K actions), over the
        scheduler's life (a `reset` keeps them, as the other runtime counters).
        """
        with self._lock:
            return self._stale_total, self._stale_chunks

    def next_action(self, now: float, ahead: int = 0) -> Optional[PlannedAction]:
        """
        Return the action for time `now`, or None when no plan exists or it is exhausted.

        A tick earlier than the plan's first action (an observation stamped in the future)
        gets the first action. `ahead`: how many of the plan's following actions to return
        with it (fewer where the plan ends).
        """
        with self._lock:
            plan = self._plan
        if plan is None:
            return None
        row = max(0, plan.row_at(now))
        if row >= plan.actions.shape[0]:
            return None
        return PlannedAction(plan.actions[row].copy(), row, plan.context_seq, plan.context_stamp,
                             plan.actions[row + 1:row + 1 + max(0, ahead)].copy(), plan.period)

    def remaining(self, now: float) -> int:
        """Return how many actions of the plan lie at or after `now` (0 without a plan)."""
        with self._lock:
            plan = self._plan
        if plan is None:
            return 0
        return max(0, plan.actions.shape[0] - max(0, plan.row_at(now)))

    def steps_since_chunk(self, now: float) -> Optional[int]:
        """Return the index, in the newest accepted chunk, of the action due at `now`."""
        with self._lock:
            plan = self._plan
        if plan is None:
            return None
        return _nearest_index(now, plan.chunk_t0, plan.period)

    def _merge(self, old: Optional[_Plan], chunk: ActionChunk, first: int) -> _Plan:
        new = chunk.actions[first:].astype(np.float64)  # (N, A)
        count = np.ones(new.shape[0])
        weight = np.ones(new.shape[0])
        start = chunk.t0 + first * chunk.period
        if old is not None and self._mode is not BlendMode.NONE:
            for n in range(new.shape[0]):
                row = old.row_at(start + n * chunk.period)
                if not 0 <= row < old.actions.shape[0]:
                    continue
                if self._mode is BlendMode.LINEAR:
                    if n >= self.config.blend_steps:
                        break
                    w = (n + 1) / (self.config.blend_steps + 1)
                    new[n] = (1.0 - w) * old.actions[row] + w * new[n]
                else:
                    w = math.exp(-self.config.ensemble_decay * old.count[row])
                    total = old.weight[row] + w
                    new[n] = (old.weight[row] * old.actions[row] + w * new[n]) / total
                    weight[n], count[n] = total, old.count[row] + 1
        return _Plan(actions=new, weight=weight, count=count, t0=start, period=chunk.period,
                     chunk_t0=chunk.t0, context_seq=chunk.context_seq,
                     context_stamp=chunk.context_stamp)
