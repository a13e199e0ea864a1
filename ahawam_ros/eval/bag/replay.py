"""
Replay a bag through the asynchronous runtime on the bag's clock: what would have been sent.

The runtime the nodes run (built by the same assembly, `runtime.assembly`, from the same
`RuntimeSettings`) runs here as a discrete-event simulation in one thread, on `ManualClock`s
that read the bag's log time (seconds from its first message). Events at one time run in this
order: bag messages (frames, joint states, recorded commands), context deliveries, the planner
timer, the executor's chunk worker, the command timer. The timers tick on a grid from 0 and,
like ROS timers, skip the periods they missed while their callback was busy. The chunk worker
runs as the node's: woken by a new joint state, frame or context (or after `worker_poll`
without one), one chunk at a time, each call deciding by the executor's own schedule.

Latency is spent in simulated time. A planner refresh started at t from frames stamped s
publishes its context at t + latency (the planner's own clock moves on inside `plan`), and
the executor sees it from then on. The executor's chunk computation is synchronous here, so
its latency is spent by letting the rest of the world run while the policy "thinks": after
the real call returns, the timing wrapper replays every event before t + latency (command ticks
on the old plan, new joint states, planner refreshes) and only then returns, so
`ExecutorCore` hands the chunk to the scheduler at t + latency, as its worker thread would.
The latency is the measured duration of the real call, or a fixed value.

Shapes: V cameras, H x W pixels, A joints, K chunk length, T command ticks.
"""

from collections import deque
from dataclasses import dataclass
import math
import time
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple

from ahawam_ros.data.bag_files import BagError
from ahawam_ros.eval.bag.metrics import ReplayTrace
from ahawam_ros.eval.bag.stream import BagMessage, BagSource, COMMAND, IMAGE, JOINTS
from ahawam_ros.runtime.assembly import build_executor, build_planner, HostRules
from ahawam_ros.runtime.chunk_scheduler import ACCEPTED
from ahawam_ros.runtime.clock import ManualClock
from ahawam_ros.runtime.context_slot import ContextSnapshot
from ahawam_ros.runtime.executor_core import Command
from ahawam_ros.runtime.policy_api import ChunkPolicy
from ahawam_ros.runtime.settings import RuntimeSettings
import cv2
import numpy as np

_MESSAGE, _DELIVERY, _PLAN, _CHUNK, _TICK = range(5)  # order of events at one time


class EvalError(ValueError):
    """The policy and the bag do not fit together (image size, failing policy)."""


def to_ns(seconds: float) -> int:
    """Return `seconds` as integer nanoseconds (event times are exact integers)."""
    return int(round(seconds * 1e9))


def to_seconds(ns: int) -> float:
    """Return nanoseconds as seconds (the runtime's stamps)."""
    return ns * 1e-9


@dataclass(frozen=True)
class ReplayTiming:
    """
    Latencies of the simulated nodes; validated on construction.

    Attributes
    ----------
    planner_latency, executor_latency : float or None
        Fixed seconds per `plan` / `predict_chunk` call; None spends the measured duration.

    """

    planner_latency: Optional[float] = None
    executor_latency: Optional[float] = None

    def __post_init__(self):
        for name in ('planner_latency', 'executor_latency'):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f'{name} must be None or a finite number >= 0, got {value}')


class TimedPolicy:
    """
    A `ChunkPolicy` that times each call of the wrapped one and spends the latency.

    Parameters
    ----------
    policy : ChunkPolicy
        The policy evaluated.
    planner_latency, executor_latency : float or None
        Fixed latencies (s); None uses the measured duration of each call.

    Attributes
    ----------
    spend_plan, spend_chunk : Callable[[float], None]
        Called with the latency after each successful `plan` / `predict_chunk`.
    measured, simulated : dict of str -> list of float
        Seconds per call under 'planner' and 'executor': the real duration, the spent one.

    """

    def __init__(self, policy: ChunkPolicy, planner_latency: Optional[float] = None,
                 executor_latency: Optional[float] = None):
        self.policy = policy
        self.chunk_len = policy.chunk_len
        self.action_dim = policy.action_dim
        self.control_period = policy.control_period
        self._fixed = {'planner': planner_latency, 'executor': executor_latency}
        self.measured: Dict[str, List[float]] = {'planner': [], 'executor': []}
        self.simulated: Dict[str, List[float]] = {'planner': [], 'executor': []}
        self.spend_plan: Callable[[float], None] = lambda seconds: None
        self.spend_chunk: Callable[[float], None] = lambda seconds: None

    def _latency(self, role: str, started: float) -> float:
        measured = time.perf_counter() - started
        fixed = self._fixed[role]
        self.measured[role].append(measured)
        self.simulated[role].append(measured if fixed is None else fixed)
        return self.simulated[role][-1]

    def reset(self) -> None:
        self.policy.reset()

    def plan(self, images: np.ndarray, step: int) -> Any:
        started = time.perf_counter()
        context = self.policy.plan(images, step)
        self.spend_plan(self._latency('planner', started))
        return context

    def predict_chunk(self, images: np.ndarray, proprio: np.ndarray, context: Any,
                      step: int) -> np.ndarray:
        started = time.perf_counter()
        actions = self.policy.predict_chunk(images, proprio, context, step)
        self.spend_chunk(self._latency('executor', started))
        return actions


class _Timer:
    """A periodic timer on a grid from 0 that skips the periods missed while busy (as rcl)."""

    def __init__(self, period_ns: int):
        self.period = max(1, period_ns)
        self.due = 0

    def fired(self, at_ns: int) -> None:
        self.due = (at_ns // self.period + 1) * self.period


class _Frames:
    """The newest frame of every camera, sized for the policy (the nodes' CameraSet)."""

    def __init__(self, num_cameras: int, image_hw: Optional[Tuple[int, int]], resize: bool):
        self._frames: List[Optional[Tuple[np.ndarray, float]]] = [None] * num_cameras
        self._hw = image_hw
        self._resize = resize
        self._latest: Optional[Tuple[np.ndarray, float]] = None

    def update(self, camera: int, frame: np.ndarray, stamp: float) -> None:
        """Store uint8 (H, W, 3) `frame` of view `camera`, resized to the policy's (H, W)."""
        if self._hw is not None and frame.shape[:2] != self._hw:
            if not self._resize:
                raise EvalError(f'camera images are {frame.shape[0]}x{frame.shape[1]}, the '
                                f'policy takes {self._hw[0]}x{self._hw[1]}: pass '
                                '--resize-images to resize them (cv2 INTER_AREA)')
            frame = cv2.resize(frame, (self._hw[1], self._hw[0]), interpolation=cv2.INTER_AREA)
        self._frames[camera] = (frame, stamp)
        self._latest = None

    def latest(self) -> Optional[Tuple[np.ndarray, float]]:
        """Return (uint8 (V, H, W, 3), stamp of the oldest view), or None until all spoke."""
        if self._latest is None and all(frame is not None for frame in self._frames):
            images = np.stack([frame[0] for frame in self._frames])  # (V, H, W, 3)
            self._latest = (images, min(frame[1] for frame in self._frames))
        return self._latest


class BagReplay:
    """
    One bag through a fresh `PlannerCore` and `ExecutorCore` in simulated time; use once.

    Parameters
    ----------
    policy : ChunkPolicy
        The policy evaluated; reset before the replay.
    settings : RuntimeSettings
        The runtime's settings, as the nodes'.
    timing : ReplayTiming
        Latencies.
    image_hw : (int, int), optional
        The (H, W) the policy takes; frames of another size fail unless `resize`.
    resize : bool
        Resize frames to `image_hw` (cv2 INTER_AREA) instead of failing.

    """

    def __init__(self, policy: ChunkPolicy, settings: RuntimeSettings, timing: ReplayTiming,
                 image_hw: Optional[Tuple[int, int]] = None, resize: bool = False):
        self.timed = TimedPolicy(policy, timing.planner_latency, timing.executor_latency)
        self.timed.spend_plan = self._spend_planner_latency
        self.timed.spend_chunk = self._spend_executor_latency
        self._image_hw, self._resize = image_hw, resize
        self._plan_clock, self._exec_clock = ManualClock(), ManualClock()
        # each core has its own registry: a replay never touches the process-wide one; the
        # planner is paced by its timer, as in the node
        self.planner = build_planner(
            self.timed, settings.planner,
            HostRules(self._plan_clock, self._plan_clock, private_registry=True), paced=False,
            episode_start=0.0)
        self.executor = build_executor(
            self.timed, settings.executor,
            HostRules(self._exec_clock, self._exec_clock, private_registry=True),
            episode_start=0.0)
        self._poll_ns = to_ns(self.executor.config.worker_poll)
        self._world_error: Optional[Exception] = None  # raised by the bag during an update
        self._wake_ns: Optional[int] = 0  # when the chunk worker is woken next
        self._timers = {_PLAN: _Timer(to_ns(1.0 / settings.planner.refresh_rate_hz)),
                        _TICK: _Timer(to_ns(1.0 / settings.executor.control_rate_hz))}
        self._handlers = {_MESSAGE: self._on_message, _DELIVERY: self._on_delivery,
                          _PLAN: self._on_plan, _CHUNK: self._on_chunk, _TICK: self._on_tick}
        self._deliveries: Deque[Tuple[int, ContextSnapshot]] = deque()
        self._free = {_PLAN: 0, _CHUNK: 0}  # when the planner / the executor is idle again
        self._plan_start = 0  # ns, of the planner refresh in progress
        self._inference_start: Optional[int] = None  # ns, while a chunk is being computed
        self._chunk_id = 0
        self._ticks: List[Tuple[float, Command, int, int]] = []
        self._inputs: Dict[str, List[Tuple[float, np.ndarray]]] = {JOINTS: [], COMMAND: []}
        self._frames = _Frames(0, None, False)
        self._messages: Iterator[BagMessage] = iter(())
        self._pending: Optional[BagMessage] = None
        self._end_ns = 0
        self._on_tick_done: Callable[[], None] = lambda: None

    def run(self, source: BagSource, on_tick: Callable[[], None] = lambda: None) -> ReplayTrace:
        """
        Replay every message of `source` and every timer up to its last message.

        Raises
        ------
        BagError
            From `source` (truncated bag, bad message).
        EvalError
            Frames of the wrong size, or a policy that failed on every call.

        """
        self._frames = _Frames(len(source.features.cameras), self._image_hw, self._resize)
        self._messages = source.messages()
        self._pending = next(self._messages, None)
        self._end_ns, self._on_tick_done = source.duration_ns, on_tick
        self.planner.reset(episode_start=0.0)
        self._run(self._end_ns, inclusive=True)
        if self._pending is not None:  # the replay must not end before the bag does
            late, end = to_seconds(self._pending.stamp_ns), to_seconds(self._end_ns)
            raise BagError(f'bag {source.path}: a message at {late:.3f} s lies past the '
                           f'recorded end ({end:.3f} s from the first message): its metadata '
                           '(duration) is wrong')
        self._check_policy_ran()
        return self._trace(source)

    # ---- the event loop -------------------------------------------------------------------

    def _next_event(self) -> Tuple[int, int]:
        events = [(max(self._timers[_PLAN].due, self._free[_PLAN]), _PLAN),
                  (self._timers[_TICK].due, _TICK)]
        if self._pending is not None:
            events.append((self._pending.stamp_ns, _MESSAGE))
        if self._deliveries:
            events.append((self._deliveries[0][0], _DELIVERY))
        if self._inference_start is None and self._wake_ns is not None:  # one at a time
            events.append((max(self._wake_ns, self._free[_CHUNK]), _CHUNK))
        return min(events)

    def _run(self, until_ns: int, inclusive: bool) -> None:
        """Handle every event up to `until_ns` (and no later than the bag's end)."""
        while True:
            when, kind = self._next_event()
            if when > min(until_ns, self._end_ns) or (when == until_ns and not inclusive):
                return
            self._handlers[kind](when)

    def _on_message(self, when: int) -> None:
        message, self._pending = self._pending, next(self._messages, None)
        if message.kind == IMAGE:
            self._frames.update(message.camera, message.value, to_seconds(when))
            self._wake(when)
            return
        self._inputs[message.kind].append((to_seconds(when), message.value))
        if message.kind == JOINTS:
            # the stamp is checked against the executor's clock: it arrives now, not later
            self._exec_clock.set_time(max(self._exec_clock(), to_seconds(when)))
            self.executor.update_joints(message.value, to_seconds(when))
            self._wake(when)

    def _wake(self, when: int) -> None:
        """Wake the chunk worker at `when` (a new input; it also polls after `worker_poll`)."""
        self._wake_ns = when if self._wake_ns is None else min(self._wake_ns, when)

    def _on_delivery(self, when: int) -> None:
        _, snapshot = self._deliveries.popleft()
        if self.executor.slot.offer(snapshot):  # what accept_context does with a handle
            self._wake(when)

    def _on_plan(self, when: int) -> None:
        self._timers[_PLAN].fired(when)
        latest = self._frames.latest()
        if latest is None:
            return  # the planner node waits for a frame from every camera
        self._plan_clock.set_time(to_seconds(when))
        self.planner.update_images(*latest)
        self._plan_start = when
        outcome = self.planner.refresh()
        if outcome.snapshot is not None:
            self._deliveries.append((self._free[_PLAN], outcome.snapshot))

    def _spend_planner_latency(self, seconds: float) -> None:
        self._free[_PLAN] = self._plan_start + to_ns(seconds)
        # PlannerCore reads its clock after `plan` returns: it publishes at start + latency
        self._plan_clock.set_time(to_seconds(self._free[_PLAN]))

    def _on_chunk(self, when: int) -> None:
        self._wake_ns = None
        self._exec_clock.set_time(to_seconds(when))
        latest = self._frames.latest()
        if latest is not None:
            self.executor.update_images(*latest)
        self._inference_start = when
        try:
            outcome = self.executor.compute_chunk()
        finally:
            self._inference_start = None
        if self._world_error is not None:
            raise self._world_error
        if outcome.status == ACCEPTED:
            self._chunk_id += 1
        self._wake(max(when, self._free[_CHUNK]) + self._poll_ns)  # the worker's poll

    def _spend_executor_latency(self, seconds: float) -> None:
        done = self._inference_start + to_ns(seconds)
        self._free[_CHUNK] = done
        try:
            self._run(done, inclusive=False)  # the world goes on while the chunk is computed
        except Exception as error:  # a bad bag, not a failing policy: raised past the core
            self._world_error = error
            raise
        self._exec_clock.set_time(to_seconds(done))

    def _on_tick(self, when: int) -> None:
        self._timers[_TICK].fired(when)
        now = to_seconds(when)
        self._exec_clock.set_time(now)
        command = self.executor.tick(now)
        executing = not command.is_hold
        index = self.executor.scheduler.steps_since_chunk(now) if executing else -1
        self._ticks.append((now, command, self._chunk_id if executing else -1, index))
        self._on_tick_done()

    # ---- results --------------------------------------------------------------------------

    def _check_policy_ran(self) -> None:
        for role, core, done in (('plan', self.planner, self.planner.slot.last_seq),
                                 ('predict_chunk', self.executor, self._chunk_id)):
            if core.last_error and not done:
                raise EvalError(f'the policy failed on every {role} call: {core.last_error}')

    def _trace(self, source: BagSource) -> ReplayTrace:
        dims = len(source.features.joint_names)
        nan = np.full(dims, np.nan)
        times = np.array([t for t, *_ in self._ticks], np.float64)
        commands = [c for _, c, *_ in self._ticks]

        def series(kind: str) -> Tuple[np.ndarray, np.ndarray]:
            stamps = np.array([t for t, _ in self._inputs[kind]], np.float64)
            return stamps, np.array([v for _, v in self._inputs[kind]]).reshape(-1, dims)

        recorded_time, recorded = series(COMMAND)
        joint_time, joints = series(JOINTS)
        return ReplayTrace(
            name=source.path.name, joint_names=source.features.joint_names, tick_time=times,
            command=np.array([nan if c.positions is None else c.positions
                              for c in commands]).reshape(-1, dims),
            is_hold=np.array([c.is_hold for c in commands], bool),
            clipped=np.array([c.clipped for c in commands], bool),
            rate_limited=np.array([c.rate_limited for c in commands], bool),
            reason=np.array([c.reason for c in commands], object),
            context_age=np.array([c.context_age for c in commands], np.float64),
            chunk_id=np.array([i for *_, i, _ in self._ticks], np.int64),
            chunk_index=np.array([k for *_, k in self._ticks], np.int64),
            recorded_time=recorded_time, recorded=recorded, joint_time=joint_time,
            joints=joints,
            measured={k: np.array(v) for k, v in self.timed.measured.items()},
            simulated={k: np.array(v) for k, v in self.timed.simulated.items()},
            holds=self.executor.holds_by_reason, planner_results=self.planner.results.as_dict(),
            chunk_results=self.executor.chunk_results.as_dict(),
            chunk_len=int(self.timed.chunk_len),
            control_period=to_seconds(self._timers[_TICK].period), inputs=source.inputs())
