"""
The executor: newest observation + newest context -> chunks -> one safe command per tick.

Shapes: V cameras, H x W pixels, A action dim, K chunk length.

Threads: subscription callbacks call `update_joints` / `check_camera_stamp` / `accept_context`
(`executor_inputs`: every stamp is checked against the clock on arrival, `runtime/stamps.py`); a
chunk worker (the optional built-in thread, or the caller's own callback group) calls
`compute_chunk`; the command timer calls `tick`. Every entry point is thread-safe and `tick`
never waits for inference. The same object serves the ROS node, the bag evaluator and tests.
"""

import logging
import math
import threading
import time
from typing import Callable, Dict, Optional, Tuple

from ahawam_ros.runtime.chunk_scheduler import ACCEPTED, ActionChunk, ChunkScheduler
from ahawam_ros.runtime.command_path import command_path, path_velocities
from ahawam_ros.runtime.context_slot import ContextSlot
from ahawam_ros.runtime.executor_config import ChunkOutcome, Command  # noqa: F401
from ahawam_ros.runtime.executor_config import ExecutorCoreConfig  # re-exported: the core's API
from ahawam_ros.runtime.executor_inputs import ExecutorInputs, Observation
from ahawam_ros.runtime.joint_gate import JointGate
from ahawam_ros.runtime.policy_api import ChunkPolicy, step_at
from ahawam_ros.runtime.safety import HoldReason, SafetyFilter
from ahawam_ros.runtime.stamps import stamp_age, StampGuard
from ahawam_ros.runtime.stats import ReasonCounter, RollingStats
from ahawam_ros.runtime.update_timing import UpdateTiming
from ahawam_ros.runtime.worker import WakeableWorker, WorkerHost
import numpy as np

_LOG = logging.getLogger(__name__)
READY = 'ready'  # computed, waiting for the host's `hand_over` (compute_chunk(hand_over=False))
Clock = Callable[[], float]
# holds that a silent camera explains: no new context or chunk is computed without frames
_CAMERA_CAUSED = {HoldReason.NO_CONTEXT.value, HoldReason.STALE_CONTEXT.value,
                  HoldReason.NO_CHUNK.value}


def _timing_rules(config: ExecutorCoreConfig) -> Tuple[str, int, float, int]:
    """Return the `UpdateTiming` rules: schedule, execute_steps, percentile, margin."""
    return (config.schedule, config.execute_steps, config.lead_percentile,
            config.lead_margin_steps)


class ExecutorCore(ExecutorInputs, WorkerHost):
    """
    Thread-safe executor shared by the ROS executor node, the bag evaluator and tests.

    Parameters
    ----------
    policy : ChunkPolicy
        Provides `predict_chunk`, `chunk_len`, `action_dim`, `control_period`.
    slot : ContextSlot
        Where the newest planner context is read (shared with a `PlannerCore` in-process, or
        fed through `accept_context(handle)`).
    config : ExecutorCoreConfig
        Settings; `config.safety` must have `policy.action_dim` joints.
    clock : Callable[[], float]
        Seconds; `time.monotonic` by default, ROS node time (sim time) in the node, a fake
        clock in tests. All stamps given to this object must be on the same clock.
    episode_start : float, optional
        Time of control step 0 (default: the clock at construction).
    wall_clock : Callable[[], float]
        Real seconds for the inference latency statistics (`time.perf_counter`).

    """

    def __init__(self, policy: ChunkPolicy, slot: ContextSlot, config: ExecutorCoreConfig,
                 clock: Clock = time.monotonic, episode_start: Optional[float] = None,
                 wall_clock: Clock = time.perf_counter):
        if config.safety.action_dim != policy.action_dim:
            raise ValueError(f'safety config has {config.safety.action_dim} joints, the '
                             f'policy {policy.action_dim}')
        self.policy = policy
        self.slot = slot
        self.config = config
        self.clock = clock
        self.wall_clock = wall_clock
        self.scheduler = ChunkScheduler(config.scheduler)
        self._safety = SafetyFilter(config.safety)
        self.stamps = StampGuard(config.stamps)
        self._episode_start = clock() if episode_start is None else episode_start
        self._not_before = -math.inf  # after a reset: older observations are refused
        self._joints: Optional[Observation] = None
        self._images: Optional[Observation] = None
        self._last_inputs: Optional[Tuple[int, float, float]] = None
        self._generation = 0
        self._lock = threading.Lock()  # observations, episode
        self._tick_lock = threading.Lock()  # safety filter state
        self._worker = WakeableWorker(self.compute_chunk, 'ahawam-chunk-worker',
                                      config.worker_poll)
        self.chunk_latency = RollingStats(config.stats_window)
        self.timing = UpdateTiming(*_timing_rules(config), self.chunk_latency,
                                   policy.control_period)
        self.context_age = RollingStats(config.stats_window)  # s, of each executed command
        self.holds = ReasonCounter()
        self.chunk_results = ReasonCounter()  # 'accepted' and every skip / drop reason
        self._ticks = 0
        self._clipped = 0
        self._rate_limited = 0
        self.joint_gate = JointGate(policy.action_dim)
        self.last_error = ''

    # ---- chunk computation (worker thread or the caller's callback group) ----------------

    def compute_chunk(self, hand_over: bool = True) -> ChunkOutcome:
        """
        Compute one chunk from the newest context and observation and hand it to the scheduler.

        Skips (without calling the policy) when an input is missing or stale, nothing changed
        since the last chunk, or the executing chunk is not yet due for replacement. Policy
        exceptions are caught, logged and counted ('policy_error'). With `hand_over` False a
        good chunk is returned with status 'ready' and not scheduled: the host hands it over
        (`hand_over`) when its simulated latency has passed (lock-step evaluation).
        """
        snapshot = self.slot.latest()
        with self._lock:
            joints, images, generation = self._joints, self._images, self._generation
            episode_start = self._episode_start
        skip = self._skip_reason(self.clock(), snapshot, joints, images)
        if skip:
            return self._outcome(skip, math.nan, -1 if snapshot is None else snapshot.seq)
        inputs = (snapshot.seq, joints.stamp, images.stamp)
        step = step_at(joints.stamp, episode_start, self.policy.control_period)
        started = self.wall_clock()
        try:
            actions = self.policy.predict_chunk(images.value, joints.value.astype(np.float32),
                                                snapshot.context, step)
        except Exception as error:  # a failing model must not take the executor down
            self._report(error)
            with self._lock:
                self._last_inputs = inputs  # retry on new inputs only
            return self._outcome('policy_error', math.nan, snapshot.seq)
        latency = self.wall_clock() - started
        self.chunk_latency.add(latency)
        actions = np.asarray(actions, dtype=np.float64)
        status = self._check_actions(actions)
        with self._lock:  # one step with the generation check: a reset cannot slip between
            if generation != self._generation:
                return self._outcome('reset', latency, snapshot.seq)
            self._last_inputs = inputs
            chunk = None
            if not status:
                chunk = ActionChunk(actions, t0=joints.stamp, period=self.policy.control_period,
                                    context_seq=snapshot.seq,
                                    context_stamp=snapshot.obs_stamp)
                if not hand_over:
                    return ChunkOutcome(READY, latency, snapshot.seq, chunk)
                status = self.scheduler.offer(chunk, self.clock())
        return self._outcome(status, latency, snapshot.seq,
                             chunk if status == ACCEPTED else None)

    def hand_over(self, chunk: ActionChunk, now: Optional[float] = None) -> str:
        """Offer a 'ready' chunk to the scheduler at `now` (default: the clock); its status."""
        with self._lock:
            status = self.scheduler.offer(chunk, self.clock() if now is None else now)
        self.chunk_results.add(status)
        return status

    def _report(self, error: Exception) -> None:
        message = f'{type(error).__name__}: {error}'
        if message != self.last_error:  # once per distinct error, not at the chunk rate
            _LOG.error('predict_chunk failed: %s', message, exc_info=error)
        self.last_error = message

    def _check_actions(self, actions: np.ndarray) -> str:
        if actions.ndim != 2 or actions.shape[0] < 1 or actions.shape[1] != self.policy.action_dim:
            self.last_error = f'predict_chunk returned shape {actions.shape}'
            return 'bad_shape'
        if not np.all(np.isfinite(actions)):
            return 'nonfinite_chunk'
        return ''

    def _skip_reason(self, now, snapshot, joints, images) -> str:
        limits = self.config.safety
        if snapshot is None:
            return 'no_context'
        if snapshot.age(now) > limits.max_context_age:
            return 'stale_context'
        if joints is None:
            return 'no_joint_state'
        if stamp_age(now, joints.stamp) > limits.max_observation_age:
            return 'stale_joint_state'
        if images is None:
            return 'no_images'
        if stamp_age(now, images.stamp) > self.config.max_image_age:
            return 'stale_images'
        with self._lock:
            if (snapshot.seq, joints.stamp, images.stamp) == self._last_inputs:
                return 'no_new_input'
        return self.timing.skip_reason(self.scheduler, joints.stamp, now)

    def _outcome(self, status: str, latency: float, seq: int,
                 chunk: Optional[ActionChunk] = None) -> ChunkOutcome:
        self.chunk_results.add(status)
        return ChunkOutcome(status, latency, seq, chunk)

    # ---- command timer --------------------------------------------------------------------

    def tick(self, now: Optional[float] = None, ahead: int = 0) -> Command:
        """
        Return the command for time `now` (default: the clock); never blocks on inference.

        `ahead`: how many of the plan's next commands to add to the command's path (fewer
        where the plan ends or its inputs would be stale by then; none for a hold).

        Returns
        -------
        Command
            Finite, within limits, rate-limited; a hold with a reason when needed.

        """
        now = self.clock() if now is None else now
        with self._lock:
            joints = self._joints
        planned = self.scheduler.next_action(now, ahead)
        if planned is not None:
            seq, context_stamp = planned.context_seq, planned.context_stamp
        else:
            snapshot = self.slot.latest()
            seq = -1 if snapshot is None else snapshot.seq
            context_stamp = None if snapshot is None else snapshot.obs_stamp
        joint_stamp = None if joints is None else joints.stamp
        with self._tick_lock:
            previous = self._safety.last_command
            reason = self._safety.check_inputs(now, joint_stamp, context_stamp)
            result = self._safety.apply(None if planned is None else planned.action,
                                        None if joints is None else joints.value, reason)
            path = command_path(self._safety, result, planned, now, joint_stamp,
                                context_stamp, self.config.safety)
            self._ticks += 1
            self._clipped += result.clipped
            self._rate_limited += result.rate_limited
        reason, detail = result.reason, ''
        if result.is_hold:
            reason, detail = self._hold_cause(now, reason)
            self.holds.add(reason)
        age = math.nan if context_stamp is None else now - context_stamp
        if not result.is_hold and math.isfinite(age):
            self.context_age.add(age)
        if path is None:
            velocities, period = None, math.nan
        else:
            period = planned.period if path.shape[0] > 1 else math.nan
            velocities = path_velocities(previous, path, period)
        return Command(result.positions, result.is_hold, reason, seq, age, now,
                       result.clipped, result.rate_limited, detail, path, velocities, period)

    def _hold_cause(self, now: float, reason: str) -> Tuple[str, str]:
        """Name the silent camera when it is why the context or the chunks ran out."""
        if reason not in _CAMERA_CAUSED:
            return reason, ''
        stale = self.stamps.stale_camera(now, self.config.max_image_age)
        if stale is None:
            return reason, ''
        return HoldReason.STALE_CAMERA.value, f'{stale[0]}: newest frame {stale[1]:.2f} s old'

    def final_command(self, now: Optional[float] = None) -> Command:
        """
        Return a hold at the last command sent, for shutdown (reason 'stopped').

        The positions are None if nothing was ever sent; then nothing should be sent now.
        """
        now = self.clock() if now is None else now
        with self._tick_lock:
            positions = self._safety.last_command
        self.holds.add(HoldReason.STOPPED.value)
        return Command(positions, True, HoldReason.STOPPED.value, -1, math.nan, now)

    def reconfigure(self, config: ExecutorCoreConfig) -> None:
        """
        Use new settings (limits, ages, blend, cadence) from the next tick and chunk on.

        The plan and the last command are kept: nothing jumps. `worker_poll` and
        `stats_window` keep the values they had at construction.
        """
        if config.safety.action_dim != self.policy.action_dim:
            raise ValueError(f'safety config has {config.safety.action_dim} joints, the '
                             f'policy {self.policy.action_dim}')
        with self._lock:
            self.config = config
            self.scheduler.reconfigure(config.scheduler)
            self.timing.reconfigure(*_timing_rules(config))
        with self._tick_lock:
            self._safety.reconfigure(config.safety)

    # ---- episode and diagnostics ----------------------------------------------------------

    def reset(self, episode_start: Optional[float] = None, clear_context: bool = False) -> None:
        """
        Start a new episode: drop the plan and the observations; the next command holds.

        Parameters
        ----------
        episode_start : float, optional
            Time of control step 0 (default: now).
        clear_context : bool
            Also clear the slot (when this executor owns it; a `PlannerCore` sharing the slot
            clears it in its own reset).

        """
        with self._lock:
            self._generation += 1
            self._episode_start = self.clock() if episode_start is None else episode_start
            self._not_before = self._episode_start
            self._joints = self._images = None
            self._last_inputs = None
            self.scheduler.reset()
        self.stamps.forget()
        with self._tick_lock:
            self._safety.reset()
        if clear_context:
            self.slot.clear()

    def stats(self) -> Dict[str, float]:
        """Return counters and latency percentiles as a flat dict (diagnostics key/values)."""
        with self._tick_lock:
            out = {'ticks': float(self._ticks), 'clipped': float(self._clipped),
                   'rate_limited': float(self._rate_limited)}
        out['holds'] = float(self.holds.total())
        out.update({f'holds_{k}': float(v) for k, v in self.holds.as_dict().items()})
        results = self.chunk_results.as_dict()
        out['chunks_computed'] = float(self.chunk_latency.total)
        out['chunks_accepted'] = float(results.get(ACCEPTED, 0))
        out['chunks_dropped'] = out['chunks_computed'] - out['chunks_accepted']
        out.update({f'chunk_{k}': float(v) for k, v in results.items() if k != ACCEPTED})
        out.update(self.chunk_latency.summary('chunk_latency'))
        out.update(self.context_age.summary('context_age'))
        out['rejected_joint_states'] = float(self.joint_gate.rejected)
        out['joint_states_out_of_range'] = float(self.joint_gate.out_of_range)
        out.update(self.stamps.stats())
        out['context_seq'] = float(self.slot.last_seq)
        out.update(self.stale_stats())
        out.update(self.timing.stats())
        out.update(self._worker.priority_stats())
        return out

    def stale_stats(self) -> Dict[str, float]:
        """Return 'stale_actions_total' and 'stale_actions_per_chunk' (mean; NaN: no chunk)."""
        total, chunks = self.scheduler.stale_actions()
        return {'stale_actions_total': float(total),
                'stale_actions_per_chunk': total / chunks if chunks else math.nan}

    @property
    def holds_by_reason(self) -> Dict[str, int]:
        return self.holds.as_dict()
