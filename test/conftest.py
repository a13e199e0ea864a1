"""Session-wide test settings: keep ROS traffic on this machine and in its own domain."""

import importlib.util
import os

# Before anything imports rclpy: never discover beyond loopback, and use a domain of our own
# so that concurrent test sessions (and a developer's running system) do not cross-talk.
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 100))
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('OMP_NUM_THREADS', '1')
# Policies run eager unless a test asks for the compiled graphs (compiled=True): tracing costs a
# few seconds per graph; test/model/test_model_compiled.py holds the two paths equal.
os.environ.setdefault('AHAWAM_COMPILE', '0')

# ---- leaked threads -----------------------------------------------------------------------
# A test that leaves a thread running (a spin loop, an inference worker, a simulator) steals
# the GIL from every later test and makes the timing tests of the ROS graph flaky; fail the
# test that leaked it instead, with the thread's name.

import threading  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

# Threads that live for the whole process by design (library pools, not ours).
_LONG_LIVED = ('ThreadPoolExecutor', 'pymp', 'QueueFeederThread', 'asyncio', 'tqdm_monitor')


def _foreign_threads(before):
    return [t for t in threading.enumerate()
            if t not in before and t.is_alive() and not t.name.startswith(_LONG_LIVED)]


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test whose threads are still running 5 s after it ended."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    leaked = _foreign_threads(before)
    while leaked and time.monotonic() < deadline:
        time.sleep(0.05)
        leaked = _foreign_threads(before)
    assert not leaked, f'threads left running: {sorted(t.name for t in leaked)}'


# Without ROS 2 (a pip install of the core), the real-graph tests cannot even be collected:
# leave them out and say so in the header, instead of a collection error.
ROS_AVAILABLE = importlib.util.find_spec('rclpy') is not None
collect_ignore_glob = [] if ROS_AVAILABLE else ['ros/*']


def pytest_report_header(config):
    """Say when the ROS tests are left out."""
    return None if ROS_AVAILABLE else 'rclpy is not importable: test/ros is not collected'
