"""
When the executor starts its next update: latency-aware chunk scheduling.

An update computed from the joint state at t0 arrives one inference latency L later; by then
the plan has moved on, and the chunk's first round(L / period) actions are already in the past
(counted as stale by the `ChunkScheduler`). For the new chunk to take over before the
executing plan runs out (a hold), the update must start while at least L / period actions are
left. The 'latency' schedule therefore starts it when the actions left fall to

    lead = ceil(p_q(L) / period) + margin

control steps, p_q a high running percentile (90 by default) of the recent update latencies
(the executor's own window), and not earlier: a later start uses a fresher observation and
spends no core on chunks that would mostly be blended away. Before the first latency is
measured there is no estimate, and every new input is due (warm-up).

`execute_steps` keeps its meaning in both schedules as a minimum spacing: never an update from
a joint state fewer than that many control steps after the newest chunk's step 0 (0: no
minimum). The 'spacing' schedule is the earlier rule alone: an update as soon as the spacing
allows (with 0, on every new input; the most reactive and the most expensive).
"""

import math
from typing import Optional

from ahawam_ros.runtime.stats import RollingStats

LATENCY, SPACING = 'latency', 'spacing'
SCHEDULES = (LATENCY, SPACING)
NOT_DUE = 'not_due'
_STEP_TOLERANCE = 1e-6  # float noise of a latency must not add a control step


def lead_steps(latency: float, period: float, margin: int) -> int:
    """Return ceil(latency / period) + margin: actions left when an update must start."""
    return max(0, math.ceil(latency / period - _STEP_TOLERANCE)) + margin


class UpdateTiming:
    """
    Decides whether the executor's next update is due; thread-safe (reads only).

    Parameters
    ----------
    schedule : str
        'latency' or 'spacing' (see the module docstring).
    execute_steps : int
        Minimum spacing in control steps (0: none).
    percentile : float
        q of the latency estimate, in (0, 100].
    margin : int
        Control steps added to the estimate.
    latencies : RollingStats
        The executor's update latencies (s); read, never written here.
    period : float
        Control period (s).

    """

    def __init__(self, schedule: str, execute_steps: int, percentile: float, margin: int,
                 latencies: RollingStats, period: float):
        self.period = period
        self._latencies = latencies
        self.reconfigure(schedule, execute_steps, percentile, margin)

    def reconfigure(self, schedule: str, execute_steps: int, percentile: float,
                    margin: int) -> None:
        """Use new rules from the next decision on (arguments as the constructor's)."""
        if schedule not in SCHEDULES:
            raise ValueError(f'schedule must be one of {list(SCHEDULES)}, got {schedule!r}')
        self.schedule = schedule
        self.execute_steps = execute_steps
        self.percentile = percentile
        self.margin = margin
        self._cached = (-1, None)  # (samples seen, lead): a percentile only per new sample

    def lead(self) -> Optional[int]:
        """Return the lead in control steps, None before any latency was measured."""
        total, lead = self._cached
        if total == self._latencies.total:
            return lead
        total = self._latencies.total
        latency = self._latencies.percentile(self.percentile)
        lead = None if math.isnan(latency) else lead_steps(latency, self.period, self.margin)
        self._cached = (total, lead)
        return lead

    def skip_reason(self, scheduler, joints_stamp: float, now: float) -> str:
        """
        Return 'not_due' when the next update should wait, '' when it is due.

        Parameters
        ----------
        scheduler : ChunkScheduler
            The executing plan (`steps_since_chunk`, `remaining`).
        joints_stamp : float
            Stamp (s) of the joint state the update would start from.
        now : float
            Current time (s).

        """
        executed = scheduler.steps_since_chunk(joints_stamp)
        if executed is None:
            return ''  # nothing executing: start at once
        if self.execute_steps and executed < self.execute_steps:
            return NOT_DUE
        if self.schedule == SPACING:
            return ''
        lead = self.lead()
        if lead is not None and scheduler.remaining(now) > lead:
            return NOT_DUE
        return ''

    def stats(self) -> dict:
        """Return 'update_lead_steps' (NaN before the first latency)."""
        lead = self.lead()
        return {'update_lead_steps': math.nan if lead is None else float(lead)}
