"""Time alignment of arriving chunks and the blend modes at the seam."""

import math

from ahawam_ros.runtime.chunk_scheduler import ACCEPTED, ActionChunk, ChunkScheduler
from ahawam_ros.runtime.chunk_scheduler import DROP_OUT_OF_ORDER, DROP_STALE
import numpy as np
import pytest
from runtime_configs import scheduler_config

PERIOD = 0.02
T0 = 10.0


def indexed_chunk(k=10, a=2, t0=T0, offset=0.0, seq=1):
    """Chunk whose action k equals offset + k in every joint: values name their index."""
    actions = offset + np.repeat(np.arange(k, dtype=np.float64)[:, None], a, axis=1)  # (K, A)
    return ActionChunk(actions, t0=t0, period=PERIOD, context_seq=seq, context_stamp=t0 - 0.1)


def constant_chunk(value, k=20, a=2, t0=T0, seq=1):
    return ActionChunk(np.full((k, a), float(value)), t0=t0, period=PERIOD, context_seq=seq)


def served(scheduler, start, ticks):
    """Values (first joint) served at `ticks` consecutive tick times from `start`."""
    out = []
    for i in range(ticks):
        planned = scheduler.next_action(start + i * PERIOD)
        out.append(None if planned is None else planned.action[0])
    return out


@pytest.mark.parametrize('delay_steps, dropped', [(0.0, 0), (0.4, 0), (1.4, 1), (3.2, 3),
                                                  (3.6, 4), (9.4, 9)])
def test_alignment_drops_exactly_the_actions_inside_the_inference_delay(delay_steps, dropped):
    scheduler = ChunkScheduler(scheduler_config(blend='none'))
    arrival = T0 + delay_steps * PERIOD
    assert scheduler.offer(indexed_chunk(), now=arrival) == ACCEPTED
    # the tick at arrival gets action `dropped`, then one action per tick until exhausted
    tick0 = T0 + dropped * PERIOD
    values = served(scheduler, tick0, 11 - dropped)
    assert values == [float(i) for i in range(dropped, 10)] + [None]
    assert scheduler.next_action(arrival).index == 0
    assert scheduler.remaining(arrival) == 10 - dropped


def test_tick_jitter_below_half_a_period_keeps_the_action():
    scheduler = ChunkScheduler(scheduler_config(blend='none'))
    scheduler.offer(indexed_chunk(), now=T0)
    assert scheduler.next_action(T0 + 2 * PERIOD + 0.49 * PERIOD).action[0] == 2.0
    assert scheduler.next_action(T0 + 2 * PERIOD - 0.49 * PERIOD).action[0] == 2.0
    assert scheduler.next_action(T0 - 3 * PERIOD).action[0] == 0.0  # early tick: first action


def test_a_chunk_entirely_in_the_past_is_dropped():
    scheduler = ChunkScheduler(scheduler_config())
    assert scheduler.offer(indexed_chunk(k=10), now=T0 + 9.6 * PERIOD) == DROP_STALE
    assert scheduler.next_action(T0 + 10 * PERIOD) is None
    assert scheduler.remaining(T0) == 0


def test_a_chunk_older_than_the_executing_one_is_dropped():
    scheduler = ChunkScheduler(scheduler_config(blend='none'))
    assert scheduler.offer(indexed_chunk(t0=T0, seq=2), now=T0) == ACCEPTED
    late = indexed_chunk(t0=T0 - PERIOD, offset=100.0, seq=1)
    assert scheduler.offer(late, now=T0 + PERIOD) == DROP_OUT_OF_ORDER
    planned = scheduler.next_action(T0 + PERIOD)
    assert (planned.action[0], planned.context_seq) == (1.0, 2)


def test_no_plan_and_exhausted_plan_give_no_action():
    scheduler = ChunkScheduler(scheduler_config())
    assert scheduler.next_action(T0) is None
    scheduler.offer(indexed_chunk(k=3), now=T0)
    assert served(scheduler, T0, 4) == [0.0, 1.0, 2.0, None]
    scheduler.reset()
    assert scheduler.next_action(T0) is None


def test_blend_none_switches_hard_at_the_seam():
    scheduler = ChunkScheduler(scheduler_config(blend='none'))
    scheduler.offer(constant_chunk(0.0), now=T0)
    seam = T0 + 5 * PERIOD
    assert served(scheduler, seam, 4) == [0.0] * 4
    scheduler.offer(constant_chunk(1.0, t0=seam - 2 * PERIOD, seq=2), now=seam)
    assert served(scheduler, seam, 4) == [1.0] * 4
    assert scheduler.next_action(seam).context_seq == 2


@pytest.mark.parametrize('steps', [1, 4])
def test_blend_linear_crossfades_over_b_steps(steps):
    rng = np.random.default_rng(0)
    old = ActionChunk(rng.normal(size=(20, 3)), t0=T0, period=PERIOD)
    new = ActionChunk(rng.normal(size=(16, 3)), t0=T0 + 3 * PERIOD, period=PERIOD)
    scheduler = ChunkScheduler(scheduler_config(blend='linear', blend_steps=steps))
    scheduler.offer(old, now=T0)
    arrival = T0 + 6 * PERIOD  # new chunk index 3 is due: 3 actions dropped
    scheduler.offer(new, now=arrival)
    for n in range(8):
        got = scheduler.next_action(arrival + n * PERIOD).action
        w = (n + 1) / (steps + 1) if n < steps else 1.0
        expected = (1 - w) * old.actions[6 + n] + w * new.actions[3 + n]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_blend_linear_uses_the_new_chunk_where_the_old_plan_has_ended():
    scheduler = ChunkScheduler(scheduler_config(blend='linear', blend_steps=4))
    scheduler.offer(constant_chunk(0.0, k=6), now=T0)
    arrival = T0 + 4 * PERIOD
    scheduler.offer(constant_chunk(1.0, t0=arrival), now=arrival)
    assert served(scheduler, arrival, 4) == pytest.approx([0.2, 0.4, 1.0, 1.0])


def test_blend_weighted_matches_act_temporal_ensembling():
    m = 0.5
    scheduler = ChunkScheduler(scheduler_config(blend='weighted', ensemble_decay=m))
    predictions = [0.0, 1.0, 2.0]  # three chunks, each a constant, arriving 2 steps apart
    for i, value in enumerate(predictions):
        t0 = T0 + 2 * i * PERIOD
        scheduler.offer(constant_chunk(value, k=10, t0=t0, seq=i + 1), now=t0)
    now = T0 + 4 * PERIOD
    for n, covering in [(0, 3), (5, 3), (6, 2), (8, 1)]:
        # ACT: sum_i w_i a_i / sum_i w_i, w_i = exp(-m i), i = 0 for the oldest prediction
        values = predictions[3 - covering:]
        weights = np.exp(-m * np.arange(covering))
        expected = float(np.dot(weights, values) / weights.sum())
        assert scheduler.next_action(now + n * PERIOD).action[0] == pytest.approx(expected)


def test_steps_since_chunk_counts_from_the_chunk_start():
    scheduler = ChunkScheduler(scheduler_config())
    assert scheduler.steps_since_chunk(T0) is None
    scheduler.offer(indexed_chunk(), now=T0 + 2 * PERIOD)
    assert scheduler.steps_since_chunk(T0 + 5 * PERIOD) == 5


@pytest.mark.parametrize('kwargs, field', [({'blend': 'cubic'}, 'blend'),
                                           ({'blend_steps': -1}, 'blend_steps'),
                                           ({'ensemble_decay': math.nan}, 'ensemble_decay')])
def test_config_names_the_bad_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        scheduler_config(**kwargs)


def test_blend_error_lists_the_valid_modes():
    with pytest.raises(ValueError, match="'none', 'linear', 'weighted'"):
        scheduler_config(blend='cubic')


def test_chunk_rejects_bad_shapes_and_periods():
    with pytest.raises(ValueError, match='actions'):
        ActionChunk(np.zeros(5), t0=0.0, period=PERIOD)
    with pytest.raises(ValueError, match='period'):
        ActionChunk(np.zeros((5, 2)), t0=0.0, period=0.0)
