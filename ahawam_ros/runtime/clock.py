"""A manually driven clock for tests and for replaying recorded time (the bag evaluator)."""

import threading


class ManualClock:
    """
    A clock that moves only when told; call the instance to read it (seconds).

    Thread-safe. Pass `clock` wherever the runtime takes a clock, and `clock.advance` as the
    `sleep` of `FakePolicy` to simulate inference latency without waiting.

    Parameters
    ----------
    start : float
        Initial time (s).

    """

    def __init__(self, start: float = 0.0):
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by `seconds` (>= 0) and return the new time."""
        if seconds < 0.0:
            raise ValueError(f'a clock cannot go back: advance({seconds})')
        with self._lock:
            self._now += float(seconds)
            return self._now

    def set_time(self, seconds: float) -> None:
        """Jump to time `seconds`, which must not be in the past."""
        with self._lock:
            if seconds < self._now:
                raise ValueError(f'a clock cannot go back: {seconds} < {self._now}')
            self._now = float(seconds)
