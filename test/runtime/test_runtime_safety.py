"""The safety filter: limits, max step, NaN rejection, staleness holds, first command."""

import math

from ahawam_ros import robot
from ahawam_ros.runtime.safety import HoldReason, SafetyConfig, SafetyFilter
import numpy as np
import pytest

LOWER = (-1.0, -1.0, 0.0)
UPPER = (1.0, 1.0, 1.0)


def make_filter(max_step=(0.1, 0.1, 0.1), start=(0.0, 0.0, 0.5)):
    config = SafetyConfig(lower=LOWER, upper=UPPER, max_step=max_step, max_context_age=0.5,
                          max_observation_age=0.1)
    safety = SafetyFilter(config)
    first = safety.apply(np.full(3, 0.9), np.asarray(start))
    return safety, first


def test_first_command_holds_the_measured_position_whatever_is_proposed():
    _, first = make_filter(start=(0.3, -0.2, 0.7))
    assert first.is_hold and first.reason == HoldReason.STARTUP.value
    np.testing.assert_array_equal(first.positions, [0.3, -0.2, 0.7])


def test_first_command_walks_a_position_outside_the_limits_in_at_max_step():
    """The first command is bounded like any other: no jump to the limit in one tick."""
    safety, first = make_filter(start=(1.5, -0.2, -0.05))
    np.testing.assert_allclose(first.positions, [1.4, -0.2, 0.0])  # max_step 0.1 each
    assert first.clipped and first.is_hold
    commands = [safety.apply(np.array([1.0, -0.2, 0.0]), None).positions for _ in range(6)]
    steps = np.abs(np.diff(np.vstack([first.positions] + commands), axis=0))
    assert steps.max() <= 0.1 + 1e-12
    np.testing.assert_allclose(commands[-1], [1.0, -0.2, 0.0])  # inside, and stays inside
    assert np.all(np.array(commands[3:]) <= np.array(UPPER))


def test_no_joint_state_means_no_command_at_all():
    safety = SafetyFilter(make_filter()[0].config)
    result = safety.apply(np.zeros(3), None, HoldReason.OK)
    assert result.positions is None and result.is_hold
    assert result.reason == HoldReason.NO_JOINT_STATE.value
    stale = safety.apply(np.zeros(3), np.zeros(3), HoldReason.STALE_JOINT_STATE)
    assert stale.positions is None and stale.reason == 'stale_joint_state'
    assert safety.apply(None, np.array([0.0, np.nan, 0.0])).positions is None
    assert safety.last_command is None


def test_step_is_clamped_per_joint_relative_to_the_last_command():
    safety, _ = make_filter(max_step=(0.1, 0.2, 0.05))
    target = np.array([0.35, -0.35, 0.6])
    sent = [safety.apply(target, None) for _ in range(4)]
    np.testing.assert_allclose(sent[0].positions, [0.1, -0.2, 0.55])
    np.testing.assert_allclose(sent[1].positions, [0.2, -0.35, 0.6])
    np.testing.assert_allclose(sent[3].positions, target)
    assert [s.rate_limited for s in sent] == [True, True, True, False]
    assert not any(s.is_hold for s in sent)


def test_targets_are_clipped_to_the_joint_limits():
    safety, _ = make_filter(max_step=(10.0, 10.0, 10.0))
    result = safety.apply(np.array([5.0, -5.0, 0.25]), None)
    np.testing.assert_array_equal(result.positions, [1.0, -1.0, 0.25])
    assert result.clipped and not result.is_hold


def test_limits_hold_under_many_random_actions():
    safety, _ = make_filter()
    rng = np.random.default_rng(0)
    previous = safety.last_command
    for _ in range(500):
        positions = safety.apply(rng.normal(scale=3.0, size=3), None).positions
        assert np.all(positions >= LOWER) and np.all(positions <= UPPER)
        assert np.all(np.abs(positions - previous) <= 0.1 + 1e-12)
        previous = positions


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_a_non_finite_action_is_rejected_whole_and_the_last_command_held(bad):
    safety, _ = make_filter()
    moved = safety.apply(np.array([0.05, 0.05, 0.55]), None).positions
    result = safety.apply(np.array([0.08, bad, 0.5]), None)
    assert result.is_hold and result.reason == HoldReason.NONFINITE_ACTION.value
    np.testing.assert_array_equal(result.positions, moved)


def test_a_hold_repeats_the_last_command_not_the_measured_position():
    safety, _ = make_filter()
    moved = safety.apply(np.array([0.1, 0.1, 0.6]), None).positions
    held = safety.apply(np.array([0.2, 0.2, 0.7]), np.zeros(3), HoldReason.STALE_CONTEXT)
    assert held.is_hold and held.reason == 'stale_context'
    np.testing.assert_array_equal(held.positions, moved)
    none = safety.apply(None, np.zeros(3))
    assert none.reason == HoldReason.NO_CHUNK.value
    np.testing.assert_array_equal(none.positions, moved)


def test_resuming_after_a_hold_is_rate_limited():
    safety, _ = make_filter()
    safety.apply(None, None, HoldReason.STALE_CONTEXT)
    result = safety.apply(np.array([1.0, 1.0, 1.0]), None)
    np.testing.assert_allclose(result.positions, [0.1, 0.1, 0.6])


def test_reset_makes_the_next_command_hold_the_measured_position_again():
    safety, _ = make_filter()
    safety.apply(np.array([0.1, 0.1, 0.6]), None)
    safety.reset()
    result = safety.apply(np.array([0.1, 0.1, 0.6]), np.array([-0.5, 0.5, 0.2]))
    assert result.reason == 'startup'
    np.testing.assert_array_equal(result.positions, [-0.5, 0.5, 0.2])


def test_check_inputs_holds_exactly_past_the_configured_ages():
    safety, _ = make_filter()
    now = 100.0
    assert safety.check_inputs(now, now - 0.1, now - 0.5) is HoldReason.OK  # at the limits
    assert safety.check_inputs(now, now - 0.1, now - 0.5001) is HoldReason.STALE_CONTEXT
    assert safety.check_inputs(now, now - 0.1001, now) is HoldReason.STALE_JOINT_STATE
    assert safety.check_inputs(now, None, now) is HoldReason.NO_JOINT_STATE
    assert safety.check_inputs(now, now, None) is HoldReason.NO_CONTEXT
    assert safety.check_inputs(now, now, math.nan) is HoldReason.NO_CONTEXT
    # joint state problems come first: without them nothing at all is safe to send
    assert safety.check_inputs(now, None, None) is HoldReason.NO_JOINT_STATE


def test_wrong_action_shape_raises():
    safety, _ = make_filter()
    with pytest.raises(ValueError, match='action must be'):
        safety.apply(np.zeros(4), None)


@pytest.mark.parametrize('kwargs, message', [
    ({'upper': (1.0, -1.0, 1.0)}, r'lower must be < upper.*\[1\]'),
    ({'upper': (1.0, 1.0)}, 'one length'),
    ({'max_step': (0.1, 0.0, 0.1)}, 'max_step'),
    ({'lower': (-1.0, math.nan, 0.0)}, 'lower'),
    ({'max_context_age': 0.0}, 'max_context_age'),
    ({'max_observation_age': math.inf}, 'max_observation_age'),
])
def test_config_validation_names_the_bad_field(kwargs, message):
    fields = {'lower': LOWER, 'upper': UPPER, 'max_step': (0.1, 0.1, 0.1), 'max_context_age': 1.0,
              'max_observation_age': 0.1}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        SafetyConfig(**fields)


def test_config_helpers_broadcast_and_use_the_robot_limits():
    uniform = SafetyConfig.uniform(4, -2.0, 2.0, 0.1, max_context_age=0.7,
                                   max_observation_age=0.1)
    assert uniform.lower == (-2.0,) * 4 and uniform.max_step == (0.1,) * 4
    assert uniform.max_context_age == 0.7 and uniform.action_dim == 4
    arms = SafetyConfig.for_robot(max_step=0.05, max_context_age=1.0, max_observation_age=0.1)
    assert arms.action_dim == robot.ACTION_DIM
    assert arms.lower == robot.JOINT_LOWER and arms.upper == robot.JOINT_UPPER
