"""eval-sim in real time: the planner and executor workers run concurrently, as in the nodes."""

import threading
import time

from ahawam_ros.eval.closed_loop.cli import parse_options
from ahawam_ros.eval.closed_loop.episode import ClosedLoopConfig, REALTIME
from ahawam_ros.eval.closed_loop.modes import PLANNER_OFF, SYNC
from ahawam_ros.eval.closed_loop.realtime import run_realtime_episode
from ahawam_ros.runtime.policy_api import FakePolicy
from ahawam_ros.runtime.settings import RuntimeSettings
from fake_env import FakeEnv, views
import pytest

STEPS = 40  # 0.8 s of real time per episode


class TimedPolicy(FakePolicy):
    """Records the wall-clock interval of every call and the thread that made it."""

    def __init__(self, plan_latency, chunk_latency):
        super().__init__(chunk_len=16, plan_latency=plan_latency, chunk_latency=chunk_latency)
        self.plans, self.chunks = [], []  # (start, end, thread name)

    def plan(self, images, step):
        start = time.perf_counter()
        context = super().plan(images, step)
        self.plans.append((start, time.perf_counter(), threading.current_thread().name))
        return context

    def predict_chunk(self, images, proprio, context, step):
        start = time.perf_counter()
        actions = super().predict_chunk(images, proprio, context, step)
        self.chunks.append((start, time.perf_counter(), threading.current_thread().name))
        return actions


def test_async_runs_the_executor_while_a_slow_planner_call_is_in_flight():
    policy = TimedPolicy(plan_latency=0.25, chunk_latency=0.005)
    settings = RuntimeSettings().replace(refresh_rate_hz=10.0, schedule='spacing',
                                         execute_steps=0)
    config = ClosedLoopConfig(settings=settings, max_steps=STEPS, settle_steps=-1)
    result = run_realtime_episode(policy, FakeEnv(), config, seed=0, views=views)
    assert result.timing == REALTIME and result.steps == STEPS
    assert len(policy.plans) >= 2 and result.executed > 0
    assert {name for *_, name in policy.plans} == {'ahawam-planner-worker'}
    assert {name for *_, name in policy.chunks} == {'ahawam-chunk-worker'}
    # refreshes after the first one overlap executor updates that complete inside them
    overlapped = [(s, e) for s, e, _ in policy.plans[1:]
                  if any(s < end < e for _, end, _ in policy.chunks)]
    assert overlapped, (policy.plans, policy.chunks[:5])
    assert len(result.plan_latencies) == len(policy.plans)
    assert result.real_time_factor > 0.0 and result.stale_chunks > 0
    accepted = result.chunk_status['accepted']
    assert 0 < accepted <= len(policy.chunks)
    assert result.summary(0.02)['chunk_rate_hz'] > 0.0


@pytest.mark.parametrize('mode', [SYNC, PLANNER_OFF])
def test_baselines_run_the_executor_worker_alone(mode):
    policy = TimedPolicy(plan_latency=0.0, chunk_latency=0.0)
    config = ClosedLoopConfig(mode=mode, max_steps=STEPS, settle_steps=-1)
    result = run_realtime_episode(policy, FakeEnv(), config, seed=0, views=views)
    assert result.executed > 0 and result.plan_latencies == []
    workers = {name for *_, name in policy.plans + policy.chunks}
    assert 'ahawam-planner-worker' not in workers
    if mode == SYNC:  # the planner runs inside each executor update
        assert 'ahawam-chunk-worker' in {name for *_, name in policy.plans}


def test_episode_ends_after_settling_and_the_workers_stop():
    before = set(threading.enumerate())
    config = ClosedLoopConfig(max_steps=STEPS, settle_steps=3)
    result = run_realtime_episode(FakePolicy(chunk_len=16), FakeEnv(succeed_at=5), config,
                                  seed=0, views=views)
    assert result.success and result.steps == 5 + 3
    assert not [t for t in set(threading.enumerate()) - before if t.is_alive()]


def test_timing_option_defaults_to_real_time_and_names_a_bad_value():
    assert parse_options(['--checkpoint', 'fake']).timing == REALTIME
    assert parse_options(['--checkpoint', 'fake', '--timing', 'replayed']).timing == 'replayed'
    with pytest.raises(SystemExit):
        parse_options(['--checkpoint', 'fake', '--timing', 'sometimes'])
