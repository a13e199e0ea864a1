"""The planner core: newest frames -> plan -> a numbered snapshot in the slot."""

import math
import threading
import time

from ahawam_ros.runtime.clock import ManualClock
from ahawam_ros.runtime.context_slot import ContextRegistry, ContextSlot
from ahawam_ros.runtime.planner_core import PlannerCore
from ahawam_ros.runtime.policy_api import FakePolicy
import numpy as np
import pytest
from runtime_configs import planner_config

START = 20.0
PERIOD = 0.02
IMAGES = np.zeros((2, 6, 8, 3), np.uint8)


def make(**config):
    clock = ManualClock(START)
    policy = FakePolicy(action_dim=3, control_period=PERIOD, plan_latency=0.1,
                        sleep=clock.advance)
    slot = ContextSlot(ContextRegistry())
    planner = PlannerCore(policy, slot, planner_config(**config), clock=clock,
                          episode_start=START, wall_clock=clock)
    return planner, policy, slot, clock


def test_refresh_publishes_the_newest_frames_with_their_stamp_and_step():
    planner, policy, slot, clock = make()
    clock.set_time(START + 0.2)  # a stamp ahead of the clock would be kept as now
    planner.update_images(IMAGES, START + 0.2)
    clock.set_time(START + 0.25)
    outcome = planner.refresh()
    assert outcome.status == 'published' and outcome.snapshot is slot.latest()
    snap = outcome.snapshot
    assert (snap.seq, snap.step, snap.obs_stamp) == (1, 10, START + 0.2)
    assert snap.planner_latency == pytest.approx(0.1) == outcome.latency
    assert snap.publish_time == pytest.approx(START + 0.35)
    np.testing.assert_array_equal(snap.context.target.numpy(), policy.target_of(10))
    assert policy.plan_calls == [10]


def test_refresh_skips_when_there_is_nothing_new_or_the_frames_are_stale():
    planner, policy, slot, clock = make(max_image_age=0.5)
    assert planner.refresh().status == 'no_images'
    planner.update_images(IMAGES, START)
    assert planner.refresh().status == 'published'
    assert planner.refresh().status == 'no_new_images'
    assert not planner.update_images(IMAGES, START - 1.0)  # older than the newest
    planner.update_images(IMAGES, START + 0.05)
    clock.set_time(START + 0.6)
    assert planner.refresh().status == 'stale_images'
    assert len(policy.plan_calls) == 1 and slot.last_seq == 1
    stats = planner.stats()
    assert stats['published'] == 1 and stats['plan_no_new_images'] == 1
    assert stats['plan_stale_images'] == 1 and stats['plan_latency_count'] == 1


def test_min_interval_throttles_refreshes():
    planner, _, slot, clock = make(min_interval=0.3)
    planner.update_images(IMAGES, START)
    planner.refresh()  # started at START, clock now START + 0.1
    planner.update_images(IMAGES, START + 0.1)
    assert planner.refresh().status == 'not_due'
    clock.set_time(START + 0.3)
    planner.update_images(IMAGES, START + 0.3)
    assert planner.refresh().status == 'published' and slot.last_seq == 2


def test_reset_resets_the_policy_clears_the_slot_and_keeps_numbering():
    planner, policy, slot, clock = make()
    planner.update_images(IMAGES, START)
    planner.refresh()
    planner.reset(episode_start=START + 1.0)
    clock.set_time(START + 1.0)
    assert policy.resets == 1 and slot.latest() is None
    assert planner.refresh().status == 'no_images'  # frames of the old episode are gone
    assert not planner.update_images(IMAGES, START + 0.9)  # taken before the new episode
    assert planner.refresh().status == 'no_images'
    clock.set_time(START + 1.1)
    planner.update_images(IMAGES, START + 1.1)
    snap = planner.refresh().snapshot
    assert snap.seq == 2 and snap.step == 5


def test_a_failing_policy_is_counted_and_publishes_nothing():
    planner, policy, slot, _ = make()
    planner.update_images(IMAGES, START)
    policy.plan = lambda images, step: 1 / 0
    outcome = planner.refresh()
    assert outcome.status == 'policy_error' and math.isnan(outcome.latency)
    assert slot.latest() is None and 'ZeroDivisionError' in planner.last_error
    assert planner.stats()['plan_policy_error'] == 1
    assert planner.refresh().status == 'no_new_images'  # retried on the next frame only


def test_worker_publishes_in_the_background():
    policy = FakePolicy(action_dim=3)
    slot = ContextSlot(ContextRegistry())
    planner = PlannerCore(policy, slot, planner_config(worker_poll=0.005))
    planner.start_worker()
    try:
        deadline = time.monotonic() + 60.0  # a count, however long a loaded machine takes
        while slot.last_seq < 3 and time.monotonic() < deadline:
            planner.update_images(IMAGES, planner.clock())
            time.sleep(0.01)
    finally:
        assert planner.stop_worker()
    assert slot.last_seq >= 3


def test_the_worker_wakes_for_new_frames_only_not_for_re_offered_ones():
    """The planner timer re-offers the newest frames; only new ones may wake the worker."""
    planner, _, _, clock = make(worker_poll=60.0)  # no wake-up by polling within the test
    steps = threading.Semaphore(0)
    planner.start_worker(steps.release)
    try:
        assert planner.update_images(IMAGES, START)
        assert steps.acquire(timeout=30.0)
        assert planner.update_images(IMAGES, START)  # the same frames again
        assert not steps.acquire(timeout=0.3), 'woken by frames that were not new'
        clock.set_time(START + 0.1)
        assert planner.update_images(IMAGES, START + 0.1)
        assert steps.acquire(timeout=30.0)
    finally:
        assert planner.stop_worker()


@pytest.mark.parametrize('kwargs, field', [({'max_image_age': 0.0}, 'max_image_age'),
                                           ({'min_interval': -1.0}, 'min_interval'),
                                           ({'worker_poll': math.nan}, 'worker_poll'),
                                           ({'stats_window': 0}, 'stats_window')])
def test_config_names_the_bad_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        planner_config(**kwargs)


def _run_like_the_node(planner, clock, seconds, timer_period, camera_alive):
    """Cameras at 20 Hz (while alive), a timer handing the newest frames, a 50 Hz worker."""
    newest = START
    for tick in range(1, int(seconds / PERIOD) + 1):
        now = START + tick * PERIOD
        clock.set_time(now)
        if camera_alive(now) and tick % 3 == 0:  # a frame every 60 ms
            newest = now
            planner.check_camera_stamp('cam', now)
        if tick % round(timer_period / PERIOD) == 0:
            planner.update_images(IMAGES, newest)
        planner.refresh()


def test_a_refresh_timer_slower_than_max_image_age_is_not_a_pause(caplog):
    """At 2 Hz the held frames age past 0.5 s between timer ticks: no paused/resumed lines."""
    planner, policy, slot, clock = make(max_image_age=0.5)
    policy.plan_latency = 0.0
    with caplog.at_level('INFO', logger='ahawam_ros.runtime.planner_core'):
        _run_like_the_node(planner, clock, 10.0, 0.6, camera_alive=lambda now: True)
    assert slot.last_seq >= 15  # it planned every handed frame
    lines = [r.getMessage() for r in caplog.records if 'planner' in r.getMessage()]
    assert not lines, lines
    assert planner.results.as_dict().get('stale_images', 0) == 0


def test_a_dead_camera_pauses_the_planner_once_naming_it(caplog):
    planner, policy, slot, clock = make(max_image_age=0.5)
    policy.plan_latency = 0.0
    with caplog.at_level('INFO', logger='ahawam_ros.runtime.planner_core'):
        _run_like_the_node(planner, clock, 6.0, 0.6, camera_alive=lambda now: now < START + 2)
    paused = [r.getMessage() for r in caplog.records if 'paused' in r.getMessage()]
    assert len(paused) == 1 and 'camera cam' in paused[0], paused
    assert planner.last_status == 'stale_images'
