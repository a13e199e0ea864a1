"""
Intra-process delivery of context handles, by topic name: what rclcpp calls intra-process comms.

rclpy hands every message, even between two nodes of one process, to the middleware and then
to a thread of the executor's pool; under load on 2 cores that alone costs 1-4 ms per world
context (`python -m ahawam_ros.bench.handoff`), though the context itself never leaves the
process. So the planner node also delivers each new handle straight to the subscribers of the
same topic name in its own process: a function call in the planner's worker thread, a few
microseconds. The `WorldContext` descriptor still goes out on the real topic, so the ROS graph
sees, and a bag records, every context; in-process subscribers receive it twice and keep the
first (the executor's slot refuses a context it already holds).

Callbacks must be short (resolve the handle, store it, wake a worker): they run in the
publisher's thread. A callback that raises is logged once and never reaches the publisher.
"""

import itertools
import logging
import threading
from typing import Callable, Dict, Set, Tuple

_LOG = logging.getLogger(__name__)
HandleCallback = Callable[[str], None]


class IntraProcessTopics:
    """Process-local subscribers by fully qualified topic name; thread-safe."""

    def __init__(self):
        self._callbacks: Dict[int, Tuple[str, HandleCallback]] = {}
        self._tokens = itertools.count(1)
        self._reported: Set[int] = set()
        self._lock = threading.Lock()

    def subscribe(self, topic: str, callback: HandleCallback) -> int:
        """Call `callback(handle)` for every handle delivered on `topic`; returns a token."""
        if not topic.startswith('/'):
            raise ValueError(f'topic must be a fully qualified name, got {topic!r}')
        with self._lock:
            token = next(self._tokens)
            self._callbacks[token] = (topic, callback)
        return token

    def unsubscribe(self, token: int) -> None:
        """Stop the subscription `token` (unknown tokens are ignored: shutdown paths repeat)."""
        with self._lock:
            self._callbacks.pop(token, None)

    def subscribers(self, topic: str) -> int:
        """Return how many in-process subscribers `topic` has."""
        with self._lock:
            return sum(1 for name, _ in self._callbacks.values() if name == topic)

    def deliver(self, topic: str, handle: str) -> int:
        """Hand `handle` to every subscriber of `topic` in this thread; returns how many."""
        with self._lock:
            targets = [(token, callback) for token, (name, callback)
                       in self._callbacks.items() if name == topic]
        for token, callback in targets:
            try:
                callback(handle)
            except Exception as error:  # a subscriber's failure must not stop the planner
                if token not in self._reported:
                    self._reported.add(token)
                    _LOG.error('in-process subscriber of %s failed (reported once): %s',
                               topic, error)
        return len(targets)


_PROCESS_TOPICS = IntraProcessTopics()


def intra_process_topics() -> IntraProcessTopics:
    """Return the process-wide intra-process topics (the nodes of one process share it)."""
    return _PROCESS_TOPICS
