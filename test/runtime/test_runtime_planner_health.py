"""The planner's /diagnostics line: OK while contexts come, else why not, naming the inputs."""

import math

from ahawam_ros.runtime.planner_health import ERROR, OK, PlannerHealth, WARN

CAMERAS = ('/r/cameras/top/image_raw', '/r/cameras/wrist/image_raw')


def health(since, status, ages=(0.05, 0.05), error=''):
    return PlannerHealth(since, status, 3.0, dict(zip(CAMERAS, ages)), 0.5, error)


def test_ok_while_contexts_arrive_within_a_few_refresh_periods():
    assert health(0.9, 'published').summary(5.0) == (OK, 'refreshing')
    assert health(1.1, 'published').level(5.0) == WARN  # 3 periods at 3 Hz = 1 s
    assert health(6.0, 'published').level(5.0) == ERROR


def test_the_message_names_what_stops_the_planner():
    level, text = health(math.inf, 'no_images', ages=(0.05, None)).summary(5.0)
    assert level == ERROR and text == ('no context yet: waiting for a frame on '
                                       '/r/cameras/wrist/image_raw')
    text = health(2.0, 'stale_images', ages=(0.1, 1.04)).message(5.0)
    assert text == ('no context for 2.0 s: frames too old: /r/cameras/wrist/image_raw newest '
                    '1.04 s (max_image_age 0.5 s)')
    text = health(2.0, 'policy_error', error='RuntimeError: boom').message(5.0)
    assert text.endswith('plan failed: RuntimeError: boom')


def test_a_planner_that_never_published_warns_first_and_errs_after_error_after():
    """No context yet: the wait runs from the planner's start (or episode), not from ever."""
    waiting = PlannerHealth(math.inf, 'no_images', 3.0, dict(zip(CAMERAS, (None, None))), 0.5,
                            since_start=2.0)
    assert waiting.level(5.0) == WARN
    assert waiting.message(5.0).startswith('no context yet: waiting for a frame')
    late = PlannerHealth(math.inf, 'no_images', 3.0, dict(zip(CAMERAS, (None, None))), 0.5,
                         since_start=6.0)
    assert late.level(5.0) == ERROR
