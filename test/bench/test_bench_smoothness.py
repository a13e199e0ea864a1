"""The bench's controller replay: the plan ahead moves a controller smoothly, one point not."""

from ahawam_ros.bench.smoothness import first_point_only, follow, gaps, Message, smoothness
import numpy as np

PERIOD = 0.02


def _stream(seconds: float = 3.0, points: int = 10, latency: float = 0.003):
    """Commands of a 1 Hz sine on one joint, as the executor sends them: the plan ahead."""
    messages = []
    for i in range(int(seconds / PERIOD)):
        stamp = i * PERIOD
        due = stamp + PERIOD * np.arange(1, points + 1)  # point k reached (k + 1) periods on
        plan = 0.3 * np.sin(2 * np.pi * (due - PERIOD))[:, None]  # (P, 1): the plan at its time
        velocities = 0.6 * np.pi * np.cos(2 * np.pi * (due - PERIOD))[:, None]
        velocities[-1] = 0.0
        messages.append(Message(stamp + latency, stamp, due - stamp, plan, velocities))
    return messages


def test_the_plan_ahead_has_smaller_velocity_jumps_and_rides_through_a_stall():
    figures = smoothness(_stream())
    sent, one = figures['as_sent'], figures['one_point']
    assert sent['points'] == 10.0 and one['points'] == 1.0
    assert sent['velocity_jump_p99'] < 0.2 * one['velocity_jump_p99'], figures
    assert sent['jerk_rms'] < 0.2 * one['jerk_rms'], figures
    # a 100 ms stall: one point stops dead and then catches up; the plan ahead keeps going
    assert sent['gap_deviation_max'] < 0.2 * one['gap_deviation_max'], figures
    assert sent['gap_velocity_jump_max'] < one['gap_velocity_jump_max'], figures


def test_the_follower_tracks_the_plan_and_a_stall_drops_a_tenth_of_a_second():
    messages = _stream()
    times, positions, _ = follow(messages)
    expected = 0.3 * np.sin(2 * np.pi * (times - PERIOD))
    assert np.abs(positions[:, 0] - expected)[times > 0.1].max() < 0.02
    dropped = gaps(messages)
    assert 3 * 4 <= dropped.sum() <= 3 * 6  # 5 messages (100 ms at 50 Hz) per second
    one = first_point_only(messages[0])
    assert one.positions.shape == (1, 1) and one.velocities is None
