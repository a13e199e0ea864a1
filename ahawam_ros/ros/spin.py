"""Run nodes on a MultiThreadedExecutor and shut down cleanly (Ctrl-C, SIGTERM)."""

import signal
from typing import Callable, List, Optional, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

# A worker per callback group that must not wait for another: command timer, chunk
# inference, planner refresh, subscriptions (and the simulator when hosted).
DEFAULT_THREADS = 5


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
