"""Latency-aware chunk scheduling: when the next update starts, stale actions, no holds."""

import dataclasses
import math
import threading

from ahawam_ros.runtime.chunk_scheduler import ACCEPTED, ActionChunk, ChunkScheduler
from ahawam_ros.runtime.chunk_scheduler import DROP_STALE
from ahawam_ros.runtime.clock import ManualClock
from ahawam_ros.runtime.context_slot import ContextRegistry, ContextSlot
from ahawam_ros.runtime.executor_core import ExecutorCore
from ahawam_ros.runtime.policy_api import FakePolicy
from ahawam_ros.runtime.safety import SafetyConfig
from ahawam_ros.runtime.update_timing import lead_steps
import numpy as np
import pytest
from runtime_configs import executor_config, scheduler_config

A, K, PERIOD = 4, 16, 0.02
IMAGES = np.zeros((1, 8, 8, 3), np.uint8)


class SteppedWorld:
    """
    An executor on a fake clock whose inference takes `latency_steps` control steps.

    The chunk worker is a test-owned thread. `FakePolicy.predict_chunk` sleeps through
    `sleep`, which blocks until the test has moved the clock past the latency, so ticks go on
    while a chunk is being computed, as with the real worker, but deterministically: each
    tick first lets a finished update deliver, then (if none is in flight) asks for the next
    one and waits until it is either skipped or parked in its latency.
    """

    def __init__(self, latency_steps, margin=2, schedule='latency', execute_steps=0):
        self.clock = ManualClock(0.0)
        self._time = threading.Condition()
        self._parked = threading.Event()
        self.policy = FakePolicy(chunk_len=K, action_dim=A, control_period=PERIOD,
                                 chunk_latency=latency_steps * PERIOD, sleep=self._sleep)
        slot = ContextSlot(ContextRegistry())
        safety = SafetyConfig.uniform(A, -1.0, 1.0, 10.0, max_context_age=100.0,
                                      max_observation_age=0.1)
        config = executor_config(safety, schedule=schedule, execute_steps=execute_steps,
                                 lead_margin_steps=margin)
        self.core = ExecutorCore(self.policy, slot, config, clock=self.clock, episode_start=0.0,
                                 wall_clock=self.clock)
        slot.publish(self.policy.plan(IMAGES, 0), obs_stamp=0.0, publish_time=0.0)
        self.remaining_at_start = []  # actions left in the plan when each update started
        self.commands = []
        self._thread = None

    def _sleep(self, seconds):
        self.remaining_at_start.append(self.core.scheduler.remaining(self.clock()))
        target = self.clock() + seconds
        with self._time:
            self._parked.set()
            self._time.wait_for(lambda: self.clock() >= target - 1e-9)

    def _set_time(self, t):
        with self._time:
            self.clock.set_time(t)
            self._time.notify_all()

    def run(self, ticks, first=0):
        for i in range(first, first + ticks):
            t = i * PERIOD
            self._set_time(t)
            if self._thread is not None and not self._parked_for_later(t):
                self._thread.join()  # the update delivers at its arrival time
                self._thread = None
            self.core.update_joints(np.zeros(A), t)
            self.core.update_images(IMAGES, t)
            if self._thread is None:
                self._start_update()
            self.commands.append(self.core.tick(t))
        if self._thread is not None:  # let the update in flight end: no thread outlives a test
            self._set_time(max(self.clock(), self._pending_target))
            self._thread.join()
            self._thread = None

    def _parked_for_later(self, t):
        # still computing: its target time lies ahead (the thread holds the condition's wait)
        return self._thread.is_alive() and self._pending_target > t + 1e-9

    def _start_update(self):
        self._parked.clear()
        self._pending_target = self.clock() + self.policy.chunk_latency
        thread = threading.Thread(target=self.core.compute_chunk, daemon=True)
        thread.start()
        while thread.is_alive() and not self._parked.wait(0.01):
            pass
        if thread.is_alive():
            self._thread = thread  # parked in its latency
        else:
            thread.join()


@pytest.mark.parametrize('latency_steps,margin', [(5, 2), (3, 1), (8, 0)])
def test_the_next_update_starts_when_the_actions_left_fall_to_latency_plus_margin(
        latency_steps, margin):
    world = SteppedWorld(latency_steps, margin)
    world.run(200)
    lead = latency_steps + margin
    later = world.remaining_at_start[2:]  # the first updates start without an estimate
    assert len(later) > 5
    assert all(0 < left <= lead for left in later), (lead, later)
    assert max(later) == lead  # and not earlier than needed
    stats = world.core.stats()
    assert stats['update_lead_steps'] == lead
    assert stats['stale_actions_per_chunk'] == pytest.approx(latency_steps)


@pytest.mark.parametrize('latency_steps', [3, 5, 7])
def test_no_hold_once_the_latency_estimate_is_warm(latency_steps):
    # one update in flight at a time: a chunk lasts K - latency steps after it arrives, so
    # holds are unavoidable only past latency > K / 2 (8 here), whatever the schedule
    world = SteppedWorld(latency_steps, margin=2)
    world.run(300)
    first_chunk = next(i for i, c in enumerate(world.commands) if not c.is_hold)
    assert first_chunk == latency_steps  # the first chunk arrives after its latency
    holds = [i for i, c in enumerate(world.commands) if c.is_hold and i > first_chunk]
    assert holds == []


def test_without_margin_and_a_too_short_lead_the_plan_runs_out():
    """The check above can fail: a lead below the latency leaves holds at every seam."""
    world = SteppedWorld(5, margin=0)
    world.core.timing.margin = -3  # lead = latency - 3 steps: starts too late
    world.run(200)
    first_chunk = next(i for i, c in enumerate(world.commands) if not c.is_hold)
    holds = [c.reason for c in world.commands[first_chunk:] if c.is_hold]
    assert len(holds) > 10 and set(holds) == {'no_chunk'}


def test_spacing_schedule_updates_as_soon_as_the_spacing_allows():
    world = SteppedWorld(2, schedule='spacing', execute_steps=4)
    world.run(100)
    later = world.remaining_at_start[2:]
    assert later and min(later) > 2 + 2  # far earlier than the latency schedule would
    assert world.core.stats()['stale_actions_per_chunk'] == pytest.approx(2)


@pytest.mark.parametrize('execute_steps,spacing', [(0, 4), (9, 9)])
def test_execute_steps_is_a_minimum_spacing_in_the_latency_schedule(execute_steps, spacing):
    # lead 4 + 10 = 14: due again as soon as a chunk arrives (4 steps after its step 0)
    world = SteppedWorld(4, margin=10, execute_steps=execute_steps)
    world.run(150)
    t0s = [step for step, _ in world.policy.chunk_calls]
    assert set(np.diff(t0s)[1:]) == {spacing}


def test_stale_actions_are_counted_when_a_chunk_arrives_late():
    scheduler = ChunkScheduler(scheduler_config())
    chunk = ActionChunk(np.zeros((K, A)), t0=1.0, period=PERIOD)
    assert scheduler.stale_actions() == (0, 0)
    assert scheduler.offer(chunk, now=1.0 + 3 * PERIOD) == ACCEPTED
    assert scheduler.stale_actions() == (3, 1)
    later = ActionChunk(np.zeros((K, A)), t0=2.0, period=PERIOD)
    assert scheduler.offer(later, now=2.0 + (K + 2) * PERIOD) == DROP_STALE
    assert scheduler.stale_actions() == (3 + K, 2)  # every action of a wholly stale chunk
    scheduler.reset()
    assert scheduler.stale_actions() == (3 + K, 2)  # counters outlive the plan


def test_stats_report_stale_actions_and_nan_before_any_chunk():
    world = SteppedWorld(4)
    stats = world.core.stats()
    assert stats['stale_actions_total'] == 0.0
    assert math.isnan(stats['stale_actions_per_chunk'])
    assert math.isnan(stats['update_lead_steps'])  # no latency measured yet


@pytest.mark.parametrize('latency,steps', [(0.0, 2), (0.02, 3), (0.021, 4), (0.1, 7),
                                           (0.30000000000000004 - 0.2, 7)])
def test_lead_is_the_latency_rounded_up_to_steps_plus_the_margin(latency, steps):
    assert lead_steps(latency, PERIOD, 2) == steps


@pytest.mark.parametrize('field,value', [('schedule', 'asap'), ('lead_percentile', 0.0),
                                         ('lead_percentile', 101.0),
                                         ('lead_percentile', math.nan),
                                         ('lead_margin_steps', -1)])
def test_config_names_the_bad_scheduling_field(field, value):
    safety = SafetyConfig.uniform(A, -1.0, 1.0, 1.0, max_context_age=1.0, max_observation_age=0.1)
    with pytest.raises(ValueError, match=field):
        executor_config(safety, **{field: value})


def test_a_reconfigured_execute_steps_changes_the_cadence():
    """A live execute_steps (ros2 param set) is the spacing the next updates keep."""
    world = SteppedWorld(0, schedule='spacing', execute_steps=1)
    world.run(40)
    before = world.core.stats()['chunks_accepted']
    world.core.reconfigure(dataclasses.replace(world.core.config, execute_steps=5))
    world.run(40, first=40)
    after = world.core.stats()['chunks_accepted'] - before
    assert before >= 35  # a chunk from every joint state
    assert 6 <= after <= 10, after  # one every 5 steps
