"""Run nodes on rclpy's events executor and shut down cleanly (Ctrl-C, SIGTERM)."""

import logging
import os
from pathlib import Path
import signal
import sys
import threading
import time
from typing import Callable, List, Optional, Sequence

from ahawam_ros.ros.log_bridge import bridge_core_logging
from ahawam_ros.runtime.orchestrator import shorten_gil_switch_interval
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import Executor, ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

# Executor threads (MultiThreadedExecutor only): the command timer, the inputs of each node and
# the slow timers never wait for one another. Inference does not run on them (the runtime's own
# worker threads do it).
DEFAULT_THREADS = 4

# Which rclpy executor spins the nodes: 'events' (default) or 'multi' (`AHAWAM_EXECUTOR`).
# Since inference left the callbacks (runtime workers), every callback is short, and the cost
# that remains is the executor's own Python: the MultiThreadedExecutor rebuilds its wait set
# for every callback, holding the GIL the command timer and the workers need. The demo process
# (planner, executor, supervisor, bag recorder) measured, packaged checkpoint, 2 quiet cores:
# MultiThreadedExecutor(4) planner p50 800 ms, executor p50 90 ms, 64 % holds after warm-up
# (py-spy: its spin thread busy 73 % of the time); EventsExecutor (rcl events in C++, one
# thread) 271 ms, 46 ms, 0 % holds.
EXECUTOR_KINDS = ('events', 'multi')
EXECUTOR_ENV = 'AHAWAM_EXECUTOR'


def make_executor(context=None, num_threads: int = DEFAULT_THREADS) -> Executor:
    """Return the executor that spins the nodes (`EXECUTOR_ENV` chooses; events by default)."""
    kind = os.environ.get(EXECUTOR_ENV, 'events') or 'events'
    if kind not in EXECUTOR_KINDS:
        raise ValueError(f'{EXECUTOR_ENV} must be one of {list(EXECUTOR_KINDS)}, got {kind!r}')
    if kind == 'events':
        from rclpy.experimental import EventsExecutor
        return EventsExecutor(context=context)
    return MultiThreadedExecutor(num_threads=num_threads, context=context)


def responsive_gil() -> None:
    """Shorten this process's GIL switch interval (runtime.orchestrator says why and how far)."""
    shorten_gil_switch_interval()


def shutdown_executor(executor, timeout: float = 5.0) -> None:
    """
    Shut an executor down after the callbacks it has started or handed out have ended.

    Call it once nothing spins any more. rclpy's `Executor.shutdown` (9.1.2) destroys the
    executor's guard condition without waiting for the handlers already handed to the thread
    pool, and those trigger it when they end ("cannot use Destroyable ..." / "exception was
    never retrieved" at exit): wait for them here. The handler list and the work tracker are
    private to rclpy; where a version lacks them, this is a plain shutdown.
    """
    deadline = time.monotonic() + timeout
    for handler in list(getattr(executor, '_futures', ())):
        while not handler.done() and time.monotonic() < deadline:
            time.sleep(0.002)
    tracker = getattr(executor, '_work_tracker', None)
    if tracker is not None:
        tracker.wait(max(0.0, deadline - time.monotonic()))
    executor.shutdown(timeout_sec=max(0.0, deadline - time.monotonic()))


class SpinThread:
    """
    Spins an executor in a background thread until `stop()`, then shuts it down cleanly.

    `Executor.spin()` in a thread only ends when the executor is shut down under it, which
    races with the handlers it has just handed out; this loop ends first, then
    `shutdown_executor` lets those handlers finish.
    """

    def __init__(self, executor, name: str = 'ros-spin'):
        self.executor = executor
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=name, daemon=True)

    def start(self) -> 'SpinThread':
        self._thread.start()
        return self

    def _spin(self) -> None:
        context = self.executor.context
        while not self._stop.is_set() and context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except ExternalShutdownException:
                break

    def stop(self, timeout: float = 5.0) -> None:
        """End the loop, wait for the callbacks in flight, shut the executor down."""
        self._stop.set()
        self._thread.join(timeout)
        shutdown_executor(self.executor, timeout)


# How often the spinning main thread looks at the shutdown request. Python runs a signal
# handler only between bytecodes of the main thread: a spin blocked in rcl_wait with no timeout
# (a node with only subscriptions, like the simulator) would not see a signal until a message
# woke it.
SIGNAL_POLL_S = 0.1
SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# What building a node from bad parameters or a bad checkpoint raises (config validation,
# missing files, rclpy's parameter checks); anything else is a bug and keeps its traceback.
STARTUP_ERRORS = (ValueError, OSError, ParameterException)
_LOG = logging.getLogger(__name__)


class ShutdownSignals:
    """
    SIGINT and SIGTERM request ONE shutdown; every later signal is counted and ignored.

    A terminal Ctrl-C signals the whole process group, and `ros2 launch` then sends its own
    SIGINT (later SIGTERM): the second signal must not interrupt the shutdown that the first
    started (a `KeyboardInterrupt` inside a shutdown hook skips the final hold). Use as a
    context manager in the main thread. On exit the previous handlers come back, unless a
    shutdown began and `restore` is False: then the process is ending, and a late signal
    (launch's SIGTERM right after its SIGINT) must not kill it before it exits with 0.

    Parameters
    ----------
    raise_first : bool
        Raise `KeyboardInterrupt` on the first signal (for a main thread that waits in plain
        Python, such as the demo's episode loop) instead of only setting `requested`. Call
        `begin_shutdown()` when the cleanup starts: from then on no signal raises.
    restore : bool
        Always bring the previous handlers back on exit (for a `main` that other code calls
        in-process, such as the demo's).

    """

    def __init__(self, raise_first: bool = False, restore: bool = False):
        self.raise_first = raise_first
        self.restore = restore
        self.requested = threading.Event()
        self.count = 0
        self._previous = {}

    def __enter__(self) -> 'ShutdownSignals':
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._on_signal)
                              for sig in SHUTDOWN_SIGNALS}
        return self

    def __exit__(self, *exc_info) -> None:
        if self.requested.is_set() and not self.restore:
            return
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def begin_shutdown(self) -> None:
        """Mark the shutdown as started: signals from now on are ignored (never raise)."""
        self.requested.set()

    def _on_signal(self, signum, frame) -> None:
        self.count += 1
        if self.requested.is_set():
            if self.count == 2:  # once: a launch SIGINT after the terminal's is expected
                _LOG.info('%s during shutdown: already stopping', signal.Signals(signum).name)
            return
        self.requested.set()
        if self.raise_first:
            raise KeyboardInterrupt


def spin_until(executor, requested: threading.Event) -> None:
    """Spin `executor` until `requested` is set, the context shuts down or rclpy says stop."""
    context = executor.context
    while not requested.is_set() and context.ok():
        try:
            executor.spin_once(timeout_sec=SIGNAL_POLL_S)
        except ExternalShutdownException:
            break


def _run_hooks(nodes: Sequence[Node]) -> None:
    """Run each node's `on_shutdown()`; one failing hook does not skip the others."""
    for node in nodes:
        hook = getattr(node, 'on_shutdown', None)
        if hook is None:
            continue
        try:
            hook()
        except Exception as error:  # noqa: B902 - the other nodes must still stop safely
            _LOG.error('%s: shutdown hook failed: %s: %s', node.get_name(),
                       type(error).__name__, error)


def exit_now(code: int) -> None:
    """
    Flush the output and end the process with `code`, skipping the interpreter's teardown.

    For node executables, once their nodes stopped cleanly: with torch loaded, the teardown
    alone took 2.2 s on a loaded 2-core machine (measured), and `ros2 launch` or a terminal
    waits for it. rclpy's logging is finalised by then (`rclpy.try_shutdown`).
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def run_nodes(make_nodes: Callable[[], List[Node]], args: Optional[Sequence[str]] = None,
              num_threads: int = DEFAULT_THREADS, exit_process: bool = False) -> int:
    """
    Initialise rclpy, spin the nodes `make_nodes()` builds, and exit quietly.

    rclpy's own signal handler would shut the context down at once, before anything could be
    published; instead the first SIGINT or SIGTERM stops the spin (within `SIGNAL_POLL_S`),
    later ones are ignored (`ShutdownSignals`). Then the callbacks in flight end (no command
    tick can follow the final hold), each node's `on_shutdown()` (if it has one) runs while
    the context is alive (the action executor sends its final hold there), and the nodes are
    destroyed. A signal during `make_nodes()` takes effect once the nodes are built.

    Returns 0, or 2 when the nodes cannot be built from their parameters (a bad value, a
    missing or malformed checkpoint): the reason is printed in one line, `<program>: error:
    <reason>`, as the command line tools do. With `exit_process` (a node executable's
    `main`) the process ends with that code instead (`exit_now`).
    """
    code = _run_nodes(make_nodes, args, num_threads)
    if exit_process:
        exit_now(code)
    return code


def _run_nodes(make_nodes: Callable[[], List[Node]], args: Optional[Sequence[str]],
               num_threads: int) -> int:
    responsive_gil()
    bridge_core_logging()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    nodes: List[Node] = []
    executor = make_executor(num_threads=num_threads)
    with ShutdownSignals() as signals:
        try:
            nodes.extend(make_nodes())
        except STARTUP_ERRORS as error:  # bad parameters or checkpoint: one line, exit 2
            print(f'{Path(sys.argv[0]).stem}: error: {error}', file=sys.stderr, flush=True)
            rclpy.try_shutdown()
            return 2
        try:
            for node in nodes:
                executor.add_node(node)
            spin_until(executor, signals.requested)
        finally:
            signals.begin_shutdown()
            shutdown_executor(executor)
            _run_hooks(nodes)
            for node in nodes:
                node.destroy_node()
            rclpy.try_shutdown()
    return 0
