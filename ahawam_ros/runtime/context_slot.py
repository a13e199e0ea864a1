"""
The newest planner context: a versioned latest-wins slot and an in-process handle registry.

The planner publishes immutable `ContextSnapshot`s; the executor reads the newest by reference.
A context (per-layer K/V tensors for AHA-WAM) is never serialised: a ROS message carries only
a handle string, which `resolve` turns back into the snapshot inside the same process.
"""

from collections import OrderedDict
from dataclasses import dataclass
import os
import threading
from typing import Any, Optional
import uuid

from ahawam_ros.runtime.stamps import stamp_age


class ContextUnavailableError(LookupError):
    """A context handle does not resolve: malformed, foreign process, unknown or evicted."""


@dataclass(frozen=True)
class ContextSnapshot:
    """
    One published planner context; immutable, shared by reference.

    Attributes
    ----------
    context : Any
        What `ChunkPolicy.plan` returned. Shared, never copied: nobody may mutate it.
    seq : int
        Sequence number, strictly increasing per publishing slot (1 for its first publish).
    obs_stamp : float
        Time (s) of the observation the planner saw; the context's age is measured from it.
    publish_time : float
        Time (s) the snapshot was published.
    planner_latency : float
        Seconds the planner refresh took.
    step : int
        Control step index of the observation in the episode (-1 if unknown).
    handle : str
        Handle resolving to this snapshot in this process ('' if unregistered); opaque.

    """

    context: Any
    seq: int
    obs_stamp: float
    publish_time: float
    planner_latency: float = 0.0
    step: int = -1
    handle: str = ''

    def age(self, now: float) -> float:
        """Seconds between the planner's observation and `now`; inf if after `now` or NaN."""
        return stamp_age(now, self.obs_stamp)


class ContextRegistry:
    """
    Bounded map from handle strings to snapshots, valid only inside this process.

    A handle reads '<boot token>:<seq>' (the shape WorldContext.msg documents) with the boot
    token 'pid.registry.namespace': the process id, a random token drawn when the registry is
    created (so a recycled pid or another registry does not alias) and one namespace per slot
    (so two slots' sequence numbers do not collide). Consumers never parse it; `resolve` does.

    Parameters
    ----------
    capacity : int
        How many of the newest snapshots stay resolvable; older ones are evicted.

    """

    def __init__(self, capacity: int = 4):
        if capacity < 1:
            raise ValueError(f'capacity must be >= 1, got {capacity}')
        self.capacity = capacity
        self.token = uuid.uuid4().hex[:12]
        self._entries: 'OrderedDict[str, ContextSnapshot]' = OrderedDict()
        self._namespaces = 0
        self._anonymous = 0
        self._lock = threading.Lock()

    def new_namespace(self) -> int:
        """Return a namespace number of its own for one producer of sequence numbers."""
        with self._lock:
            self._namespaces += 1
            return self._namespaces

    def handle(self, namespace: int, seq: int) -> str:
        """Return the handle of sequence number `seq` in `namespace`, made in this process."""
        return f'{os.getpid()}.{self.token}.{namespace}:{seq}'

    def register(self, snapshot: ContextSnapshot) -> str:
        """
        Make `snapshot` resolvable by its handle, evicting the oldest beyond capacity.

        Parameters
        ----------
        snapshot : ContextSnapshot
            Carries a handle of this registry (`handle`), or '' to mint one in namespace 0
            (the snapshot itself then does not know its handle).

        Returns
        -------
        str
            The handle.

        """
        handle = snapshot.handle
        if not handle:
            with self._lock:
                self._anonymous += 1
                handle = self.handle(0, self._anonymous)
        self._check(handle)
        with self._lock:
            self._entries[handle] = snapshot
            self._entries.move_to_end(handle)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return handle

    def resolve(self, handle: str) -> ContextSnapshot:
        """
        Return the snapshot registered under `handle`.

        Raises
        ------
        ContextUnavailableError
            If the handle is malformed, made by another process or registry, never
            registered, or already evicted.

        """
        self._check(handle)
        with self._lock:
            snapshot = self._entries.get(handle)
        if snapshot is None:
            raise ContextUnavailableError(
                f'context handle {handle!r} is unknown or evicted: only the newest '
                f'{self.capacity} contexts stay resolvable')
        return snapshot

    def _check(self, handle: str) -> None:
        token, _, seq = str(handle).partition(':')
        parts = token.split('.')
        if len(parts) != 3 or not (parts[0].isdigit() and parts[2].isdigit() and seq.isdigit()):
            raise ContextUnavailableError(
                f'malformed context handle {handle!r}: expected "pid.token.namespace:seq"')
        if int(parts[0]) != os.getpid():
            raise ContextUnavailableError(
                f'context handle {handle!r} comes from process {parts[0]}, this is process '
                f'{os.getpid()}: contexts are shared by reference, so the planner and the '
                'executor must run in one process (compose the nodes)')
        if parts[1] != self.token:
            raise ContextUnavailableError(
                f'context handle {handle!r} comes from another registry (token {parts[1]}, '
                f'this one is {self.token}): a restarted planner or a different registry')


_PROCESS_REGISTRY = ContextRegistry()


def process_registry() -> ContextRegistry:
    """Return the process-wide registry that `register` and `resolve` use."""
    return _PROCESS_REGISTRY


def register(snapshot: ContextSnapshot) -> str:
    """Register `snapshot` in the process-wide registry; return its handle."""
    return _PROCESS_REGISTRY.register(snapshot)


def resolve(handle: str) -> ContextSnapshot:
    """Resolve a handle in the process-wide registry (raises `ContextUnavailableError`)."""
    return _PROCESS_REGISTRY.resolve(handle)


def _producer(handle: str) -> str:
    # the boot token part of a handle names the slot (and process) that made the snapshot
    return handle.partition(':')[0]


class ContextSlot:
    """
    Latest-wins holder of the newest `ContextSnapshot`; thread-safe.

    Why it is atomic: a snapshot is a frozen dataclass built completely before it is stored,
    and storing it is one reference assignment made under `_lock`; readers take the reference
    under the same lock. A reader therefore gets either the previous or the new snapshot, never
    a partly written one. The lock also serialises writers' compare-and-swap on `seq`, so the
    sequence a reader observes never goes backwards, even with several writers.

    Parameters
    ----------
    registry : ContextRegistry, optional
        Where published snapshots are registered; the process-wide registry by default.

    """

    def __init__(self, registry: Optional[ContextRegistry] = None):
        self._registry = registry if registry is not None else _PROCESS_REGISTRY
        self._namespace = self._registry.new_namespace()
        self._latest: Optional[ContextSnapshot] = None
        self._last_seq = 0
        self._producer = ''
        self._lock = threading.Lock()

    def publish(self, context: Any, obs_stamp: float, publish_time: float,
                planner_latency: float = 0.0, step: int = -1) -> ContextSnapshot:
        """
        Store a new context with the next sequence number, register it and return it.

        Parameters
        ----------
        context : Any
            The planner's output; must not be mutated afterwards.
        obs_stamp, publish_time, planner_latency : float
            See `ContextSnapshot`.
        step : int
            Control step index of the observation.

        Returns
        -------
        ContextSnapshot
            The stored snapshot, with `seq` and `handle` set.

        """
        with self._lock:
            seq = self._last_seq + 1
            snapshot = ContextSnapshot(
                context=context, seq=seq, obs_stamp=float(obs_stamp),
                publish_time=float(publish_time), planner_latency=float(planner_latency),
                step=int(step), handle=self._registry.handle(self._namespace, seq))
            self._registry.register(snapshot)
            self._last_seq, self._producer = seq, _producer(snapshot.handle)
            self._latest = snapshot
        return snapshot

    def offer(self, snapshot: ContextSnapshot) -> bool:
        """
        Install a snapshot made elsewhere (e.g. resolved from a handle) if it is newer.

        Returns
        -------
        bool
            True if installed; False if its `seq` is not above the newest one seen from the
            same producer, so a late or repeated message never replaces a newer context. A
            snapshot from another producer (a restarted planner, whose `seq` starts again
            at 1) is installed.

        """
        producer = _producer(snapshot.handle)
        with self._lock:
            if snapshot.seq <= self._last_seq and producer == self._producer:
                return False
            self._last_seq, self._producer = snapshot.seq, producer
            self._latest = snapshot
            return True

    def latest(self) -> Optional[ContextSnapshot]:
        """Return the newest snapshot by reference, or None before the first (or after clear)."""
        with self._lock:
            return self._latest

    @property
    def last_seq(self) -> int:
        """Return the sequence number of the newest snapshot stored (0 if none)."""
        with self._lock:
            return self._last_seq

    def clear(self) -> None:
        """Forget the current context (a new episode); sequence numbers keep increasing."""
        with self._lock:
            self._latest = None
