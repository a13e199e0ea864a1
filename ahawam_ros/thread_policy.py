"""
Real-time scheduling that a library left behind in this process, found and undone.

SVT-AV1 (libsvtav1, LeRobot's AV1 encoder), run as root, switches the thread that starts an
encoder, and its own threads, to SCHED_FIFO priority 99. A real-time thread that spins (a DDS
or an executor thread) starves a 2-core machine. `realtime_threads` finds such threads
(Linux: per thread, from /proc/self/task), `demote_realtime_threads` puts them back under the
normal policy. The LeRobot writer uses both; the ROS tests check that none are left.
"""

import os
from typing import Iterable, Set


def realtime_threads() -> Set[int]:
    """Return the ids of this process's threads under a real-time policy (Linux; else none)."""
    if not hasattr(os, 'sched_getscheduler') or not os.path.isdir('/proc/self/task'):
        return set()
    found = set()
    for name in os.listdir('/proc/self/task'):
        try:
            if os.sched_getscheduler(int(name)) in (os.SCHED_FIFO, os.SCHED_RR):
                found.add(int(name))
        except OSError:  # the thread ended meanwhile
            pass
    return found


def demote_realtime_threads(keep: Iterable[int] = ()) -> None:
    """
    Put every real-time thread of the process but `keep` back under the normal policy.

    Threads the process starts afterwards may still come up real-time (measured: an rclpy
    context's DDS threads after SVT-AV1 ran, even with every thread demoted): run such an
    encoder in a process of its own.
    """
    for thread in realtime_threads() - set(keep):
        try:
            os.sched_setscheduler(thread, os.SCHED_OTHER, os.sched_param(0))
        except OSError:  # ended meanwhile, or not ours to change
            pass
