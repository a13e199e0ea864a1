"""
Closed-loop episodes in real time, with the deployed runtime's worker threads.

Shapes: V cameras, H x W pixels, A action dim.

The runtime runs as in the ROS nodes, through the same `RuntimeOrchestrator`: the planner
(async) and the executor each compute in their own worker thread, with the same priorities and
warm-up, concurrently, so their contention shows in the latencies. The simulator advances on
the main thread, paced to real time: at each control step the newest observation is handed to
the cores, the command is taken (`ExecutorCore.tick`, which never waits for inference), and
only then is the simulator stepped and rendered, so the MuJoCo step and the rendering sit
between two command ticks, off the control loop's critical path; the loop then sleeps to the
step's wall-clock deadline (step * period after the start).

The cores run on the simulation's clock (step * period, as the nodes on /clock with
use_sim_time), while inference latencies are wall-clock seconds. Where the machine keeps real
time, the two clocks agree and this is plain real time. Where it does not (software rendering
of three cameras on a loaded 2-core machine costs 70-190 ms a step), the world waits for the
simulator as it would for a slow simulator node: a step that starts after its deadline is
counted (`late_steps`), the pacing restarts from it (no burst of catch-up steps), and
`real_time_factor` (simulated seconds per wall second, in the summary) says how far from real
time the episode ran.

Modes: async runs both workers (the planner refreshes at most at `refresh_rate_hz`); sync and
planner-off run the executor worker alone against the context of `modes` (the whole
synchronous update, or a blank context), published with each observation.
"""

import math
import time
from typing import Any, Callable, List, Optional

from ahawam_ros.eval.closed_loop.episode import (apply_command, CameraFrames, ClosedLoopConfig,
                                                 EpisodeResult, REALTIME, settle_count)
from ahawam_ros.eval.closed_loop.modes import (ASYNC, blank_context, PLANNER_OFF, SYNC,
                                               SYNC_CONTEXT, SyncPolicy)
from ahawam_ros.runtime.assembly import build_runtime, HostRules
from ahawam_ros.runtime.clock import ManualClock
from ahawam_ros.runtime.orchestrator import OrchestratorConfig
from ahawam_ros.runtime.planner_core import PUBLISHED
from ahawam_ros.runtime.policy_api import ChunkPolicy
from ahawam_ros.sim.pacing import Pacer
import numpy as np

Clock = Callable[[], float]


class RealtimeRuntime:
    """
    The cores of one episode and their workers, on the wall clock.

    Parameters
    ----------
    policy : ChunkPolicy
        Shared by the planner and the executor (one set of weights, as in bringup).
    config : ClosedLoopConfig
        Mode and runtime settings.
    orchestration : OrchestratorConfig
        Worker priorities and torch threads (the nodes' defaults).
    clock : Callable[[], float]
        Seconds of the simulation: stamps, ages and the command times.

    """

    def __init__(self, policy: ChunkPolicy, config: ClosedLoopConfig,
                 orchestration: OrchestratorConfig = OrchestratorConfig(),
                 clock: Clock = time.monotonic):
        self.config = config
        self.policy = policy
        self.clock = clock
        runtime = build_runtime(
            policy, config.settings, HostRules(clock), with_planner=config.mode == ASYNC,
            executor_policy=SyncPolicy(policy) if config.mode == SYNC else None,
            orchestration=orchestration)
        self.planner, self.executor = runtime.planner, runtime.executor
        self.orchestrator = runtime.orchestrator
        self.slot = self.executor.slot
        self.plan_latencies: List[float] = []  # appended by the planner worker only
        self.update_latencies: List[float] = []  # appended by the executor worker only
        self._blank: Any = None

    def start(self, images: np.ndarray, episode_start: float) -> None:
        """Reset the cores to an episode begun at `episode_start`, then start the workers."""
        if self.config.mode == PLANNER_OFF and self._blank is None:
            self._blank = blank_context(self.policy.plan(np.zeros_like(images), 0))
        self.policy.reset()  # before the workers: no refresh races with it
        if self.planner is not None:
            self.planner.reset(episode_start=episode_start)
        self.executor.reset(episode_start=episode_start, clear_context=True)
        self.orchestrator.start(planner_step=self._refresh, executor_step=self._update)

    def stop(self) -> None:
        self.orchestrator.stop()

    def observe(self, images: np.ndarray, qpos: np.ndarray, now: float,
                image_stamp: Optional[float] = None) -> None:
        """Hand the joints taken at `now` and the images (taken at `image_stamp`) to the cores."""
        stamp = now if image_stamp is None else image_stamp
        if self.planner is not None:
            self.planner.update_images(images, stamp)
        elif self.config.mode == PLANNER_OFF:
            self.slot.publish(self._blank, obs_stamp=now, publish_time=now)
        else:
            self.slot.publish(SYNC_CONTEXT, obs_stamp=now, publish_time=now)
        self.executor.update_images(images, stamp)
        self.executor.update_joints(qpos, now)

    def _refresh(self) -> None:
        outcome = self.planner.refresh()
        if outcome.status == PUBLISHED:
            self.plan_latencies.append(outcome.latency)

    def _update(self) -> None:
        outcome = self.executor.compute_chunk()
        if math.isfinite(outcome.latency):
            self.update_latencies.append(outcome.latency)


def run_realtime_episode(policy: ChunkPolicy, env: Any, config: ClosedLoopConfig, seed: int,
                         views: Callable[[Any], np.ndarray], recorder: Optional[Any] = None,
                         orchestration: OrchestratorConfig = OrchestratorConfig(),
                         clock: Clock = time.monotonic,
                         sleep: Callable[[float], None] = time.sleep) -> EpisodeResult:
    """
    Run one closed-loop episode paced to real time (arguments as `closed_loop.run_episode`).

    `clock` and `sleep` are the wall clock of the pacing; the cores run on the simulation's.

    Returns
    -------
    EpisodeResult
        As the lock-step one, with 'realtime' timing, the real-time factor and late steps
        (`plan_events` and `chunk_events` stay empty: no step schedule to report).

    """
    sim_time = ManualClock(0.0)
    runtime = RealtimeRuntime(policy, config, orchestration, sim_time)
    result = EpisodeResult(seed=seed, timing=REALTIME)
    period = policy.control_period
    observation, settle = env.reset(seed), None
    frames = CameraFrames(views, config.camera_every, recording=recorder is not None)
    frames.take(observation, 0.0)
    runtime.start(frames.images, 0.0)
    start = clock()
    pacer = Pacer(period, max_lag=0, clock=clock)  # late: restart from it, no catch-up burst
    try:
        for index in range(config.max_steps):
            now = index * period
            sim_time.set_time(now)
            runtime.observe(frames.images, observation.qpos, now, frames.stamp)
            command = runtime.executor.tick(now)
            render = frames.renders(index + 1)
            observation = apply_command(env, observation, command, index, result, recorder,
                                        render)
            settle = settle_count(result, observation, settle)
            if settle is not None and 0 <= config.settle_steps <= settle:
                break
            frames.take(observation, (index + 1) * period, render)
            wait = pacer.delay()
            if wait > 0.0:
                sleep(wait)
    finally:
        result.late_steps = pacer.late
        runtime.stop()
    elapsed = clock() - start
    result.real_time_factor = result.steps * period / elapsed if elapsed > 0 else math.nan
    result.plan_latencies = list(runtime.plan_latencies)
    result.update_latencies = list(runtime.update_latencies)
    result.stale_actions, result.stale_chunks = runtime.executor.scheduler.stale_actions()
    result.chunk_status = runtime.executor.chunk_results.as_dict()
    return result
