"""FakePolicy honours the ChunkPolicy interface; the clock and statistics helpers."""

import math
import time

from ahawam_ros.runtime.clock import ManualClock
from ahawam_ros.runtime.policy_api import ChunkPolicy, FakePolicy, step_at
from ahawam_ros.runtime.stats import ReasonCounter, RollingStats
from ahawam_ros.runtime.worker import WakeableWorker
import numpy as np
import pytest
import torch

IMAGES = np.zeros((1, 4, 4, 3), np.uint8)


def test_fake_policy_is_a_chunk_policy_and_incomplete_objects_are_not():
    assert isinstance(FakePolicy(), ChunkPolicy)

    class NoChunks:
        chunk_len, action_dim, control_period = 8, 14, 0.02

        def reset(self):
            pass

        def plan(self, images, step):
            pass

    assert not isinstance(NoChunks(), ChunkPolicy)


def test_plan_context_holds_a_tensor_target_that_depends_on_the_step():
    policy = FakePolicy(action_dim=5)
    first, again, later = policy.plan(IMAGES, 3), policy.plan(IMAGES, 3), policy.plan(IMAGES, 40)
    assert isinstance(first.target, torch.Tensor) and first.target.shape == (5,)
    assert torch.equal(first.target, again.target)
    assert not torch.allclose(first.target, later.target)
    assert first.step == 3 and policy.plan_calls == [3, 3, 40]


def test_predict_chunk_ramps_from_proprio_to_the_context_target():
    policy = FakePolicy(chunk_len=4, action_dim=3)
    context = policy.plan(IMAGES, 7)
    proprio = np.array([0.2, -0.1, 0.0], np.float32)
    actions = policy.predict_chunk(IMAGES, proprio, context, step=9)
    assert actions.shape == (4, 3) and actions.dtype == np.float32
    target = policy.target_of(7)
    np.testing.assert_allclose(actions[0], proprio + 0.25 * (target - proprio), atol=1e-7)
    np.testing.assert_allclose(actions[-1], target, atol=1e-7)
    assert policy.chunk_calls == [(9, 7)]


def test_latency_goes_through_the_injected_sleep_and_nan_is_optional():
    clock = ManualClock(1.0)
    policy = FakePolicy(chunk_len=6, action_dim=2, plan_latency=0.3, chunk_latency=0.05,
                        sleep=clock.advance)
    context = policy.plan(IMAGES, 0)
    assert clock() == pytest.approx(1.3)
    policy.predict_chunk(IMAGES, np.zeros(2, np.float32), context, 0)
    assert clock() == pytest.approx(1.35)
    policy.emit_nan = True
    actions = policy.predict_chunk(IMAGES, np.zeros(2, np.float32), context, 0)
    assert np.isnan(actions[3]).all() and np.isfinite(np.delete(actions, 3, axis=0)).all()


def test_fake_policy_checks_its_inputs():
    policy = FakePolicy(action_dim=3)
    with pytest.raises(ValueError, match='images'):
        policy.plan(np.zeros((4, 4, 3), np.uint8), 0)
    with pytest.raises(ValueError, match='proprio'):
        policy.predict_chunk(IMAGES, np.zeros(4, np.float32), policy.plan(IMAGES, 0), 0)
    with pytest.raises(ValueError, match='chunk_len'):
        FakePolicy(chunk_len=0)


def test_step_at_counts_control_periods_from_the_episode_start():
    assert step_at(10.0, 10.0, 0.02) == 0
    assert step_at(10.0 + 7 * 0.02, 10.0, 0.02) == 7
    assert step_at(10.0 + 7.4 * 0.02, 10.0, 0.02) == 7
    assert step_at(9.0, 10.0, 0.02) == 0


def test_manual_clock_moves_only_forward():
    clock = ManualClock(2.0)
    assert clock.advance(0.5) == 2.5 and clock() == 2.5
    clock.set_time(3.0)
    assert clock() == 3.0
    with pytest.raises(ValueError, match='back'):
        clock.set_time(1.0)
    with pytest.raises(ValueError, match='back'):
        clock.advance(-0.1)


def test_rolling_stats_percentiles_over_the_window():
    stats = RollingStats(window=100)
    assert math.isnan(stats.percentile(50))
    for value in range(1000):
        stats.add(float(value))
    assert stats.total == 1000
    assert stats.percentile(50) == pytest.approx(np.percentile(np.arange(900, 1000), 50))
    summary = stats.summary('lat')
    assert summary['lat_p95'] == pytest.approx(np.percentile(np.arange(900, 1000), 95))
    assert summary['lat_max'] == 999 and summary['lat_count'] == 1000
    assert math.isnan(RollingStats().summary('x')['x_p50'])
    with pytest.raises(ValueError, match='q'):
        stats.percentile(101)


def test_reason_counter_counts_by_reason():
    counter = ReasonCounter()
    for reason in ('a', 'b', 'a'):
        counter.add(reason)
    assert counter.as_dict() == {'a': 2, 'b': 1} and counter.total() == 3
    assert counter.get('a') == 2 and counter.get('missing') == 0


def test_wakeable_worker_steps_when_woken_and_stops():
    steps = []
    worker = WakeableWorker(lambda: steps.append(1), 'test-worker', poll=10.0)
    worker.start()
    try:
        for _ in range(3):
            before = len(steps)
            worker.wake()
            deadline = time.monotonic() + 30.0  # at once, unless the machine is loaded
            while len(steps) == before and time.monotonic() < deadline:
                time.sleep(0.001)
            assert len(steps) == before + 1  # one wake, one step: poll is far away
        assert worker.running
    finally:
        assert worker.stop(timeout=2.0)
    assert not worker.running
