"""
The planner: newest frames -> `policy.plan` -> a new snapshot in the context slot.

Shapes: V cameras, H x W pixels.

Runs at its own slow rate, in the optional built-in worker thread or in the caller's callback
group (`refresh`). Thread-safe; the same object serves the ROS planner node, the bag evaluator
and tests. Every frame stamp is checked against the clock on arrival (`runtime/stamps.py`).
"""

from dataclasses import dataclass
import logging
import math
import threading
import time
from typing import Callable, Dict, NamedTuple, Optional

from ahawam_ros.runtime.context_slot import ContextSlot, ContextSnapshot
from ahawam_ros.runtime.frames import check_frames, IMAGE_SOURCE
from ahawam_ros.runtime.policy_api import ChunkPolicy, step_at
from ahawam_ros.runtime.stamps import stamp_age, StampConfig, StampGuard
from ahawam_ros.runtime.stats import ReasonCounter, RollingStats
from ahawam_ros.runtime.worker import WakeableWorker, WorkerHost
import numpy as np

_LOG = logging.getLogger(__name__)
PUBLISHED = 'published'


@dataclass(frozen=True)
class PlannerCoreConfig:
    """
    The planner core's config; validated on construction.

    Built from `PlannerSettings` by `settings.planner_core_config`, which holds the defaults.

    Attributes
    ----------
    max_image_age : float
        Frames older than this (s) are not planned from.
    min_interval : float
        Seconds (on the injected clock) between the starts of two refreshes; 0 refreshes
        whenever a new frame is there.
    worker_poll : float
        Longest real-time wait (s) of the worker between checks.
    stats_window : int
        Samples kept for latency percentiles.
    stamps : StampConfig
        How far ahead of the clock a frame's stamp may lie, and what counts as unset.

    """

    max_image_age: float
    min_interval: float
    stamps: StampConfig
    worker_poll: float = 0.02
    stats_window: int = 100

    def __post_init__(self):
        for name in ('max_image_age', 'worker_poll'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f'{name} must be a finite number > 0, got {value}')
        if not (math.isfinite(self.min_interval) and self.min_interval >= 0.0):
            raise ValueError(f'min_interval must be a finite number >= 0, got {self.min_interval}')
        if self.stats_window < 1:
            raise ValueError(f'stats_window must be >= 1, got {self.stats_window}')


class PlanOutcome(NamedTuple):
    """Result of one `refresh`: 'published' with the snapshot, or why it was skipped."""

    status: str
    snapshot: Optional[ContextSnapshot]
    latency: float  # wall-clock seconds of policy.plan, NaN if not called
    images: Optional[np.ndarray] = None  # uint8 (V, H, W, 3) planned from, when published


class PlannerCore(WorkerHost):
    """
    Thread-safe planner loop body.

    Parameters
    ----------
    policy : ChunkPolicy
        Provides `plan`, `reset` and `control_period`.
    slot : ContextSlot
        Where each new context is published (and registered for handles).
    config : PlannerCoreConfig
        Settings.
    clock : Callable[[], float]
        Seconds; the same clock as the frame stamps (ROS node time in the node).
    episode_start : float, optional
        Time of control step 0 (default: the clock at construction).
    wall_clock : Callable[[], float]
        Real seconds for the planner latency (`time.perf_counter`).

    """

    def __init__(self, policy: ChunkPolicy, slot: ContextSlot,
                 config: PlannerCoreConfig,
                 clock: Callable[[], float] = time.monotonic,
                 episode_start: Optional[float] = None,
                 wall_clock: Callable[[], float] = time.perf_counter):
        self.policy = policy
        self.slot = slot
        self.config = config
        self.clock = clock
        self.wall_clock = wall_clock
        self._episode_start = clock() if episode_start is None else episode_start
        self._not_before = -math.inf  # after a reset: frames of the old episode are refused
        self._images: Optional[np.ndarray] = None
        self._image_stamp = -math.inf
        self._planned_stamp: Optional[float] = None
        self._last_start = -math.inf
        self._lock = threading.Lock()  # newest frames
        self._plan_lock = threading.Lock()  # serialises plan() with reset()
        self._worker = WakeableWorker(self.refresh, 'ahawam-planner-worker', config.worker_poll)
        self.latency = RollingStats(config.stats_window)
        self.results = ReasonCounter()
        self.stamps = StampGuard(config.stamps)
        self._stale_logged = False
        self.last_error = ''
        self.last_status = 'no_images'  # the newest refresh's outcome (diagnostics)
        self.last_published = -math.inf  # clock time of the newest published context

    def reconfigure(self, config: PlannerCoreConfig) -> None:
        """Use new settings (frame age, pacing) from the next refresh on: one reference swap."""
        self.config = config

    def update_images(self, images: np.ndarray, stamp: float, source: str = IMAGE_SOURCE) -> bool:
        """
        Store the newest frames, uint8 (V, H, W, 3) by reference.

        Returns False (and keeps the frames it has) when the stamp is refused by `self.stamps`,
        or older than the frames held or than the start of the episode after a `reset`.
        """
        check_frames(images)
        verdict = self.stamps.check(source, stamp, self.clock(), reoffer=True)
        if not verdict.accepted:
            return False
        stamp = verdict.stamp
        with self._lock:
            if stamp < self._image_stamp or stamp < self._not_before:
                return False
            newer = stamp > self._image_stamp
            self._images, self._image_stamp = images, float(stamp)
        if newer:  # re-offered frames are nothing new to plan from
            self._worker.wake()
        return True

    def check_camera_stamp(self, topic: str, stamp: float) -> Optional[float]:
        """Check one camera frame's stamp on arrival; the stamp to keep, or None if refused."""
        verdict = self.stamps.check(topic, stamp, self.clock(), camera=True)
        return verdict.stamp if verdict.accepted else None

    def refresh(self) -> PlanOutcome:
        """
        Plan from the newest frames and publish the context, unless there is nothing to do.

        Skips: 'no_images', 'stale_images', 'no_new_images' (already planned from these),
        'not_due' (`min_interval` not elapsed). Policy exceptions are caught, logged and
        counted as 'policy_error'.
        """
        with self._plan_lock:
            with self._lock:
                images, stamp = self._images, self._image_stamp
            now = self.clock()
            skip = self._skip_reason(now, images, stamp)
            self._log_stale(now, skip)
            if skip:
                return self._outcome(skip, None, math.nan)
            self._last_start = now
            started = self.wall_clock()
            step = step_at(stamp, self._episode_start, self.policy.control_period)
            try:
                context = self.policy.plan(images, step)
            except Exception as error:  # a failing model must not take the planner down
                message = f'{type(error).__name__}: {error}'
                if message != self.last_error:  # once per distinct error, not per frame
                    _LOG.error('plan failed: %s', message, exc_info=error)
                self.last_error = message
                self._planned_stamp = stamp  # retry on the next frame only
                return self._outcome('policy_error', None, math.nan)
            latency = self.wall_clock() - started
            self._planned_stamp = stamp
            snapshot = self.slot.publish(context, obs_stamp=stamp, publish_time=self.clock(),
                                         planner_latency=latency, step=step)
        self.latency.add(snapshot.planner_latency)
        self.last_published = snapshot.publish_time
        return self._outcome(PUBLISHED, snapshot, snapshot.planner_latency, images)

    def _skip_reason(self, now: float, images: Optional[np.ndarray], stamp: float) -> str:
        if images is None:
            return 'no_images'
        planned = stamp == self._planned_stamp
        # Frames planned already while the cameras still deliver are not a pause: the host's
        # next frames are due (a refresh timer slower than max_image_age).
        if stamp_age(now, stamp) > self.config.max_image_age and not (
                planned and self.stamps.stale_camera(now, self.config.max_image_age) is None):
            return 'stale_images'
        if planned:
            return 'no_new_images'
        if now - self._last_start < self.config.min_interval:
            return 'not_due'
        return ''

    def _log_stale(self, now: float, skip: str) -> None:
        """Say once when planning stops for stale frames (naming the camera) and resumes."""
        stale = skip == 'stale_images'
        if stale == self._stale_logged or skip == 'no_images':
            return
        self._stale_logged = stale
        if not stale:
            _LOG.info('planner resumed: fresh frames again')
            return
        camera = self.stamps.stale_camera(now, self.config.max_image_age)
        what = (f'camera {camera[0]}: newest frame {camera[1]:.2f} s old' if camera else
                'frames older than max_image_age')
        _LOG.warning('planner paused: %s (max_image_age %g s)', what, self.config.max_image_age)

    def _outcome(self, status: str, snapshot: Optional[ContextSnapshot], latency: float,
                 images: Optional[np.ndarray] = None) -> PlanOutcome:
        self.results.add(status)
        if status not in ('no_new_images', 'not_due'):  # those say nothing of its health
            self.last_status = status
        return PlanOutcome(status, snapshot, latency, images)

    def reset(self, episode_start: Optional[float] = None) -> None:
        """
        Start a new episode: reset the policy, clear the slot and the frames.

        Waits for a refresh in flight, so no context of the old episode is published after.
        """
        with self._plan_lock:
            self.policy.reset()
            self.slot.clear()
            with self._lock:
                self._images, self._image_stamp = None, -math.inf
            self._planned_stamp = None
            self._last_start = -math.inf
            self.stamps.forget()
            self._episode_start = self.clock() if episode_start is None else episode_start
            with self._lock:
                self._not_before = self._episode_start

    def stats(self) -> Dict[str, float]:
        """Return counters and latency percentiles as a flat dict (diagnostics key/values)."""
        results = self.results.as_dict()
        out = {'published': float(results.get(PUBLISHED, 0)),
               'context_seq': float(self.slot.last_seq)}
        out.update({f'plan_{k}': float(v) for k, v in results.items() if k != PUBLISHED})
        out.update(self.latency.summary('plan_latency'))
        out.update(self.stamps.stats())
        out.update(self._worker.priority_stats())
        return out
