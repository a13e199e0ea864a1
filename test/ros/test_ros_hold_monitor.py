"""The rules of the executor's hold diagnostics and throttled transition log (fake clock)."""

from ahawam_ros.ros.hold_monitor import ERROR, hold_level, HoldMonitor, input_problems, OK
from ahawam_ros.ros.hold_monitor import problems_text, WARN


def test_flapping_logs_at_most_one_line_per_period_and_counts_the_rest():
    monitor, lines = HoldMonitor(log_period=2.0), []
    for tick in range(500):  # 10 s at 50 Hz, the joint state stale every other 0.1 s
        now = tick * 0.02
        reason = 'stale_joint_state' if (tick // 5) % 2 else 'ok'
        lines.append(monitor.update(reason, now))
        if tick % 25 == 0:  # the diagnostics timer, 2 Hz
            lines.append(monitor.flush(now))
    logged = [line for line in lines if line is not None]
    assert monitor.transitions == 100
    assert 1 <= len(logged) <= 10 / 2.0 + 1
    assert any('not logged' in line.text for line in logged)
    assert all(line.warning == line.text.startswith('holding') for line in logged)


def test_steady_transitions_are_all_logged_with_their_detail():
    monitor = HoldMonitor(log_period=2.0)
    first = monitor.update('no_joint_state', 0.0, '(missing: /r1/joint_states)')
    assert first.warning and first.text == 'holding: no_joint_state (missing: /r1/joint_states)'
    second = monitor.update('ok', 5.0, '(context 3)')
    assert not second.warning and second.text == 'executing (context 3)'
    assert monitor.update('ok', 6.0) is None and monitor.flush(9.0) is None


def test_a_suppressed_change_is_logged_when_the_period_ends():
    monitor = HoldMonitor(log_period=2.0)
    monitor.update('ok', 0.0)
    assert monitor.update('stale_context', 0.5) is None  # within the period: held back
    assert monitor.flush(1.0) is None
    late = monitor.flush(2.5)
    assert late.warning and late.text.startswith('holding: stale_context')
    assert '1 transition not logged' in late.text


def test_hold_time_and_level():
    monitor = HoldMonitor(log_period=0.0)
    monitor.update('no_joint_state', 10.0)
    monitor.update('no_context', 11.0)  # still holding: the hold started at 10 s
    assert monitor.holding_for(14.0) == 4.0
    assert hold_level('no_context', 4.0, error_after=5.0) == WARN
    assert hold_level('no_context', 5.0, error_after=5.0) == ERROR
    assert hold_level(None, 0.0, error_after=5.0) == WARN  # no tick yet: not OK either
    monitor.update('ok', 15.0)
    assert monitor.holding_for(16.0) == 0.0 and hold_level('ok', 0.0, 5.0) == OK


def test_input_problems_name_missing_and_stale_topics():
    cameras = {'/r1/cam0': None, '/r1/cam1': 9.0, '/r1/cam2': 9.9}
    missing, stale = input_problems('no_joint_state', 10.0, '/r1/joint_states',
                                    '/r1/world_context', cameras, max_image_age=0.5)
    assert missing == ['/r1/joint_states', '/r1/cam0'] and stale == ['/r1/cam1']
    assert problems_text(missing, stale) == \
        '; missing: /r1/joint_states, /r1/cam0; stale: /r1/cam1'
    missing, stale = input_problems('stale_context', 10.0, '/j', '/c', {}, 0.5)
    assert (missing, stale) == ([], ['/c'])
    assert input_problems('ok', 10.0, '/j', '/c', cameras, 0.5) == ([], [])
