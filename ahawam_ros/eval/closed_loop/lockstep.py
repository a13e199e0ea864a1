"""
Closed-loop episodes in lock-step with a simulator, with real-time asynchrony replayed.

Shapes: V cameras, H x W pixels, A action dim, K chunk length.

The simulator advances one control period per step and the runtime (a `PlannerCore` and an
`ExecutorCore`, as in the ROS nodes) runs on a `ManualClock` that reads the simulated time, so
no one waits for the wall clock. Inference is not free, though: every planner refresh and
executor update is timed (wall clock) and its result is handed over only
d = ceil(latency / period) steps after the observation it was computed from, as the real
worker threads would deliver it. Until then the command timer keeps executing the previous
plan. One refresh and one update are in flight at a time (one worker thread each).

Modes (`MODES`):
- async: AHA-WAM. The planner refreshes at `refresh_rate_hz` (or slower, when a refresh
  takes longer); each executor update reads the newest context that has arrived.
- sync: the Fast-WAM baseline. Each update is `policy.sync_update` (planner refresh, then the
  executor, on the same frame) and costs that whole latency.
- planner-off: the executor alone, against a blank context: zeros of the context's shape
  (from one `plan` on a black frame, then zeroed; the rolling memory is reset afterwards).
  Zero keys and values are the neutral input of attention, so the executor acts on its own
  inputs only: proprio, task tokens and the OVCR edit from the current frame. Zeros keep the
  context's shape, dtype and device without knowing the model's internals.

Timing caveat: refreshes and updates are measured one after the other in one thread; the real
system runs them in two threads on separate cores, so contention between them is not modelled
here. `realtime` runs them concurrently in real time (eval-sim's default); this lock-step
replay is `--timing replayed`.
"""

import math
import time
from typing import Any, Callable, Optional, Tuple

from ahawam_ros.eval.closed_loop.episode import (apply_command, CameraFrames, ClosedLoopConfig,
                                                 EpisodeResult, settle_count)
from ahawam_ros.eval.closed_loop.modes import (ASYNC, blank_context, PLANNER_OFF, SYNC,
                                               SYNC_CONTEXT, SyncPolicy)
from ahawam_ros.runtime.assembly import build_runtime, HostRules
from ahawam_ros.runtime.chunk_scheduler import ActionChunk
from ahawam_ros.runtime.clock import ManualClock
from ahawam_ros.runtime.context_slot import ContextSnapshot
from ahawam_ros.runtime.executor_core import READY
from ahawam_ros.runtime.planner_core import PUBLISHED
from ahawam_ros.runtime.policy_api import ChunkPolicy
import numpy as np

_STEP_TOLERANCE = 1e-6  # steps; float noise of a latency must not add a control step


def delay_steps(latency: float, period: float) -> int:
    """Return d = ceil(latency / period): the steps until a result is available (>= 0)."""
    return max(0, math.ceil(latency / period - _STEP_TOLERANCE))


class LockstepRuntime:
    """
    The runtime of one episode on the simulated clock, with results delivered late.

    Built by the one assembly (`runtime.assembly`) with a slot per core: the planner's
    contexts and the executor's chunks are handed over d steps after their observation.

    Parameters
    ----------
    policy : ChunkPolicy
        The policy (shared by planner and executor, as in the one-process system).
    config : ClosedLoopConfig
        Mode and runtime settings.
    wall_clock : Callable[[], float]
        Measures inference latency (real seconds; a fake clock in tests).

    """

    def __init__(self, policy: ChunkPolicy, config: ClosedLoopConfig,
                 wall_clock: Callable[[], float] = time.perf_counter):
        self.config = config
        self.period = policy.control_period
        self.clock = ManualClock()
        runtime = build_runtime(
            policy, config.settings, HostRules(self.clock, wall_clock), shared_slot=False,
            with_planner=config.mode == ASYNC,
            executor_policy=SyncPolicy(policy) if config.mode == SYNC else None,
            episode_start=0.0)
        self.planner, self.executor = runtime.planner, runtime.executor
        self.slot = self.executor.slot  # contexts arrive here when ready
        self._context: Optional[Tuple[int, ContextSnapshot]] = None  # (ready step, snapshot)
        self._chunk: Optional[Tuple[int, ActionChunk]] = None  # (ready step, chunk)
        self._blank: Any = None  # planner-off: made from the first frame's shape
        self.policy = policy
        if self.planner is not None:
            self.planner.reset(episode_start=0.0)  # resets the policy's memory
        else:
            policy.reset()

    def _blank_context(self, images: np.ndarray) -> Any:
        blank = blank_context(self.policy.plan(np.zeros_like(images), 0))  # a black frame
        self.policy.reset()  # the black frame must not stay in the rolling memory
        return blank

    def step(self, index: int, images: np.ndarray, qpos: np.ndarray, result: EpisodeResult,
             image_stamp: Optional[float] = None):
        """
        Run control step `index` on the observation taken at its start; return the Command.

        Parameters
        ----------
        index : int
            Control step (time index * period).
        images : np.ndarray
            uint8 (V, H, W, 3) policy views.
        qpos : np.ndarray
            (A,) joint positions.
        result : EpisodeResult
            Receives the events and latencies.
        image_stamp : float, optional
            When the images were taken (s); this step's time when omitted.

        """
        now = index * self.period
        stamp = now if image_stamp is None else image_stamp
        self.clock.set_time(now)
        self.executor.update_joints(qpos, now)
        self.executor.update_images(images, stamp)
        self._deliver(index, now, result)
        if self.config.mode == ASYNC:
            self._start_refresh(index, stamp, images, result)
        elif self.config.mode == PLANNER_OFF:
            if self._blank is None:
                self._blank = self._blank_context(images)
            self.slot.publish(self._blank, obs_stamp=now, publish_time=now, step=index)
        else:
            self.slot.publish(SYNC_CONTEXT, obs_stamp=now, publish_time=now, step=index)
        self._start_update(index, result)
        self._deliver(index, now, result)  # results of zero latency are there at once
        return self.executor.tick(now)

    def _deliver(self, index: int, now: float, result: EpisodeResult) -> None:
        if self._context is not None and self._context[0] <= index:
            self.slot.offer(self._context[1])
            self._context = None
        if self._chunk is not None and self._chunk[0] <= index:
            status = self.executor.hand_over(self._chunk[1], now)
            result.chunk_status[status] = result.chunk_status.get(status, 0) + 1
            self._chunk = None

    def _start_refresh(self, index: int, stamp: float, images: np.ndarray,
                       result: EpisodeResult) -> None:
        if self._context is not None:
            return  # the planner worker is busy
        self.planner.update_images(images, stamp)
        outcome = self.planner.refresh()
        if outcome.status != PUBLISHED:
            return
        ready = index + delay_steps(outcome.latency, self.period)
        self._context = (ready, outcome.snapshot)
        result.plan_events.append((index, ready))
        result.plan_latencies.append(outcome.latency)

    def _start_update(self, index: int, result: EpisodeResult) -> None:
        if self._chunk is not None:
            return  # the executor worker is busy
        outcome = self.executor.compute_chunk(hand_over=False)
        if math.isfinite(outcome.latency):
            result.update_latencies.append(outcome.latency)
        if outcome.status != READY:
            return
        ready = index + delay_steps(outcome.latency, self.period)
        self._chunk = (ready, outcome.chunk)
        result.chunk_events.append((index, ready))


def run_episode(policy: ChunkPolicy, env: Any, config: ClosedLoopConfig, seed: int,
                views: Callable[[Any], np.ndarray], recorder: Optional[Any] = None,
                wall_clock: Callable[[], float] = time.perf_counter) -> EpisodeResult:
    """
    Run one closed-loop episode in lock-step.

    Parameters
    ----------
    policy : ChunkPolicy
        The policy under test.
    env : object
        `reset(seed) -> observation` and `step((A,) command) -> observation`; observations
        have `qpos` (A,), `reward` and `success` (an `AlohaSim`).
    config : ClosedLoopConfig
        Mode and runtime settings.
    seed : int
        Episode seed.
    views : Callable
        Observation -> uint8 (V, H, W, 3) policy views.
    recorder : object, optional
        `add(observation, command)` is called every step (video and bag recording).
    wall_clock : Callable[[], float]
        Measures inference latency.

    Returns
    -------
    EpisodeResult
        Success, reward, rates, hold reasons, events and latencies.

    """
    runtime = LockstepRuntime(policy, config, wall_clock)
    result = EpisodeResult(seed=seed)
    observation, settle = env.reset(seed), None
    frames = CameraFrames(views, config.camera_every, recording=recorder is not None)
    frames.take(observation, 0.0)
    for index in range(config.max_steps):
        command = runtime.step(index, frames.images, observation.qpos, result, frames.stamp)
        render = frames.renders(index + 1)
        observation = apply_command(env, observation, command, index, result, recorder, render)
        frames.take(observation, (index + 1) * runtime.period, render)
        settle = settle_count(result, observation, settle)
        if settle is not None and 0 <= config.settle_steps <= settle:
            break
    result.stale_actions, result.stale_chunks = runtime.executor.scheduler.stale_actions()
    return result
