"""The compiled hot paths equal the eager reference; refusals and failures fall back to eager."""

import dataclasses
import logging
import sys
import threading
import time
import warnings

from ahawam_ros.model import compiled
from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.compiled import compile_enabled, compile_refusal, GraphSet
from ahawam_ros.model.flash import make_student
from ahawam_ros.model.policy import AhaWamPolicy
from ahawam_ros.model.presets import get_preset
from ahawam_ros.model.testing import perturb_zero_inits, synthetic_episode
import numpy as np
import pytest
import torch

# Same weights, same noise: the graphs run the eager modules' ops, so only the summation order
# of a few kernels differs (measured ~2e-6). Actions are in robot units (radians).
ACTION_ATOL = 1e-4
CONTEXT_ATOL = 1e-4


def model_of(preset: str, **planner: int) -> AhaWamModel:
    torch.manual_seed(0)
    config = get_preset(preset)
    config = dataclasses.replace(config, planner=dataclasses.replace(config.planner, **planner))
    model = AhaWamModel(config)
    perturb_zero_inits(model, std=0.2)  # non-zero heads and OVCR delta: every path matters
    return model


def policy_pair(model: AhaWamModel, **kwargs):
    eager = AhaWamPolicy(model, compiled=False, seed=5, **kwargs)
    fast = AhaWamPolicy(model, compiled=True, seed=5, **kwargs)
    assert (eager.backend, fast.backend) == ('eager', 'torchscript'), fast.compile_reason
    return eager, fast


def assert_same_episode(eager: AhaWamPolicy, fast: AhaWamPolicy, refreshes: int,
                        num_steps=(None,)) -> None:
    """Plan past the memory capacity (it rolls), predict a chunk after each refresh."""
    episode = synthetic_episode(eager.model.config, refreshes + 1, seed=2)
    for i in range(refreshes):
        contexts = [p.plan(episode['frames'][i], 8 * i) for p in (eager, fast)]
        for ours, theirs in zip(('keys', 'values'), ('keys', 'values')):
            np.testing.assert_allclose(getattr(contexts[1], ours), getattr(contexts[0], theirs),
                                       atol=CONTEXT_ATOL, rtol=0)
        assert contexts[0].version == contexts[1].version == i + 1
        for steps in num_steps:
            for policy in (eager, fast):
                policy.num_steps = steps or policy.num_steps
            chunks = [p.predict_chunk(episode['frames'][i + 1], episode['joint_positions'][i],
                                      c, 8 * i + 3) for p, c in zip((eager, fast), contexts)]
            assert chunks[1].dtype == np.float32 and chunks[1].shape == chunks[0].shape
            np.testing.assert_allclose(chunks[1], chunks[0], atol=ACTION_ATOL, rtol=0)
    assert eager.memory_size == fast.memory_size == eager.model.config.planner.memory_size


def test_tiny_warm_up_then_compiled_equals_eager_across_a_rolled_memory():
    eager, fast = policy_pair(model_of('tiny'))
    report = fast.warm_up(sync=True)
    assert report['compiled'] == 1.0 and report['seconds'] > 0.0
    assert {'planner', "('executor', 10, False)", "('executor', 10, True)"} <= set(report)
    assert fast.memory_size == 0  # the warm-up refresh did not enter the memory
    built = dict(fast._graphs.build_seconds)
    # Same noise draws as a policy never warmed up; the memory fills and rolls.
    assert_same_episode(eager, fast, eager.model.config.planner.memory_size + 2)
    episode = synthetic_episode(eager.model.config, 3, seed=3)
    for step in range(2):  # the synchronous baseline: refresh + update, encoded once
        chunks = [p.sync_update(episode['frames'][step], episode['joint_positions'][step],
                                8 * step) for p in (eager, fast)]
        np.testing.assert_allclose(chunks[1], chunks[0], atol=ACTION_ATOL, rtol=0)
    assert fast._graphs.build_seconds == built  # nothing was built after the warm-up
    assert eager.warm_up()['compiled'] == 0.0


def test_flash_student_compiled_equals_eager_at_one_step():
    student = make_student(model_of('tiny'), num_steps=1)
    eager, fast = policy_pair(student)
    assert fast.num_steps == 1
    assert_same_episode(eager, fast, 3)
    assert set(fast._graphs.build_seconds) == {'planner', ('executor', 1, False)}


@pytest.mark.slow
def test_small_compiled_equals_eager_n10_and_flash_n1():
    eager, fast = policy_pair(model_of('small'))
    assert_same_episode(eager, fast, eager.model.config.planner.memory_size + 1,
                        num_steps=(10, 1))


def test_building_the_compiled_paths_lets_no_warning_escape():
    """The build's known-benign TorchScript warnings stay inside build_graph; nothing else."""
    policy = AhaWamPolicy(model_of('tiny'), compiled=True, seed=5, num_steps=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')  # not once per location: every warning is recorded
        report = policy.warm_up(sync=True)  # planner + both executor graphs, each run once
    assert report['compiled'] == 1.0, policy.compile_reason
    assert [f'{w.category.__name__}: {w.message}' for w in caught] == []


class _DataBranch(torch.nn.Module):
    """Branches on tensor data: a trace that does NOT generalise, whose warning must escape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float(x.sum())


def test_the_build_silences_only_the_known_benign_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        compiled.build_graph(_DataBranch(), (torch.ones(3),))
    messages = [str(w.message) for w in caught]
    assert [m for m in messages if m.startswith('Converting a tensor to a Python float')], \
        messages


def test_disabled_by_argument_or_environment(monkeypatch):
    model = model_of('tiny')
    assert AhaWamPolicy(model, compiled=False).backend == 'eager'
    monkeypatch.setenv(compiled.COMPILE_ENV, '0')
    assert not compile_enabled()
    policy = AhaWamPolicy(model)
    assert policy.backend == 'eager' and compiled.COMPILE_ENV in policy.compile_reason
    monkeypatch.setenv(compiled.COMPILE_ENV, '1')
    assert AhaWamPolicy(model).backend == 'torchscript'


def test_a_failed_compile_logs_once_and_runs_eager(monkeypatch, caplog):
    def broken(module, example):
        raise RuntimeError('tracer exploded')

    monkeypatch.setattr(compiled, 'build_graph', broken)
    model = model_of('tiny')
    eager = AhaWamPolicy(model, compiled=False, seed=5)
    fast = AhaWamPolicy(model, compiled=True, seed=5)
    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        assert_same_episode(eager, fast, 3)
    assert fast.backend == 'eager' and 'tracer exploded' in fast.compile_reason
    warnings = [r for r in caplog.records if 'falls back to eager' in r.getMessage()]
    assert len(warnings) == 1 and 'compiling planner failed' in warnings[0].getMessage()


def test_paper_preset_on_the_meta_device_is_refused_with_a_reason(caplog):
    with torch.device('meta'):
        model = AhaWamModel(get_preset('paper'))
    assert 'meta device' in compile_refusal(model)
    with caplog.at_level(logging.INFO, logger=compiled.__name__):
        graphs = GraphSet(model, enabled=True)
    assert graphs.backend == 'eager' and 'meta device' in graphs.reason
    assert graphs.get('planner', lambda: None, lambda: ()) is None
    assert any('meta device' in r.getMessage() for r in caplog.records)
    assert compile_refusal(model_of('tiny')) == ''


def held_gil_progress(clock: int, budget: float, deadline: float) -> float:
    """Spin in Python (never yielding the GIL) until `clock` advances `budget` s or deadline."""
    start = time.clock_gettime(clock)
    while time.monotonic() < deadline:  # pure Python: the GIL stays with this thread
        if time.clock_gettime(clock) - start >= budget:
            break
    return time.clock_gettime(clock) - start


def test_a_compiled_refresh_computes_while_another_thread_holds_the_gil():
    """The key property: the planner thread's graph runs on while the executor's Python runs."""
    # A planner wide enough (2048) that one refresh is well over the 30 ms measured, on one
    # intra-op thread: the worker thread's own CPU clock then counts all of it.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        refresh_runs_while_the_gil_is_held(model_of('small', width=2048, patch_size=2,
                                                    memory_size=6))
    finally:
        torch.set_num_threads(threads)


def refresh_runs_while_the_gil_is_held(model: AhaWamModel) -> None:
    """Assert the compiled refresh of `model` computes while this thread holds the GIL."""
    policy = AhaWamPolicy(model, compiled=True)
    graph = policy._planner_graph()
    inputs = policy._planner_inputs(policy._blank_images(), 0, empty=True)
    starts, stop = [], threading.Event()

    def refresh_forever():
        with torch.inference_mode():
            while not stop.is_set():
                starts.append(1)
                graph(*inputs)  # a few hundred ms of compute per call on the small preset

    worker = threading.Thread(target=refresh_forever, name='planner-graph')
    worker.start()
    interval = sys.getswitchinterval()
    progress = []
    try:
        clock = time.pthread_getcpuclockid(worker.ident)
        for _ in range(5):  # retry if the worker was descheduled before entering the graph
            seen = len(starts)
            while len(starts) == seen:
                time.sleep(0.001)
            time.sleep(0.02)  # the worker enters the graph and drops the GIL
            sys.setswitchinterval(1000.0)  # from here this thread keeps the GIL
            try:
                progress.append(held_gil_progress(clock, 0.03, time.monotonic() + 10.0))
            finally:
                sys.setswitchinterval(interval)
            if progress[-1] >= 0.03:
                break
    finally:
        stop.set()
        worker.join()
    # CPU time the worker spent computing while this thread never released the GIL.
    assert max(progress) >= 0.03, progress
