"""Live settings: the executor core takes new limits and blending without a jump."""

from ahawam_ros.runtime.chunk_scheduler import ActionChunk, ChunkScheduler
from ahawam_ros.runtime.safety import SafetyConfig, SafetyFilter
import numpy as np
import pytest
from runtime_configs import scheduler_config

A = 3
AGES = {'max_context_age': 1.0, 'max_observation_age': 0.1}


def test_a_new_max_step_applies_from_the_next_command_and_keeps_the_last_one():
    safety = SafetyFilter(SafetyConfig.uniform(A, -1.0, 1.0, 0.1, **AGES))
    safety.apply(None, np.zeros(A))  # start: hold at the measured position
    first = safety.apply(np.ones(A), None)
    assert np.allclose(first.positions, 0.1)
    safety.reconfigure(SafetyConfig.uniform(A, -1.0, 1.0, 0.02, **AGES))
    assert np.allclose(safety.last_command, 0.1)  # no jump at the switch
    second = safety.apply(np.ones(A), None)
    assert np.allclose(second.positions, 0.12) and second.rate_limited
    with pytest.raises(ValueError, match='joints'):
        safety.reconfigure(SafetyConfig.uniform(A + 1, -1.0, 1.0, 0.1, **AGES))


def test_a_new_blend_mode_applies_to_the_next_chunk():
    scheduler = ChunkScheduler(scheduler_config('linear', 4))
    old = ActionChunk(np.zeros((8, A)), t0=0.0, period=0.1, context_seq=1, context_stamp=0.0)
    new = ActionChunk(np.ones((8, A)), t0=0.2, period=0.1, context_seq=2, context_stamp=0.2)
    scheduler.offer(old, 0.0)
    scheduler.reconfigure(scheduler_config('none', 4))
    scheduler.offer(new, 0.2)
    assert np.allclose(scheduler.next_action(0.2).action, 1.0)  # a hard switch, no crossfade
