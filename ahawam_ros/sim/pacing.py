"""
Wall-clock pacing of a fixed-period simulation loop, and its measured real-time factor.

The simulator steps physics every control period on a steady clock. A step that runs late
(a slow render, a busy CPU) is caught up by stepping again at once, up to `max_lag` periods
behind; beyond that the lost time is given up (counted), so a stall never turns into a burst
of hundreds of steps. The real-time factor is simulated seconds per wall second: 1.0 when
the loop keeps its rate, 0.5 at half speed.
"""

from collections import deque
import math
import time
from typing import Callable, Deque, Tuple


class Pacer:
    """
    Deadlines of a loop with period `period` wall seconds.

    Parameters
    ----------
    period : float
        Wall seconds between steps (> 0).
    max_lag : int
        Steps a late loop may run back to back to catch up (>= 0).
    clock : callable
        Steady clock in seconds.

    """

    def __init__(self, period: float, max_lag: int = 5,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        """Start the schedule now."""
        if not period > 0 or max_lag < 0:
            raise ValueError(f'Pacer: period must be > 0 and max_lag >= 0, got {period}, '
                             f'{max_lag}')
        self.period, self.max_lag, self._clock = period, max_lag, clock
        self._next = clock()
        self.given_up = 0  # periods of wall time given up after falling too far behind
        self.late = 0  # steps that began after their deadline

    def delay(self) -> float:
        """Advance to the next deadline; return the seconds to wait for it (0: step now)."""
        self._next += self.period
        now = self._clock()
        behind = now - self._next
        self.late += behind > 0.0
        if behind > self.max_lag * self.period:
            self.given_up += int(behind / self.period)
            self._next = now
        return max(0.0, self._next - now)


class RealTimeMeter:
    """
    Simulated seconds per wall second, over a sliding window and since the start.

    Parameters
    ----------
    window : float
        Wall seconds of the sliding window (> 0).
    clock : callable
        Steady clock in seconds.

    """

    def __init__(self, window: float = 2.0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        """Start measuring now, at simulated time 0."""
        if not window > 0:
            raise ValueError(f'RealTimeMeter: window must be > 0, got {window}')
        self.window, self._clock = window, clock
        self._start = clock()
        self.sim_seconds = 0.0
        self._samples: Deque[Tuple[float, float]] = deque([(self._start, 0.0)])

    def add(self, sim_seconds: float) -> None:
        """Count `sim_seconds` more of simulated time, done by now."""
        self.sim_seconds += sim_seconds
        now = self._clock()
        self._samples.append((now, self.sim_seconds))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    @property
    def wall_seconds(self) -> float:
        """Wall seconds since the start."""
        return self._clock() - self._start

    def factor(self) -> float:
        """Return the real-time factor over the last window (NaN before any wall time)."""
        first_wall, first_sim = self._samples[0]
        elapsed = self._clock() - first_wall
        if elapsed <= 0.0:
            return math.nan
        return (self.sim_seconds - first_sim) / elapsed

    def overall(self) -> float:
        """Return the real-time factor since the start (NaN before any wall time)."""
        elapsed = self.wall_seconds
        return self.sim_seconds / elapsed if elapsed > 0.0 else math.nan
