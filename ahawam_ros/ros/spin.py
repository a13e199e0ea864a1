"""Run nodes on a MultiThreadedExecutor and shut down cleanly (Ctrl-C, SIGTERM)."""

import signal
import sys
import threading
import time
from typing import Callable, List, Optional, Sequence

from ahawam_ros.ros.log_bridge import bridge_core_logging
import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

# Executor threads: the command timer, the inputs of each node and the slow timers never wait
# for one another. Inference does not run on them (the runtime's own worker threads do it).
DEFAULT_THREADS = 4

# CPython lets a thread that waits for the GIL take it from a running thread only after the
# switch interval (5 ms by default). One 50 Hz command needs the GIL several times (rcl wait,
# the executor's Python wait-set bookkeeping, the callback, publish), each time behind the
# torch workers and the executor loop: on 2 cores the tiny-preset graph measured 30-38 Hz
# instead of 50 with 5 ms, and 48-50 Hz with 0.5 ms (`ahawam bench`, ros section).
GIL_SWITCH_INTERVAL_S = 0.0005


def responsive_gil() -> None:
    """Shorten the GIL switch interval to `GIL_SWITCH_INTERVAL_S` for this process."""
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))


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


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_nodes(make_nodes: Callable[[], List[Node]], args: Optional[Sequence[str]] = None,
              num_threads: int = DEFAULT_THREADS) -> int:
    """
    Initialise rclpy, spin the nodes `make_nodes()` builds, and exit quietly.

    rclpy's own signal handler would shut the context down at once, before anything could be
    published; instead SIGINT and SIGTERM stop the spin, then each node's `on_shutdown()` (if
    it has one) runs while the context is alive (the action executor sends its final hold
    command there), then the nodes are destroyed. Returns 0.
    """
    responsive_gil()
    bridge_core_logging()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    nodes: List[Node] = []
    executor = MultiThreadedExecutor(num_threads=num_threads)
    try:
        nodes.extend(make_nodes())
        for node in nodes:
            executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for node in nodes:
            hook = getattr(node, 'on_shutdown', None)
            if hook is not None:
                hook()
        shutdown_executor(executor)
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
