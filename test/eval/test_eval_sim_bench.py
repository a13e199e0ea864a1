"""The ROS-free rows of `ahawam bench` on the tiny preset: finite figures, bounded memory."""

import math

from ahawam_ros.bench import cli as bench_suite
from ahawam_ros.bench.runtime import planner_run, resident_mb, training_throughput, update_rates
from ahawam_ros.eval.closed_loop.policy import load_eval_policy
from ahawam_ros.runtime.settings import PlannerSettings
import pytest


@pytest.fixture(scope='module')
def tiny_policy():
    return load_eval_policy('random:tiny')


def test_update_rates_compare_async_and_sync_on_the_same_weights(tiny_policy):
    rates = update_rates(tiny_policy, repeats=3)
    assert rates['async_ms'] > 0.0 and rates['sync_ms'] > 0.0
    assert rates['ratio'] == pytest.approx(rates['sync_ms'] / rates['async_ms'])
    assert rates['async_hz'] == pytest.approx(1e3 / rates['async_ms'])
    assert rates['ideal_ratio'] > 1.0  # the synchronous update adds a refresh's MACs
    assert rates['paper_ratio'] == 4.59 and rates['num_steps'] == 10
    assert tiny_policy.memory_size == 0  # left reset


def test_planner_run_keeps_the_memory_bounded(tiny_policy):
    run = planner_run(tiny_policy, PlannerSettings(), refreshes=40, samples=10)
    assert run['memory_fill'] == tiny_policy.model.config.planner.memory_size == 2
    assert run['first_ms']['count'] == run['last_ms']['count'] == 4
    assert math.isfinite(run['last_ms']['p50']) and run['last_ms']['p50'] > 0.0
    assert run['rss_trace_mb'][-1][0] == 40 and len(run['rss_trace_mb']) == 11
    assert abs(run['rss_growth_mb']) < 50.0
    assert run['rss_end_mb'] == pytest.approx(resident_mb(), abs=50.0)
    assert tiny_policy.memory_size == 0


def test_training_throughput_uses_the_trainer_step():
    row = training_throughput('tiny', batch_size=2, repeats=1, threads=1)
    assert row['threads'] == 1 and row['batch_size'] == 2
    assert row['samples_per_s'] == pytest.approx(2e3 / row['step_ms'])


def test_presets_that_do_not_fit_are_skipped(monkeypatch):
    monkeypatch.setattr(bench_suite, 'device_memory_bytes', lambda device: 2.0 * 2 ** 30)
    assert bench_suite.preset_fits('tiny')[0]
    fits, why = bench_suite.preset_fits('paper')
    assert not fits and 'GiB' in why


def test_report_says_when_ros_is_missing():
    rates = {'async_ms': 5.0, 'sync_ms': 6.0, 'async_hz': 200.0, 'sync_hz': 166.7,
             'ratio': 1.2, 'ideal_ratio': 1.1, 'paper_ratio': 4.59}
    run = {'refreshes': 10, 'memory_fill': 2, 'first_ms': {'p50': 1.0}, 'last_ms': {'p50': 1.0},
           'rss_filled_mb': 500.0, 'rss_end_mb': 501.0, 'rss_growth_mb': 1.0, 'rss_max_mb': 502}
    report = {'checkpoint': 'x', 'cpus': 2, 'torch_threads': 1, 'load_average_before': 2.0,
              'load_average_after': 2.5, 'main_preset': 'tiny',
              'presets': {'tiny': {'fits': True, 'why': ''},
                          'paper': {'fits': False, 'why': 'too big'}},
              'update_rates': {'tiny': rates}, 'ros': {'skipped': 'no rclpy'},
              'planner_run': run, 'training': {}}
    text = bench_suite.format_report(report)
    assert 'ROS rows skipped: no rclpy' in text and 'preset paper: skipped (too big)' in text
    assert '1.20x' in text and '4.59x' in text
