"""The ROS benchmark's measuring functions on a tiny checkpoint: short runs, finite figures."""

import math

from ahawam_ros.model.policy import AhaWamPolicy
from ahawam_ros.ros import bench_ros
from ahawam_ros.runtime.policy_api import FakeContext
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.ros
SHAPE = (2, 16, 16)  # the tiny preset's views


@pytest.fixture(scope='module')
def policy(tiny_checkpoint):
    return AhaWamPolicy.from_checkpoint(tiny_checkpoint)


def test_system_commands_keep_their_period_while_the_planner_refreshes(policy):
    figures = bench_ros.measure_system(policy, SHAPE, seconds=2.0, warmup=1.5,
                                       planner_rate_hz=5.0)
    period = figures['command_period_ms']
    assert period['count'] >= 60  # 50 Hz for 2 s, minus start-up slack
    assert 10.0 < period['p50'] < 30.0 and math.isfinite(period['p99'])
    assert 40.0 < figures['command_rate_hz'] < 60.0
    assert figures['planner_refreshes'] >= 5 and figures['plan_latency_ms']['p50'] > 0.0
    assert figures['chunk_rate_hz'] > 5.0  # execute_steps=0: a chunk whenever possible
    assert math.isfinite(figures['chunk_latency_ms']['p50'])


def test_handoff_by_reference_resolves_the_identical_object(policy):
    context = policy.plan(np.zeros((*SHAPE, 3), np.uint8), 0)
    policy.reset()
    figures = bench_ros.measure_handoff(context, handoffs=5, warmup=2)
    assert figures['identical_object'] and figures['serialized_equal']
    assert figures['payload_bytes'] == 4 * (context.keys.numel() + context.values.numel())
    for kind in ('by_reference_ms', 'serialized_ms'):
        assert figures[kind]['count'] == 5
        assert 0.0 < figures[kind]['p50'] <= figures[kind]['max'] < 1e3


def test_context_tensors_finds_the_tensors_of_a_context():
    target = torch.arange(14.0)
    assert bench_ros.context_tensors(FakeContext(step=3, target=target))[0] is target
    with pytest.raises(TypeError, match='str'):
        bench_ros.context_tensors('not a context')
