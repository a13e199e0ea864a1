"""A daemon thread that runs one step whenever it is woken: the runtime's inference workers."""

import logging
import threading
from typing import Callable, Optional

_LOG = logging.getLogger(__name__)


class WakeableWorker:
    """
    Calls `step()` in its own daemon thread after each `wake()`, or every `poll` seconds.

    Wake-ups that arrive while a step runs collapse into one further step (latest wins). A step
    that raises is logged (once per distinct error) and the worker goes on: a failing publish
    must not silently end inference.

    Parameters
    ----------
    step : Callable[[], object]
        The work (for example `ExecutorCore.compute_chunk`).
    name : str
        Thread name, for debuggers and logs.
    poll : float
        Longest real-time wait (s) between steps without a wake-up.
    on_start : Callable[[], object], optional
        Runs once in the thread before the first step (per-thread settings such as torch's
        intra-op thread count).

    """

    def __init__(self, step: Callable[[], object], name: str, poll: float,
                 on_start: Optional[Callable[[], object]] = None):
        self._step = step
        self._name = name
        self._poll = poll
        self._on_start = on_start
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.errors = 0
        self.last_error = ''

    def wake(self) -> None:
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, step: Optional[Callable[[], object]] = None,
              on_start: Optional[Callable[[], object]] = None) -> None:
        """Start the thread (no-op if it runs), optionally with another `step` / `on_start`."""
        if self.running:
            return
        self._step = step or self._step
        self._on_start = on_start or self._on_start
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop after the current step; True if the thread ended within `timeout` seconds."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        if self._on_start is not None:
            self._guarded(self._on_start)
        while not self._stop.is_set():
            self._wake.wait(self._poll)
            self._wake.clear()
            if not self._stop.is_set():
                self._guarded(self._step)

    def _guarded(self, function: Callable[[], object]) -> None:
        try:
            function()
        except Exception as error:  # keep the worker alive; say what went wrong once
            self.errors += 1
            message = f'{type(error).__name__}: {error}'
            if message != self.last_error:
                _LOG.error('%s: %s', self._name, message, exc_info=error)
            self.last_error = message
