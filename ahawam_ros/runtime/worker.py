"""A daemon thread that runs one step whenever it is woken: the optional runtime workers."""

import threading
from typing import Callable, Optional


class WakeableWorker:
    """
    Calls `step()` in its own daemon thread after each `wake()`, or every `poll` seconds.

    Wake-ups that arrive while a step runs collapse into one further step (latest wins).

    Parameters
    ----------
    step : Callable[[], object]
        The work (for example `ExecutorCore.compute_chunk`); must not raise.
    name : str
        Thread name, for debuggers and logs.
    poll : float
        Longest real-time wait (s) between steps without a wake-up.

    """

    def __init__(self, step: Callable[[], object], name: str, poll: float):
        self._step = step
        self._name = name
        self._poll = poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def wake(self) -> None:
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (no-op if it runs)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop after the current step; True if the thread ended within `timeout` seconds."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._poll)
            self._wake.clear()
            if not self._stop.is_set():
                self._step()
