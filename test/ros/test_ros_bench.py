"""
The ROS benchmark's measuring functions on a tiny checkpoint: short runs, consistent figures.

Nothing here asserts a rate or a latency (a loaded 2-core machine misses any such figure):
the tests check what the benches count and how their figures relate; `ahawam bench` and
`python -m ahawam_ros.bench.handoff` print the figures.
"""

import dataclasses
import math
import time

from ahawam_ros.model.policy import AhaWamPolicy
from ahawam_ros.ros import bench_handoff, bench_ros
from ahawam_ros.runtime.policy_api import FakeContext
from ahawam_ros.runtime.settings import RuntimeSettings
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.ros
SHAPE = (2, 16, 16)  # the tiny preset's views


@pytest.fixture(scope='module')
def policy(tiny_checkpoint):
    return AhaWamPolicy.from_checkpoint(tiny_checkpoint)


def test_system_figures_count_the_commands_chunks_and_refreshes_of_the_window(policy):
    settings = RuntimeSettings().replace(refresh_rate_hz=5.0, schedule='spacing',
                                         execute_steps=0)
    figures = bench_ros.measure_system(policy, SHAPE, settings, seconds=2.0, warmup=1.5)
    period, window = figures['command_period_ms'], figures['window_s']
    assert window >= 2.0
    assert period['count'] >= 1  # commands flowed (two arrivals at least) in the window
    assert figures['command_rate_hz'] == pytest.approx((period['count'] + 1) / window)
    assert 0.0 < period['p50'] <= period['p99'] <= period['max']
    assert figures['planner_refreshes'] >= 1 and figures['plan_latency_ms']['p50'] > 0.0
    assert figures['chunk_rate_hz'] > 0.0  # execute_steps=0: a chunk whenever possible
    assert math.isfinite(figures['chunk_latency_ms']['p50'])
    assert figures['holds'] >= 0 and figures['execute_steps'] == 0
    assert figures['planner_rate_hz'] == 5.0
    assert figures['ticks'] > 0 and 0 <= figures['holds'] <= figures['ticks']
    assert sum(figures['hold_reasons'].values()) == figures['holds']  # each hold has a reason
    assert figures['alone_ms']['p50'] > 0.0 and math.isfinite(figures['graph_vs_alone'])
    assert figures['planner_nice'] == 10.0  # niced down: always permitted
    commands = figures['commands']  # as received, for the controller replay
    assert len(commands) == period['count'] + 1 and figures['trajectory_points'] == 10
    assert all(len(times) == len(positions) >= 1 for _, _, times, positions, _ in commands)


def test_handoff_side_by_side_resolves_the_object_and_rebuilds_equal_tensors(policy):
    contexts = bench_handoff.handoff_contexts(policy, SHAPE, sizes_mib=[0.25])
    assert list(contexts) == ['policy context', 'synthetic 0.25 MiB']
    context = contexts['policy context']
    figures = bench_handoff.measure_handoff(contexts, handoffs=5, warmup=2)
    assert list(figures) == list(contexts)
    assert figures['policy context']['payload_bytes'] == 4 * (context.keys.numel()
                                                              + context.values.numel())
    assert figures['synthetic 0.25 MiB']['payload_bytes'] == 1 << 18
    for row in figures.values():
        assert row['identical_object'] and row['serialized_equal']
        reference, serialized = row['by_reference_ms'], row['serialized_ms']
        assert reference['count'] == serialized['count'] == 5
        assert row['topic_only_ms']['count'] == row['topic_only_single_ms']['count'] == 5
        assert row['registry_ms']['count'] == 5
        assert 0.0 < reference['p50'] <= reference['max']
        assert 0.0 < serialized['p50'] <= serialized['max']
        assert row['ratio_p50'] == pytest.approx(serialized['p50'] / reference['p50'])
    lines = bench_handoff.handoff_lines(figures)
    assert len(lines) == 4 + len(contexts) and 'same object, equal tensors' in lines[-1]


def test_handoff_by_reference_reads_no_byte_of_the_context(ros_context):
    """
    A 1 TiB context on the meta device (shapes, no storage) is handed over by reference.

    Any per-byte work on the way (a copy, a hash, a conversion to numpy or bytes) fails on a
    meta tensor; the subscriber must get the very object.
    """
    context = FakeContext(step=0, target=torch.empty(1 << 38, device='meta'))  # 2^40 bytes
    with pytest.raises(TypeError):
        context.target.numpy()  # per-byte work fails like this: there are no bytes
    with pytest.raises((RuntimeError, NotImplementedError)):
        context.target.cpu()  # ... or like this (1 TiB to allocate)
    graph = bench_ros.BenchGraph(threads=2)
    try:
        handoff = bench_handoff.Handoff(graph, timeout=30.0)
        for _ in range(3):
            assert handoff.by_reference(context) > 0.0
            assert handoff.receiver.resolved is context
            handoff.receiver.resolved = None
            assert handoff.by_reference(context, intra_process=False) > 0.0
            assert handoff.receiver.resolved is context
            assert handoff.in_process(context) > 0.0
        handoff.close()
    finally:
        graph.close()


def test_synthetic_contexts_have_the_size_asked():
    assert bench_handoff.synthetic_context(0.5).numel() * 4 == 1 << 19
    assert not torch.equal(bench_handoff.synthetic_context(0.5, seed=0),
                           bench_handoff.synthetic_context(0.5, seed=1))


def test_context_tensors_finds_the_tensors_of_a_context():
    target = torch.arange(14.0)
    assert bench_handoff.context_tensors(FakeContext(step=3, target=target))[0] is target
    with pytest.raises(TypeError, match='str'):
        bench_handoff.context_tensors('not a context')


def test_heavy_planner_rows_widen_the_planner_only_and_report_each_row():
    from ahawam_ros.bench.heavy_planner import (heavy_planner_lines, heavy_planner_rows,
                                                random_policy, widened)
    base, wide = random_policy(widened('tiny', 32)), random_policy(widened('tiny', 256))
    images = np.zeros((2, 16, 16, 3), np.uint8)
    small, big = base.plan(images, 0), wide.plan(images, 0)
    assert small.keys.shape == big.keys.shape  # the executor reads the same context shape
    counts = [sum(p.numel() for p in policy.model.executor.parameters())
              for policy in (base, wide)]
    assert counts[0] == counts[1]  # and has the same weights to run
    settings = RuntimeSettings().replace(refresh_rate_hz=5.0)
    rows = heavy_planner_rows('tiny', (256,), bench_ros.measure_system, settings,
                              seconds=1.5, repeats=3)
    assert [row['planner_width'] for row in rows] == [32, 256]
    for row in rows:
        assert row['planner_ms'] == pytest.approx(row['planner_x'] * row['executor_ms'])
        assert row['ticks'] > 0 and 0 <= row['holds'] <= row['ticks']
        assert row['planner_hz'] >= 0.0 and row['ideal_ratio'] > 1.0
        assert math.isfinite(row['graph_vs_paused']) and row['graph_vs_paused'] > 0.0
    held = any(row['hold_reasons'] for row in rows)  # a line of reasons when any row held
    assert len(heavy_planner_lines(rows)) == 2 + len(rows) + held
    rows[-1]['hold_reasons'] = {'stale_context': 3, 'no_chunk': 1}
    assert heavy_planner_lines(rows)[-1].endswith('256: stale_context 3, no_chunk 1')


def test_hold_reasons_are_the_window_s_increase_of_each_reason():
    before = {'holds': 2.0, 'holds_no_chunk': 2.0, 'ticks': 10.0}
    after = {'holds': 7.0, 'holds_no_chunk': 3.0, 'holds_stale_context': 4.0, 'ticks': 60.0}
    assert bench_ros._hold_reasons(before, after) == {'no_chunk': 1, 'stale_context': 4}
    assert bench_ros._hold_reasons(after, after) == {}


def test_paired_windows_time_the_executor_with_the_planner_refreshing_and_paused(policy):
    settings = RuntimeSettings().replace(refresh_rate_hz=10.0, schedule='spacing',
                                         execute_steps=0)
    figures = bench_ros.measure_system(policy, SHAPE, settings, seconds=0.5, warmup=1.5,
                                       paired_rounds=3)
    paired = figures['paired']
    assert paired['rounds'] == 3
    on, paused = paired['on_ms'], paired['paused_ms']
    assert on['count'] > 0 and paused['count'] > 0  # the executor ran in both
    assert paired['ratio'] == pytest.approx(on['p50'] / paused['p50'])
    assert bench_ros.measure_system(policy, SHAPE, settings, seconds=0.5,
                                    warmup=1.0)['paired'] == {}


def test_a_paused_planner_refreshes_no_more_until_it_is_restarted(policy):
    settings = RuntimeSettings().replace(refresh_rate_hz=20.0)
    graph = bench_ros.BenchGraph()
    try:
        sensors = bench_ros.SensorStandIn(SHAPE, **graph.node_kwargs('bench_sensors'))
        planner = bench_ros.WorldPlannerNode(policy, **graph.node_kwargs(
            'world_planner', camera_topics=sensors.camera_topics,
            **dataclasses.asdict(settings.planner)))
        graph.spin(sensors, planner)

        def published_after(seconds):
            before = planner.core.stats()['published']
            time.sleep(seconds)
            return planner.core.stats()['published'] - before

        assert published_after(1.5) >= 3  # refreshing at up to 20 Hz
        planner.pause_refreshes()
        time.sleep(0.3)  # a refresh in flight finishes
        assert published_after(0.8) == 0
        planner.pause_refreshes(False)
        assert published_after(1.0) >= 3
    finally:
        graph.close()
