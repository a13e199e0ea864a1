"""
A daemon thread that runs one step whenever it is woken: the runtime's inference workers.

Each worker may set its own thread's nice value (Linux schedules threads, and
`os.setpriority(PRIO_PROCESS, native thread id, nice)` sets one thread's nice): the planner
runs niced down so that the executor's updates win the cores. Lowering a priority (a larger
nice) is always allowed; raising it (a smaller nice than the current one) needs CAP_SYS_NICE or
root, and a refusal is logged once and reported, never raised.
"""

from dataclasses import dataclass
import logging
import os
import threading
from typing import Callable, Optional

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThreadPriority:
    """
    The outcome of setting a worker thread's nice value.

    Attributes
    ----------
    requested : int
        The nice value asked for.
    applied : int or None
        The thread's nice value read back afterwards (None where it cannot be read).
    error : str
        Why the request was refused ('' when applied).

    """

    requested: int
    applied: Optional[int]
    error: str = ''

    @property
    def refused(self) -> bool:
        return bool(self.error)

    def describe(self) -> str:
        if self.refused:
            return f'nice {self.requested} refused ({self.error}), running at {self.applied}'
        return f'nice {self.applied}'


def _read_nice(thread_id: int) -> Optional[int]:
    try:
        return os.getpriority(os.PRIO_PROCESS, thread_id)
    except (OSError, AttributeError):
        return None


def set_thread_nice(nice: int) -> ThreadPriority:
    """
    Set the calling thread's nice value (Linux: per thread); report, never raise.

    Parameters
    ----------
    nice : int
        -20 (highest priority) .. 19 (lowest).

    Returns
    -------
    ThreadPriority
        What was asked, the value read back, and the refusal reason if any.

    """
    thread_id = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread_id, int(nice))
    except (OSError, AttributeError) as error:  # EACCES / EPERM without CAP_SYS_NICE
        return ThreadPriority(int(nice), _read_nice(thread_id), f'{type(error).__name__}: '
                                                                f'{error}')
    return ThreadPriority(int(nice), _read_nice(thread_id))


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
    nice : int, optional
        The thread's nice value, set first thing in the thread (None: inherit).

    Attributes
    ----------
    priority : ThreadPriority or None
        What setting `nice` gave, once the thread has started (None when not asked).

    """

    def __init__(self, step: Callable[[], object], name: str, poll: float,
                 on_start: Optional[Callable[[], object]] = None, nice: Optional[int] = None):
        self._step = step
        self._name = name
        self._poll = poll
        self._on_start = on_start
        self._nice = nice
        self._started = threading.Event()
        self.priority: Optional[ThreadPriority] = None
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

    @property
    def native_id(self) -> Optional[int]:
        """Return the OS thread id of the running thread (None when not running)."""
        thread = self._thread
        return thread.native_id if thread is not None and thread.is_alive() else None

    def wait_started(self, timeout: float = 5.0) -> bool:
        """Wait until the thread has applied its priority and run `on_start`."""
        return self._started.wait(timeout)

    def start(self, step: Optional[Callable[[], object]] = None,
              on_start: Optional[Callable[[], object]] = None,
              nice: Optional[int] = None) -> None:
        """
        Start the thread (no-op if it runs), optionally with another `step` / `on_start`.

        `nice` (if given) replaces the nice value of the constructor.
        """
        if self.running:
            return
        self._step = step or self._step
        self._on_start = on_start or self._on_start
        self._nice = self._nice if nice is None else nice
        self._started.clear()
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
        if self._nice is not None:
            self._apply_nice(self._nice)
        if self._on_start is not None:
            self._guarded(self._on_start)
        self._started.set()
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

    def _apply_nice(self, nice: int) -> None:
        priority = set_thread_nice(nice)
        if priority != self.priority:  # once per distinct outcome, not per restart
            if priority.refused:
                _LOG.warning('%s: %s', self._name, priority.describe())
            else:
                _LOG.info('%s: %s', self._name, priority.describe())
        self.priority = priority

    def priority_stats(self) -> dict:
        """Return 'worker_nice' (applied, NaN if unknown) and 'worker_nice_refused' (0 / 1)."""
        priority = self.priority
        if priority is None:
            return {}
        applied = float('nan') if priority.applied is None else float(priority.applied)
        return {'worker_nice': applied, 'worker_nice_refused': float(priority.refused)}


class WorkerHost:
    """
    The public side of a core's `WakeableWorker`, shared by `ExecutorCore` and `PlannerCore`.

    The core makes `self._worker` in its `__init__` with its own default step (a chunk or a
    refresh), thread name and poll period.
    """

    _worker: WakeableWorker

    def start_worker(self, step: Optional[Callable[[], object]] = None,
                     on_start: Optional[Callable[[], object]] = None,
                     nice: Optional[int] = None) -> None:
        """
        Run the core's work in a daemon thread, woken by new inputs (and every `worker_poll` s).

        Parameters
        ----------
        step : Callable[[], object], optional
            What the thread runs per wake-up; the core's own step by default (`compute_chunk`,
            `refresh`). The ROS nodes pass theirs (the newest inputs in, the step, publish) so
            that no inference runs on rclpy's executor threads.
        on_start : Callable[[], object], optional
            Runs once in the thread first (torch thread count).
        nice : int, optional
            The thread's nice value (see `set_thread_nice`); None inherits.

        """
        self._worker.start(step, on_start, nice)

    @property
    def worker(self) -> WakeableWorker:
        """Return the worker thread: its id and applied priority."""
        return self._worker

    def stop_worker(self, timeout: float = 5.0) -> bool:
        """Stop the worker after its current step; True if it ended within `timeout`."""
        return self._worker.stop(timeout)
