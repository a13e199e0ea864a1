"""The executor core end to end with FakePolicy, a planner core and a manual clock."""

import math
import threading
import time

from ahawam_ros.runtime.clock import ManualClock
from ahawam_ros.runtime.context_slot import ContextRegistry, ContextSlot
from ahawam_ros.runtime.context_slot import ContextUnavailableError
from ahawam_ros.runtime.executor_core import ExecutorCore
from ahawam_ros.runtime.planner_core import PlannerCore
from ahawam_ros.runtime.policy_api import FakePolicy
from ahawam_ros.runtime.safety import SafetyConfig
import numpy as np
import pytest
from runtime_configs import executor_config, planner_config, scheduler_config

A, K, PERIOD = 4, 10, 0.02
START = 50.0
MAX_CONTEXT_AGE = 0.31  # not a multiple of the period: no tick sits on the boundary
IMAGES = np.zeros((1, 8, 8, 3), np.uint8)


class Rig:
    """Planner + executor sharing one slot, a fake policy and a manual clock."""

    def __init__(self, blend='none', max_step=10.0, amplitude=0.5, chunk_latency=0.015,
                 execute_steps=0, worker_poll=0.02, schedule='latency', ahead=0):
        self.clock = ManualClock(START)
        self.policy = FakePolicy(chunk_len=K, action_dim=A, control_period=PERIOD,
                                 chunk_latency=chunk_latency, amplitude=amplitude,
                                 sleep=self.clock.advance)
        self.slot = ContextSlot(ContextRegistry())
        safety = SafetyConfig.uniform(A, -1.0, 1.0, max_step, max_context_age=MAX_CONTEXT_AGE,
                                      max_observation_age=0.1)
        config = executor_config(safety, scheduler=scheduler_config(blend=blend),
                                 execute_steps=execute_steps, worker_poll=worker_poll,
                                 schedule=schedule)
        self.executor = ExecutorCore(self.policy, self.slot, config, clock=self.clock,
                                     episode_start=START, wall_clock=self.clock)
        self.planner = PlannerCore(self.policy, self.slot, planner_config(), clock=self.clock,
                                   episode_start=START)
        self.ahead = ahead  # the plan's next commands asked with each tick's command
        self.robot = np.full(A, 0.1)  # the arm follows each command exactly
        self.fed = self.robot  # the joint state the executor holds
        self.accepted = []  # (arrival, t0, proprio, context step, context seq) of used chunks

    def run(self, ticks, plan_every=10, chunk_every=5, plan_until=math.inf, joint_delay=0.04,
            first=0):
        """Simulate `ticks` 50 Hz cycles; returns the commands. Inference < one period."""
        commands = []
        for i in range(first, first + ticks):
            t = START + i * PERIOD
            self.clock.set_time(t)
            self.fed = self.robot.copy()
            self.executor.update_joints(self.fed, t - joint_delay)
            self.executor.update_images(IMAGES, t)
            self.planner.update_images(IMAGES, t)
            if i % plan_every == 0 and t < plan_until:
                assert self.planner.refresh().status == 'published'
            command = self.executor.tick(t, self.ahead)
            commands.append(command)
            if command.positions is not None:
                self.robot = command.positions.copy()
            if i % chunk_every == 0:
                self._compute(t - joint_delay)
        return commands

    def _compute(self, t0):
        latest = self.slot.latest()
        outcome = self.executor.compute_chunk()
        if outcome.status == 'accepted':
            # the chunk used the newest context there was
            assert self.policy.chunk_calls[-1][1] == latest.step == self.policy.plan_calls[-1]
            self.accepted.append((self.clock(), t0, self.fed, latest.step, latest.seq))


def test_startup_sends_nothing_without_joints_then_holds_the_measured_position():
    rig = Rig()
    first = rig.executor.tick(START)
    assert first.positions is None and first.reason == 'no_joint_state'
    commands = rig.run(3)
    assert commands[0].is_hold and commands[0].reason == 'startup'
    np.testing.assert_array_equal(commands[0].positions, np.full(A, 0.1))
    assert not commands[1].is_hold


def test_commands_execute_the_aligned_action_of_the_newest_context():
    rig = Rig(blend='none')
    commands = rig.run(150)
    executing = [c for c in commands if not c.is_hold]
    assert len(executing) == 149 and rig.policy.plan_calls[-1] > 0
    indices = set()
    for command in executing:
        _, t0, proprio, step, seq = [a for a in rig.accepted if a[0] <= command.stamp][-1]
        index = int(math.floor((command.stamp - t0) / PERIOD + 0.5))
        indices.add(index)
        target = rig.policy.target_of(step)
        expected = proprio + (target - proprio) * (index + 1) / K
        np.testing.assert_allclose(command.positions, expected, atol=1e-6)
        assert command.context_seq == seq
        assert 0.0 <= command.context_age <= MAX_CONTEXT_AGE
    # 40 ms of observation delay + 15 ms of inference: actions 0..2 are never sent
    assert sorted(indices) == [3, 4, 5, 6, 7]
    stats = rig.executor.stats()
    assert stats['chunks_accepted'] == len(rig.accepted) and stats['holds_startup'] == 1


def test_commands_are_finite_within_limits_and_rate_limited():
    rig = Rig(blend='linear', max_step=0.05, amplitude=1.5)  # targets beyond the limits
    commands = rig.run(200)
    positions = np.stack([c.positions for c in commands])  # (ticks, A)
    assert np.all(np.isfinite(positions))
    assert np.all(positions >= -1.0) and np.all(positions <= 1.0)
    assert np.all(np.abs(np.diff(positions, axis=0)) <= 0.05 + 1e-12)
    assert any(c.clipped for c in commands) and any(c.rate_limited for c in commands)
    assert sum(c.is_hold for c in commands) == 1


def test_executor_holds_once_the_planner_stops_for_longer_than_the_max_age():
    rig = Rig()
    plan_until = START + 61 * PERIOD
    commands = rig.run(120, plan_until=plan_until)
    last_context = rig.slot.latest().obs_stamp
    assert last_context == pytest.approx(START + 60 * PERIOD)
    for command in commands[70:]:
        age = command.stamp - last_context
        if age > MAX_CONTEXT_AGE:
            assert command.is_hold and command.reason == 'stale_context'
            np.testing.assert_array_equal(command.positions, commands[-1].positions)
        else:
            assert not command.is_hold, command
    assert rig.executor.stats()['holds_stale_context'] == sum(
        c.stamp - last_context > MAX_CONTEXT_AGE for c in commands)
    assert rig.executor.stats()['chunk_stale_context'] > 0


def test_nonfinite_chunks_never_reach_the_command_and_the_plan_runs_out():
    rig = Rig()
    rig.run(30)
    rig.policy.emit_nan = True
    commands = rig.run(30, first=30)
    assert all(np.all(np.isfinite(c.positions)) for c in commands)
    assert rig.executor.stats()['chunk_nonfinite_chunk'] >= 5
    assert commands[-1].is_hold and commands[-1].reason == 'no_chunk'
    assert not commands[0].is_hold


def test_stats_report_latency_ticks_and_drops():
    rig = Rig(chunk_latency=0.015)
    rig.run(40)
    stats = rig.executor.stats()
    assert stats['ticks'] == 40
    assert stats['chunk_latency_p50'] == pytest.approx(0.015)
    assert stats['chunk_latency_p95'] == pytest.approx(0.015)
    assert stats['chunks_computed'] == stats['chunks_accepted'] + stats['chunks_dropped']
    assert stats['context_seq'] == rig.slot.last_seq == 4


def test_execute_steps_delays_the_next_chunk():
    rig = Rig(execute_steps=4, schedule='spacing')
    rig.run(40, chunk_every=1)
    t0s = [a[1] for a in rig.accepted]
    assert len(t0s) > 5
    assert min(np.diff(t0s)) == pytest.approx(4 * PERIOD)
    assert rig.executor.stats()['chunk_not_due'] > 0


def test_unchanged_inputs_are_not_recomputed():
    rig = Rig()
    rig.run(1)
    assert rig.executor.compute_chunk().status == 'no_new_input'


def test_a_reset_during_inference_discards_the_chunk():
    rig = Rig(schedule='spacing')  # an update on every new input
    rig.run(6)
    rig.policy._sleep = lambda seconds: rig.executor.reset(episode_start=START + 1.0)
    rig.executor.update_joints(rig.robot, rig.clock())
    assert rig.executor.compute_chunk().status == 'reset'
    command = rig.executor.tick()
    assert command.positions is None and command.reason == 'no_joint_state'


def test_after_a_reset_observations_of_the_old_episode_are_refused():
    rig = Rig()
    rig.run(3)
    start = rig.clock() + 0.5
    rig.executor.reset(episode_start=start)
    rig.clock.set_time(start)  # observations stamped ahead of the clock are refused
    assert not rig.executor.update_joints(rig.robot, start - 0.01)  # raced with the reset
    assert not rig.executor.update_images(IMAGES, start - 0.01)
    assert rig.executor.tick(start).reason == 'no_joint_state'
    assert rig.executor.update_joints(rig.robot, start)
    assert rig.executor.update_images(IMAGES, start)


def test_contexts_arrive_by_handle_from_the_planner_of_the_same_process():
    rig = Rig()
    planner_slot = ContextSlot()  # the process-wide registry, as in the ROS nodes
    planner = PlannerCore(rig.policy, planner_slot, planner_config(), clock=rig.clock,
                          episode_start=START)
    planner.update_images(IMAGES, START)
    snapshot = planner.refresh().snapshot
    assert rig.executor.accept_context(snapshot.handle)
    assert not rig.executor.accept_context(snapshot.handle)
    assert rig.slot.latest() is snapshot
    with pytest.raises(ContextUnavailableError):
        rig.executor.accept_context('1.0123456789ab.1:1')


def test_bad_inputs_are_refused():
    rig = Rig()
    assert not rig.executor.update_joints(np.full(A, np.nan), START)
    assert not rig.executor.update_joints(np.zeros(A + 1), START)
    assert rig.executor.stats()['rejected_joint_states'] == 2
    assert rig.executor.update_joints(np.zeros(A), START)
    assert not rig.executor.update_joints(np.zeros(A), START - 1.0)  # older than the newest
    with pytest.raises(ValueError, match='images'):
        rig.executor.update_images(np.zeros((8, 8, 3), np.uint8), START)
    with pytest.raises(ValueError, match='joints'):
        ExecutorCore(FakePolicy(action_dim=3), rig.slot, rig.executor.config)
    with pytest.raises(ValueError, match='execute_steps'):
        executor_config(rig.executor.config.safety, execute_steps=-1)


def test_worker_threads_keep_the_command_timer_fed_in_real_time():
    policy = FakePolicy(chunk_len=K, action_dim=A, control_period=PERIOD, chunk_latency=0.01,
                        plan_latency=0.05)
    slot = ContextSlot(ContextRegistry())
    safety = SafetyConfig.uniform(A, -1.0, 1.0, 0.05, max_context_age=0.3,
                                  max_observation_age=0.2)
    executor = ExecutorCore(policy, slot, executor_config(safety))
    planner = PlannerCore(policy, slot, planner_config(min_interval=0.1))
    executor.start_worker()
    planner.start_worker()
    robot, commands = np.zeros(A), []

    def enough() -> bool:  # counts, not a rate: a loaded machine only takes longer
        executing = sum(not c.is_hold for c in commands)
        return executing > 10 and executor.stats()['chunks_accepted'] >= 5

    try:
        deadline = time.monotonic() + 60.0
        while not enough() and time.monotonic() < deadline:
            now = time.monotonic()
            executor.update_joints(robot, now)
            executor.update_images(IMAGES, now)
            planner.update_images(IMAGES, now)
            commands.append(executor.tick())
            robot = commands[-1].positions
            time.sleep(PERIOD)
        assert planner.stop_worker()
        stopped = time.monotonic()
        while time.monotonic() < stopped + 0.5:
            executor.update_joints(robot, time.monotonic())
            commands.append(executor.tick())
            time.sleep(PERIOD)
    finally:
        assert executor.stop_worker()
        planner.stop_worker()
    executing = [c for c in commands if not c.is_hold]
    assert len(executing) > 10 and executor.stats()['chunks_accepted'] >= 5
    seqs = [c.context_seq for c in executing]
    assert seqs == sorted(seqs) and seqs[-1] > 1
    assert all(np.all(np.isfinite(c.positions)) for c in commands)
    assert commands[-1].is_hold and commands[-1].reason == 'stale_context'


def test_policy_errors_and_bad_shapes_are_counted_not_raised():
    rig = Rig(schedule='spacing')
    rig.run(1)
    rig.policy.predict_chunk = lambda *args: np.zeros((K, A + 1), np.float32)
    rig.executor.update_joints(rig.robot, rig.clock.advance(0.001))
    assert rig.executor.compute_chunk().status == 'bad_shape'
    rig.policy.predict_chunk = lambda *args: 1 / 0
    rig.executor.update_joints(rig.robot, rig.clock.advance(0.001))
    assert rig.executor.compute_chunk().status == 'policy_error'
    assert 'ZeroDivisionError' in rig.executor.last_error
    stats = rig.executor.stats()
    assert stats['chunk_bad_shape'] == stats['chunk_policy_error'] == 1
    assert stats['chunks_accepted'] == 1


def test_final_command_holds_the_last_command_sent():
    rig = Rig()
    assert rig.executor.final_command(START).positions is None
    commands = rig.run(20)
    final = rig.executor.final_command()
    assert final.is_hold and final.reason == 'stopped'
    np.testing.assert_array_equal(final.positions, commands[-1].positions)


def test_the_worker_wakes_for_new_inputs_only_not_for_re_offered_ones():
    """A step that re-offers the frames it has must not wake itself again (a busy loop)."""
    rig = Rig(worker_poll=60.0)  # no wake-up by polling within the test
    steps = threading.Semaphore(0)
    rig.executor.start_worker(steps.release)
    try:
        # one new input at a time, each waited for: one wake-up, one step (an input arriving
        # while a step runs would fold into it, and a short drain could miss a late step)
        assert rig.executor.update_images(IMAGES, START)
        assert steps.acquire(timeout=30.0)
        assert rig.executor.update_joints(rig.robot, START)
        assert steps.acquire(timeout=30.0)
        assert rig.executor.update_images(IMAGES, START)  # re-offered: kept, nothing new
        assert rig.executor.update_joints(rig.robot, START)
        assert not steps.acquire(timeout=0.3), 'woken by inputs that were not new'
        rig.clock.set_time(START + PERIOD)  # a stamp ahead of the clock would be kept as now
        assert rig.executor.update_joints(rig.robot, START + PERIOD)
        assert steps.acquire(timeout=30.0)
    finally:
        assert rig.executor.stop_worker()


@pytest.mark.parametrize('value', [10.0, -50.0, 1e9])
def test_an_impossible_joint_state_is_refused_like_nan(value):
    """A first joint state far outside the limits yields no command beyond max_step."""
    rig = Rig(max_step=0.05)
    bad = np.full(A, 0.1)
    bad[2] = value
    assert not rig.executor.update_joints(bad, START)
    assert rig.executor.tick(START).positions is None  # nothing to hold: nothing is sent
    stats = rig.executor.stats()
    assert stats['joint_states_out_of_range'] == 1 and stats['rejected_joint_states'] == 1
    near = np.full(A, 0.1)
    near[2] = 1.3  # 0.3 beyond the +-1 limit: possible (within max_joint_excess 0.5)
    assert rig.executor.update_joints(near, START)
    first = rig.executor.tick(START).positions
    assert abs(first[2] - 1.3) <= 0.05 + 1e-12  # bounded like any other command
