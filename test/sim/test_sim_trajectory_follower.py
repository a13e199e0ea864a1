"""The simulator's trajectory controller model: splines, take-overs, late and past messages."""

from ahawam_ros.sim.trajectory_follower import TrajectoryFollower
import numpy as np
import pytest

TIMES = np.array([0.1, 0.2, 0.3])
POSITIONS = np.array([[0.1], [0.3], [0.4]])  # (P, A = 1)
VELOCITIES = np.array([[1.5], [1.5], [0.0]])


def _follower(velocities=VELOCITIES):
    follower = TrajectoryFollower()
    follower.receive(0.0, 0.0, TIMES, POSITIONS, velocities, measured=np.zeros(1))
    return follower


def test_the_spline_passes_each_point_with_its_velocity_then_rests():
    follower = _follower()
    for t, positions, velocities in zip(TIMES, POSITIONS, VELOCITIES):
        state = follower.sample(t - 1e-12)
        np.testing.assert_allclose(state.positions, positions, atol=1e-9)
        np.testing.assert_allclose(state.velocities, velocities, atol=1e-6)
    late = follower.sample(5.0)
    assert late.positions[0] == pytest.approx(0.4) and late.velocities[0] == 0.0
    assert follower.sample(0.0).positions[0] == 0.0  # from the measured state, at rest


def test_a_new_trajectory_takes_over_without_a_jump_in_position_or_velocity():
    follower = _follower()
    before = follower.sample(0.15)
    follower.receive(0.15, 0.14, TIMES, POSITIONS + 0.05, VELOCITIES)
    after = follower.sample(0.15)
    np.testing.assert_allclose(after.positions, before.positions, atol=1e-12)
    np.testing.assert_allclose(after.velocities, before.velocities, atol=1e-12)
    assert follower.sample(0.34 - 1e-12).positions[0] == pytest.approx(0.35)


def test_positions_only_is_a_straight_line_with_a_velocity_step_at_each_point():
    follower = _follower(velocities=None)
    np.testing.assert_allclose(follower.sample(0.05).positions, [0.05])
    assert follower.sample(0.15).velocities[0] == pytest.approx(2.0)
    assert follower.sample(0.25).velocities[0] == pytest.approx(1.0)


def test_points_already_past_are_skipped_and_all_past_jumps_to_the_last():
    follower = _follower()
    follower.receive(0.25, 0.0, TIMES, POSITIONS, VELOCITIES)  # 0.1 and 0.2 are past
    times, _ = follower.knots()
    np.testing.assert_allclose(times, [0.25, 0.3])
    follower.receive(0.5, 0.0, TIMES, POSITIONS, VELOCITIES)
    state = follower.sample(0.5)
    assert state.positions[0] == pytest.approx(0.4) and state.velocities[0] == 0.0


def test_sampling_before_any_trajectory_is_an_error():
    with pytest.raises(RuntimeError):
        TrajectoryFollower().sample(0.0)


def test_the_next_point_is_the_one_the_trajectory_is_heading_for():
    follower = _follower()
    np.testing.assert_allclose(follower.next_point(0.05), [0.1])
    np.testing.assert_allclose(follower.next_point(0.1), [0.1])  # due now: still the target
    np.testing.assert_allclose(follower.next_point(0.25), [0.4])
    np.testing.assert_allclose(follower.next_point(9.0), [0.4])  # after the end: the last
