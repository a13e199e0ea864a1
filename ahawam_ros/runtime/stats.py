"""Rolling latency statistics and reason counters for runtime diagnostics."""

from collections import Counter, deque
import math
import threading
from typing import Deque, Dict, List

import numpy as np


class RollingStats:
    """
    Percentiles over the last `window` samples (for example latencies in seconds).

    Thread-safe: samples are added from worker threads and read from diagnostics timers.

    Parameters
    ----------
    window : int
        How many of the newest samples are kept.

    """

    def __init__(self, window: int = 200):
        if window < 1:
            raise ValueError(f'window must be >= 1, got {window}')
        self._samples: Deque[float] = deque(maxlen=window)
        self._total = 0
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._samples.append(float(value))
            self._total += 1

    def newest(self, count: int) -> List[float]:
        """Return the newest `count` samples, oldest first (fewer when the window holds fewer)."""
        with self._lock:
            samples = list(self._samples)
        return samples[len(samples) - min(max(count, 0), len(samples)):]

    @property
    def total(self) -> int:
        """Return how many samples were ever added (not only those in the window)."""
        with self._lock:
            return self._total

    def percentile(self, q: float) -> float:
        """
        Return the q-th percentile of the window, NaN when it is empty.

        Parameters
        ----------
        q : float
            Percentile in [0, 100].

        Returns
        -------
        float
            The linearly interpolated percentile, or NaN without samples.

        """
        if not 0.0 <= q <= 100.0:
            raise ValueError(f'q must be in [0, 100], got {q}')
        with self._lock:
            samples = list(self._samples)
        if not samples:
            return math.nan
        return float(np.percentile(np.asarray(samples), q))

    def summary(self, prefix: str) -> Dict[str, float]:
        """Return `{prefix}_p50`, `{prefix}_p95`, `{prefix}_max` and `{prefix}_count`."""
        with self._lock:
            samples = np.asarray(self._samples, dtype=np.float64)
            total = self._total
        if samples.size == 0:
            p50 = p95 = peak = math.nan
        else:
            p50, p95 = (float(v) for v in np.percentile(samples, [50.0, 95.0]))
            peak = float(samples.max())
        return {f'{prefix}_p50': p50, f'{prefix}_p95': p95, f'{prefix}_max': peak,
                f'{prefix}_count': float(total)}


class ReasonCounter:
    """Thread-safe counts of string reasons (holds by reason, dropped chunks by reason)."""

    def __init__(self):
        self._counts: Counter = Counter()
        self._lock = threading.Lock()

    def add(self, reason: str) -> None:
        with self._lock:
            self._counts[str(reason)] += 1

    def get(self, reason: str) -> int:
        with self._lock:
            return self._counts[str(reason)]

    def as_dict(self) -> Dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())
