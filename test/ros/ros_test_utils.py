"""Helpers for tests that run real rclpy graphs (imported by the test modules)."""

import contextlib
import time

from ahawam_ros.ros.spin import DEFAULT_THREADS, make_executor, SpinThread
import numpy as np
from rclpy.parameter import Parameter


def params(**values):
    """Build rclpy parameter overrides from keyword arguments."""
    return [Parameter(name, value=value) for name, value in values.items()]


@contextlib.contextmanager
def spinning(context, nodes, threads: int = DEFAULT_THREADS):
    """Spin `nodes` on the nodes' executor (`spin.make_executor`) in a thread meanwhile."""
    executor = make_executor(context, threads)
    for node in nodes:
        executor.add_node(node)
    spinner = SpinThread(executor).start()
    try:
        yield executor
    finally:
        spinner.stop()


def wait_for(predicate, timeout: float = 10.0, period: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return bool(predicate())


def rgb_frame(height: int, width: int, value: int = 0) -> np.ndarray:
    """Return a deterministic uint8 (H, W, 3) test image."""
    ramp = np.arange(height * width * 3, dtype=np.int64).reshape(height, width, 3)
    return ((ramp * 7 + value) % 251).astype(np.uint8)
