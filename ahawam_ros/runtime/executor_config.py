"""
The executor core's config and results.

`ExecutorCoreConfig`, each tick's `Command`, and each update's `ChunkOutcome`.

Split from `executor_core.py` (which re-exports them) so that the core reads as its behaviour.
"""

from dataclasses import dataclass
import math
from typing import NamedTuple, Optional

from ahawam_ros.runtime.chunk_scheduler import ActionChunk, SchedulerConfig
from ahawam_ros.runtime.safety import SafetyConfig
from ahawam_ros.runtime.stamps import StampConfig
from ahawam_ros.runtime.update_timing import SCHEDULES
import numpy as np


@dataclass(frozen=True)
class ExecutorCoreConfig:
    """
    The executor core's config; validated on construction.

    Built from `ExecutorSettings` by `settings.executor_core_config`, which holds the defaults.

    Attributes
    ----------
    safety : SafetyConfig
        Joint limits, max step, max context and joint-state ages.
    scheduler : SchedulerConfig
        Seam blending.
    max_image_age : float
        Frames older than this (s) are not used to compute a chunk.
    max_joint_excess : float
        A joint state further outside the safety limits than this is refused (impossible).
    schedule : str
        When the next update starts (`update_timing`): 'latency' when the actions
        left in the plan fall to the predicted update latency plus `lead_margin_steps`;
        'spacing' as soon as `execute_steps` allows.
    execute_steps : int
        Minimum spacing, both schedules: compute a chunk only from a joint state at least this
        many control steps newer than the newest chunk's step 0 (the paper executes 4 of 16
        actions, then asks again); 0: no minimum ('spacing' then recomputes whenever an input
        changed).
    lead_percentile : float
        Percentile, in (0, 100], of the recent update latencies that predicts the next one.
    lead_margin_steps : int
        Control steps added to the predicted latency.
    worker_poll : float
        Longest real-time wait (s) of the worker between checks when no input arrives.
    stats_window : int
        Samples kept for latency percentiles.
    stamps : StampConfig
        How far ahead of the clock an input's stamp may lie, and what counts as unset.

    """

    safety: SafetyConfig
    scheduler: SchedulerConfig
    max_image_age: float
    max_joint_excess: float
    schedule: str
    execute_steps: int
    lead_percentile: float
    lead_margin_steps: int
    stamps: StampConfig
    worker_poll: float = 0.02
    stats_window: int = 200

    def __post_init__(self):
        for name in ('max_image_age', 'worker_poll'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f'{name} must be a finite number > 0, got {value}')
        if not (math.isfinite(self.max_joint_excess) and self.max_joint_excess >= 0.0):
            raise ValueError(f'max_joint_excess must be a finite number >= 0, got '
                             f'{self.max_joint_excess}')
        if self.schedule not in SCHEDULES:
            raise ValueError(f'schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}')
        for name in ('execute_steps', 'lead_margin_steps'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        if not (math.isfinite(self.lead_percentile) and 0.0 < self.lead_percentile <= 100.0):
            raise ValueError(f'lead_percentile must be in (0, 100], got {self.lead_percentile}')
        if self.stats_window < 1:
            raise ValueError(f'stats_window must be >= 1, got {self.stats_window}')


@dataclass(frozen=True)
class Command:
    """
    One joint command for the command timer; always safe to send.

    Attributes
    ----------
    positions : np.ndarray or None
        float64 (A,) joint targets. None only before the first fresh joint state (send
        nothing then).
    is_hold : bool
        True when holding (first command, stale inputs, no chunk, rejected action).
    reason : str
        A `HoldReason` value; 'ok' when executing.
    context_seq : int
        Sequence number of the context behind the action (-1 if none).
    context_age : float
        Seconds since that context's observation (NaN if none).
    stamp : float
        Time (s) the command is for.
    clipped, rate_limited : bool
        The action hit the joint limits / the max-step clamp.
    detail : str
        What a hold is waiting for, when known (the silent camera's topic and age).
    path : np.ndarray or None
        float64 (P, A): row 0 is `positions`, row k the safe command planned for
        `stamp + k * path_period` (`runtime/command_path.py`); one row for a hold. None with
        `positions`.
    velocities : np.ndarray or None
        float64 (P, A) joint velocities along `path` (zero at its last row, and for a hold).
    path_period : float
        Seconds between two rows of `path` (the plan's control period; NaN for one row).

    """

    positions: Optional[np.ndarray]
    is_hold: bool
    reason: str
    context_seq: int
    context_age: float
    stamp: float
    clipped: bool = False
    rate_limited: bool = False
    detail: str = ''
    path: Optional[np.ndarray] = None
    velocities: Optional[np.ndarray] = None
    path_period: float = math.nan


class ChunkOutcome(NamedTuple):
    """Result of one `compute_chunk` call: 'accepted', or why it was skipped or dropped."""

    status: str
    latency: float  # wall-clock seconds of policy.predict_chunk, NaN if not called
    context_seq: int
    chunk: Optional[ActionChunk] = None  # the chunk handed to the scheduler, when accepted
