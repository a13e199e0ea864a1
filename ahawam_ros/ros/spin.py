"""Run nodes on a MultiThreadedExecutor and shut down cleanly (Ctrl-C, SIGTERM)."""

import signal
import sys
from typing import Callable, List, Optional, Sequence

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
    Shut an executor down after its running callbacks have ended.

    Call it once nothing spins any more. rclpy's `Executor.shutdown` (9.1.2) does not wait for
    running callbacks before it destroys the executor's guard condition, which those callbacks
    trigger when they end ("cannot use Destroyable ..." at exit): wait for them here. The
    work tracker is private to rclpy; where a version lacks it, this is a plain shutdown.
    """
    tracker = getattr(executor, '_work_tracker', None)
    if tracker is not None:
        tracker.wait(timeout)
    executor.shutdown(timeout_sec=timeout)


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
