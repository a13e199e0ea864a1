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
here. `realtime_loop` runs them concurrently in real time (eval-sim's default); this lock-step
replay is `--timing replayed`.
"""

from dataclasses import dataclass, field
import math
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ahawam_ros.eval.sim_modes import (ASYNC, blank_context, MODES, PLANNER_OFF, SYNC,
                                       SYNC_CONTEXT, SyncPolicy)
from ahawam_ros.robot import ACTION_DIM
from ahawam_ros.runtime.chunk_scheduler import ACCEPTED, ActionChunk, ChunkScheduler
from ahawam_ros.runtime.chunk_scheduler import SchedulerConfig
from ahawam_ros.runtime.clock import ManualClock
from ahawam_ros.runtime.context_slot import ContextSlot, ContextSnapshot
from ahawam_ros.runtime.executor_core import ExecutorConfig, ExecutorCore
from ahawam_ros.runtime.planner_core import PlannerConfig, PlannerCore, PUBLISHED
from ahawam_ros.runtime.policy_api import ChunkPolicy
from ahawam_ros.runtime.safety import SafetyConfig
from ahawam_ros.runtime.update_timing import LATENCY, SCHEDULES
import numpy as np

_STEP_TOLERANCE = 1e-6  # steps; float noise of a latency must not add a control step
REPLAYED, REALTIME = 'replayed', 'realtime'
TIMINGS = (REALTIME, REPLAYED)


@dataclass(frozen=True)
class ClosedLoopConfig:
    """
    Runtime settings of a closed-loop evaluation; validated on construction.

    `ahawam eval-sim` reads them from the system's parameter file (config/bimanual.yaml), so
    the evaluation runs the runtime as the deployed nodes do; the defaults are its values.

    Attributes
    ----------
    mode : str
        One of MODES.
    refresh_rate_hz : float
        Planner refresh rate (async).
    schedule, execute_steps, lead_percentile, lead_margin_steps :
        When the next update starts (see `ExecutorConfig`): 'latency' or 'spacing', the
        minimum spacing in control steps, the latency percentile and the margin in steps.
    blend, blend_steps : str, int
        Seam blending of the chunk scheduler.
    max_step : float
        Largest change of a joint command per step (rad, or normalised gripper units).
    max_context_age, max_observation_age, max_image_age : float
        Seconds after which a context / joint state / frame is stale.
    max_steps : int
        Control steps of an episode at most.
    settle_steps : int
        Steps run after the first success before the episode ends (the demo's 0.5 s);
        negative: never end early.

    """

    mode: str = ASYNC
    refresh_rate_hz: float = 3.0
    schedule: str = LATENCY
    execute_steps: int = 4
    lead_percentile: float = 90.0
    lead_margin_steps: int = 2
    blend: str = 'linear'
    blend_steps: int = 4
    max_step: float = 0.05
    max_context_age: float = 1.5
    max_observation_age: float = 0.2
    max_image_age: float = 0.5
    max_steps: int = 400
    settle_steps: int = 25

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f'mode must be one of {list(MODES)}, got {self.mode!r}')
        for name in ('refresh_rate_hz', 'max_step', 'max_context_age', 'max_observation_age',
                     'max_image_age'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f'{name} must be a finite number > 0, got {value}')
        for name in ('execute_steps', 'blend_steps', 'lead_margin_steps'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        if self.max_steps < 1:
            raise ValueError(f'max_steps must be >= 1, got {self.max_steps}')
        SchedulerConfig(self.blend, self.blend_steps)  # validates blend
        if self.schedule not in SCHEDULES:
            raise ValueError(f'schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}')
        if not 0.0 < self.lead_percentile <= 100.0:
            raise ValueError(f'lead_percentile must be in (0, 100], got {self.lead_percentile}')

    def executor_config(self, action_dim: int) -> ExecutorConfig:
        """Return the runtime executor settings (the robot's joint limits when A = 14)."""
        if action_dim == ACTION_DIM:
            safety = SafetyConfig.for_robot(self.max_step, max_context_age=self.max_context_age,
                                            max_observation_age=self.max_observation_age)
        else:
            safety = SafetyConfig.uniform(action_dim, -math.pi, math.pi, self.max_step,
                                          max_context_age=self.max_context_age,
                                          max_observation_age=self.max_observation_age)
        return ExecutorConfig(safety=safety,
                              scheduler=SchedulerConfig(self.blend, self.blend_steps),
                              max_image_age=self.max_image_age, schedule=self.schedule,
                              execute_steps=self.execute_steps,
                              lead_percentile=self.lead_percentile,
                              lead_margin_steps=self.lead_margin_steps)


def delay_steps(latency: float, period: float) -> int:
    """Return d = ceil(latency / period): the steps until a result is available (>= 0)."""
    return max(0, math.ceil(latency / period - _STEP_TOLERANCE))


class DelayedChunks:
    """
    Stands in for an executor's `ChunkScheduler`: offered chunks wait until `release`.

    `ExecutorCore.compute_chunk` hands its chunk to `offer` as soon as the policy returns; in
    simulated time the chunk exists only `latency` later. The offer is held (and reported
    accepted); `release(now)` offers it to the real scheduler at its arrival time, which
    aligns it (drops the actions already in the past) and returns the final status.
    """

    def __init__(self, scheduler: ChunkScheduler):
        self.scheduler = scheduler
        self.held: Optional[ActionChunk] = None

    def offer(self, chunk: ActionChunk, now: float) -> str:
        self.held = chunk
        return ACCEPTED

    def release(self, now: float) -> str:
        """Offer the held chunk to the scheduler at `now`; return its status."""
        chunk, self.held = self.held, None
        if chunk is None:
            raise RuntimeError('no chunk is held')
        return self.scheduler.offer(chunk, now)

    def next_action(self, now: float):
        return self.scheduler.next_action(now)

    def remaining(self, now: float) -> int:
        return self.scheduler.remaining(now)

    def steps_since_chunk(self, now: float) -> Optional[int]:
        return self.scheduler.steps_since_chunk(now)

    def stale_actions(self) -> Tuple[int, int]:
        return self.scheduler.stale_actions()

    def reset(self) -> None:
        self.held = None
        self.scheduler.reset()


@dataclass
class EpisodeResult:
    """
    What one closed-loop episode did.

    Attributes
    ----------
    seed, steps, success, max_reward :
        The episode seed, control steps run, any-step success, best staged reward.
    executed : int
        Commands that executed an action (not holds).
    holds : dict
        Hold reason -> count.
    first_action_step : int
        First step whose command executed an action (-1 if none).
    plan_events, chunk_events : list of (int, int)
        (start step, ready step) of every planner refresh / executor update.
    chunk_status : dict
        Status of each update at its arrival -> count ('accepted', 'stale', ...).
    plan_latencies, update_latencies, context_ages : list of float
        Seconds: measured refresh and update latencies, context age of executed commands.
    stale_actions, stale_chunks : int
        Actions of the arriving chunks that were already in the past, and the chunks counted.
    timing : str
        'replayed' (lock-step, simulated clock) or 'realtime' (workers, wall clock).
    real_time_factor : float
        Simulated seconds per wall second (realtime; NaN when replayed).
    late_steps : int
        Control steps that started after their deadline (realtime).

    """

    seed: int
    steps: int = 0
    success: bool = False
    max_reward: float = 0.0
    executed: int = 0
    holds: Dict[str, int] = field(default_factory=dict)
    first_action_step: int = -1
    plan_events: List[Tuple[int, int]] = field(default_factory=list)
    chunk_events: List[Tuple[int, int]] = field(default_factory=list)
    chunk_status: Dict[str, int] = field(default_factory=dict)
    plan_latencies: List[float] = field(default_factory=list)
    update_latencies: List[float] = field(default_factory=list)
    context_ages: List[float] = field(default_factory=list)
    stale_actions: int = 0
    stale_chunks: int = 0
    timing: str = REPLAYED
    real_time_factor: float = math.nan
    late_steps: int = 0

    def summary(self, period: float) -> Dict[str, Any]:
        """Return JSON-ready per-episode figures (rates per simulated second)."""
        seconds = max(self.steps, 1) * period
        return {'seed': self.seed, 'success': self.success, 'max_reward': self.max_reward,
                'steps': self.steps, 'command_rate_hz': self.executed / seconds,
                'chunk_rate_hz': self.chunk_status.get(ACCEPTED, 0) / seconds,
                'hold_fraction': 1.0 - self.executed / max(self.steps, 1),
                'holds': dict(self.holds), 'chunk_status': dict(self.chunk_status),
                'first_action_step': self.first_action_step,
                'planner_refreshes': len(self.plan_latencies),
                'executor_updates': len(self.update_latencies),
                'stale_actions_total': self.stale_actions, 'stale_chunks': self.stale_chunks,
                'stale_actions_per_chunk': (self.stale_actions / self.stale_chunks
                                            if self.stale_chunks else math.nan),
                'timing': self.timing, 'real_time_factor': self.real_time_factor,
                'late_steps': self.late_steps}


class LockstepRuntime:
    """
    Planner and executor cores of one episode on the simulated clock, with delayed results.

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
        self.slot = ContextSlot()  # the executor's: contexts arrive here when ready
        interval = 1.0 / config.refresh_rate_hz
        self.planner = PlannerCore(policy, ContextSlot(), PlannerConfig(
            max_image_age=config.max_image_age, min_interval=interval), self.clock, 0.0,
            wall_clock)
        executor_policy = SyncPolicy(policy) if config.mode == SYNC else policy
        self.executor = ExecutorCore(executor_policy, self.slot,
                                     config.executor_config(policy.action_dim), self.clock,
                                     0.0, wall_clock)
        self.chunks = DelayedChunks(self.executor.scheduler)
        self.executor.scheduler = self.chunks  # hold each chunk for its latency
        self._context: Optional[Tuple[int, ContextSnapshot]] = None  # (ready step, snapshot)
        self._chunk_ready: Optional[int] = None
        self._blank: Any = None  # planner-off: made from the first frame's shape
        self.policy = policy
        self.planner.reset(episode_start=0.0)  # resets the policy's memory

    def _blank_context(self, images: np.ndarray) -> Any:
        blank = blank_context(self.policy.plan(np.zeros_like(images), 0))  # a black frame
        self.policy.reset()  # the black frame must not stay in the rolling memory
        return blank

    def step(self, index: int, images: np.ndarray, qpos: np.ndarray, result: EpisodeResult):
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

        """
        now = index * self.period
        self.clock.set_time(now)
        self.executor.update_joints(qpos, now)
        self.executor.update_images(images, now)
        self._deliver(index, now, result)
        if self.config.mode == ASYNC:
            self._start_refresh(index, now, images, result)
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
        if self._chunk_ready is not None and self._chunk_ready <= index:
            status = self.chunks.release(now)
            result.chunk_status[status] = result.chunk_status.get(status, 0) + 1
            self._chunk_ready = None

    def _start_refresh(self, index: int, now: float, images: np.ndarray,
                       result: EpisodeResult) -> None:
        if self._context is not None:
            return  # the planner worker is busy
        self.planner.update_images(images, now)
        outcome = self.planner.refresh()
        if outcome.status != PUBLISHED:
            return
        ready = index + delay_steps(outcome.latency, self.period)
        self._context = (ready, outcome.snapshot)
        result.plan_events.append((index, ready))
        result.plan_latencies.append(outcome.latency)

    def _start_update(self, index: int, result: EpisodeResult) -> None:
        if self._chunk_ready is not None:
            return  # the executor worker is busy
        outcome = self.executor.compute_chunk()
        if math.isfinite(outcome.latency):
            result.update_latencies.append(outcome.latency)
        if outcome.status != ACCEPTED:
            return
        self._chunk_ready = index + delay_steps(outcome.latency, self.period)
        result.chunk_events.append((index, self._chunk_ready))


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
    for index in range(config.max_steps):
        command = runtime.step(index, views(observation), observation.qpos, result)
        observation = apply_command(env, observation, command, index, result, recorder)
        settle = settle_count(result, observation, settle)
        if settle is not None and 0 <= config.settle_steps <= settle:
            break
    result.stale_actions, result.stale_chunks = runtime.chunks.stale_actions()
    return result


def apply_command(env: Any, observation: Any, command, index: int, result: EpisodeResult,
                  recorder: Optional[Any]) -> Any:
    """Count `command`, record it, step the simulator with it; return the next observation."""
    positions = observation.qpos if command.positions is None else command.positions
    if recorder is not None:
        recorder.add(observation, positions)
    _count(result, command, index)
    observation = env.step(positions)
    result.steps = index + 1
    result.max_reward = max(result.max_reward, float(observation.reward))
    return observation


def settle_count(result: EpisodeResult, observation: Any, settle: Optional[int]):
    """Return the steps since the first success (None before it); set `result.success`."""
    if observation.success and settle is None:
        result.success = True
        return 0
    return None if settle is None else settle + 1


def _count(result: EpisodeResult, command, index: int) -> None:
    if command.is_hold:
        result.holds[command.reason] = result.holds.get(command.reason, 0) + 1
        return
    result.executed += 1
    result.context_ages.append(command.context_age)
    if result.first_action_step < 0:
        result.first_action_step = index
