"""Each command's path: the plan's next commands, safe, fresh, with velocities."""

import math

from ahawam_ros.runtime.command_path import fresh_points, path_velocities
from ahawam_ros.runtime.safety import SafetyConfig, SafetyFilter
import numpy as np
import pytest
from test_runtime_executor_core import A, Rig


def _executing_pairs(rig, commands):
    """Yield consecutive executing commands with no chunk accepted between them."""
    arrivals = np.array([accepted[0] for accepted in rig.accepted])
    for before, after in zip(commands, commands[1:]):
        if before.is_hold or after.is_hold:
            continue
        if np.any((arrivals > before.stamp) & (arrivals <= after.stamp)):
            continue
        yield before, after


def test_the_path_is_what_the_next_ticks_will_send_while_the_plan_stands():
    rig = Rig(blend='linear', max_step=0.05, amplitude=1.5, ahead=9)  # beyond the limits
    commands = rig.run(200)
    pairs = list(_executing_pairs(rig, commands))
    assert len(pairs) > 50
    for before, after in pairs:
        # the next tick sends the path's second row, clipped and rate-limited the same way
        if before.path.shape[0] > 1:
            np.testing.assert_allclose(after.positions, before.path[1], atol=1e-12)
    for command in commands:
        assert np.array_equal(command.path[0], command.positions)
        assert np.all(command.path >= -1.0) and np.all(command.path <= 1.0)
        assert np.all(np.abs(np.diff(command.path, axis=0)) <= 0.05 + 1e-12)


def test_the_path_ends_where_its_joint_state_would_be_stale():
    # joint states are 40 ms old at each tick, max_observation_age is 0.1 s: the points due
    # up to 60 ms ahead rest on a fresh joint state, three of them
    rig = Rig(ahead=9)
    commands = [c for c in rig.run(100) if not c.is_hold]
    lengths = {c.path.shape[0] for c in commands}
    assert max(lengths) == 4 and lengths <= {1, 2, 3, 4}
    rig = Rig(ahead=9)
    rig_commands = [c for c in rig.run(100, joint_delay=0.0) if not c.is_hold]
    assert max(c.path.shape[0] for c in rig_commands) == 6  # 100 ms ahead


def test_holds_and_single_commands_have_one_point_at_rest():
    rig = Rig(ahead=9)
    commands = rig.run(20, plan_until=-1.0)  # no context: every command holds
    assert all(c.is_hold for c in commands)
    for command in commands:
        assert command.path.shape == (1, A) and not command.velocities.any()
        assert math.isnan(command.path_period)
    commands = Rig(ahead=0).run(20)
    assert all(c.path.shape == (1, A) for c in commands)


def test_velocities_are_central_differences_and_zero_at_the_end():
    previous = np.array([0.0, 1.0])
    path = np.array([[0.1, 1.0], [0.3, 0.9], [0.6, 0.9]])
    velocities = path_velocities(previous, path, 0.1)
    np.testing.assert_allclose(velocities, [[1.5, -0.5], [2.5, -0.5], [0.0, 0.0]])
    np.testing.assert_allclose(path_velocities(None, path, 0.1)[0], [1.0, -0.5])
    assert not path_velocities(previous, path[:1], 0.1).any()


@pytest.mark.parametrize('now, expected', [(10.0, 5), (10.05, 2), (10.1, 0), (10.2, 0)])
def test_fresh_points_stop_at_the_older_inputs_limit(now, expected):
    # joint state at 10.0 fresh until 10.1; context at 9.0 fresh until 10.5
    assert fresh_points(now, 0.02, 9, 10.0, 9.0, 0.1, 1.5) == expected
    assert fresh_points(now, 0.02, 9, None, 9.0, 0.1, 1.5) == 0


def test_the_filter_preview_clips_rate_limits_and_stops_at_the_first_nonfinite_row():
    safety = SafetyFilter(SafetyConfig.uniform(2, -1.0, 1.0, 0.1, max_context_age=1.0,
                                               max_observation_age=1.0))
    actions = np.array([[2.0, 0.0], [2.0, 0.0], [np.nan, 0.0], [0.0, 0.0]])
    rows = safety.preview(np.array([0.75, 0.0]), actions)
    np.testing.assert_allclose(rows, [[0.85, 0.0], [0.95, 0.0]])
    assert safety.last_command is None  # a preview sends nothing
