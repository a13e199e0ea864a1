"""The orchestration of the workers: priorities applied or refused, warm-up once, lifecycle."""

import logging
import os
import sys
import threading

from ahawam_ros.runtime import worker as worker_module
from ahawam_ros.runtime.clock import ManualClock
from ahawam_ros.runtime.context_slot import ContextRegistry, ContextSlot
from ahawam_ros.runtime.executor_core import ExecutorCore
from ahawam_ros.runtime.orchestrator import OrchestratorConfig, RuntimeOrchestrator, warm_up
from ahawam_ros.runtime.planner_core import PlannerCore
from ahawam_ros.runtime.policy_api import FakePolicy
from ahawam_ros.runtime.safety import SafetyConfig
from ahawam_ros.runtime.worker import set_thread_nice, WakeableWorker
import pytest
from runtime_configs import executor_config, planner_config

A = 4


class WarmPolicy(FakePolicy):
    """A fake policy with a warm-up (as the compiled AhaWamPolicy has)."""

    def __init__(self):
        super().__init__(chunk_len=8, action_dim=A)
        self.warm_ups = 0

    def warm_up(self):
        self.warm_ups += 1


def _cores(policy):
    clock = ManualClock(0.0)
    slot = ContextSlot(ContextRegistry())
    safety = SafetyConfig.uniform(A, -1.0, 1.0, 1.0, max_context_age=1.0, max_observation_age=0.1)
    executor = ExecutorCore(policy, slot, executor_config(safety), clock=clock)
    return PlannerCore(policy, slot, planner_config(), clock=clock), executor


def _nice_of(worker):
    return os.getpriority(os.PRIO_PROCESS, worker.native_id)


@pytest.mark.parametrize('executor_nice', [0, -3])
def test_planner_runs_niced_down_and_the_executor_as_asked_or_reported(executor_nice):
    policy = WarmPolicy()
    planner, executor = _cores(policy)
    runtime = RuntimeOrchestrator(OrchestratorConfig(planner_nice=10,
                                                     executor_nice=executor_nice),
                                  planner, executor)
    runtime.start()
    try:
        assert runtime.wait_started()
        assert _nice_of(planner.worker) == 10  # lowering a priority is always allowed
        assert planner.stats()['worker_nice'] == 10.0
        assert planner.stats()['worker_nice_refused'] == 0.0
        stats, report = executor.stats(), runtime.report()['executor_nice']
        assert report['requested'] == executor_nice
        if stats['worker_nice_refused']:  # no CAP_SYS_NICE here: reported, not raised
            assert executor_nice < 0 and report['refused']
            assert _nice_of(executor.worker) == report['applied'] != executor_nice
        else:
            assert _nice_of(executor.worker) == executor_nice == stats['worker_nice']
            assert report['applied'] == executor_nice and report['refused'] == ''
        assert _nice_of(executor.worker) < _nice_of(planner.worker)
    finally:
        assert runtime.stop()
    assert not planner.worker.running and not executor.worker.running


def test_a_refused_priority_is_reported_once_and_the_worker_runs_on(monkeypatch, caplog):
    def refuse(which, who, value):
        raise PermissionError(13, 'Permission denied')

    monkeypatch.setattr(worker_module.os, 'setpriority', refuse)
    stepped = threading.Event()
    worker = WakeableWorker(stepped.set, 'test-worker', poll=0.01, nice=-5)
    with caplog.at_level(logging.WARNING, logger='ahawam_ros.runtime.worker'):
        worker.start()
        assert worker.wait_started()
        worker.wake()
        assert stepped.wait(10.0)  # the worker computes anyway
        worker.stop()
        worker.start()  # a restart refused the same way logs nothing new
        assert worker.wait_started()
        worker.stop()
    assert worker.priority.refused and worker.priority.requested == -5
    assert 'PermissionError' in worker.priority.error
    assert worker.priority_stats()['worker_nice_refused'] == 1.0
    assert [r.getMessage() for r in caplog.records].count(
        f'test-worker: {worker.priority.describe()}') == 1


def test_set_thread_nice_sets_only_the_calling_thread_and_reads_it_back():
    results = []

    def lower():
        own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        results.append(set_thread_nice(own + 1))  # lowering: always allowed

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = threading.Thread(target=lower)
    thread.start()
    thread.join()
    assert not results[0].refused and results[0].applied == results[0].requested == before + 1
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


def test_warm_up_runs_once_per_policy_before_the_workers():
    policy = WarmPolicy()
    planner, executor = _cores(policy)
    first = RuntimeOrchestrator(planner=planner)
    second = RuntimeOrchestrator(executor=executor)  # the other node of the same process
    first.start_planner()
    second.start_executor()
    try:
        assert policy.warm_ups == 1
        assert first.warm_up_s >= 0.0 and first.report()['warm_up_s'] == first.warm_up_s
        assert warm_up(policy) == first.warm_up_s  # remembered, not run again
        assert warm_up(FakePolicy()) == 0.0  # a policy without warm_up
    finally:
        first.stop()
        second.stop()


def test_starting_a_worker_shortens_the_gil_switch_interval():
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    planner, _ = _cores(FakePolicy(chunk_len=8, action_dim=A))
    runtime = RuntimeOrchestrator(OrchestratorConfig(gil_switch_interval=0.001), planner)
    try:
        runtime.start()
        assert sys.getswitchinterval() == pytest.approx(0.001)
    finally:
        runtime.stop()
        sys.setswitchinterval(previous)


def test_a_missing_core_is_an_error():
    with pytest.raises(ValueError, match='planner'):
        RuntimeOrchestrator().start_planner()


@pytest.mark.parametrize('field,value', [('planner_nice', 20), ('executor_nice', -21),
                                         ('planner_threads', -1), ('gil_switch_interval', 0.0)])
def test_config_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match=field):
        OrchestratorConfig(**{field: value})
