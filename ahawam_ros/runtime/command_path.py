"""
A command's path: the safe command for now, then the plan's next commands, with velocities.

Shapes: P points (P >= 1), A action dim.

A trajectory controller (ros2_control's JointTrajectoryController) given one point with
positions only interpolates linearly from wherever the arm is, so the velocity jumps at every
message, and it stops dead when a message is late. Given the next P points of the executor's
blended plan with velocities, it follows a cubic spline through them and keeps going through
a late message. Only points that would still be executed on fresh inputs are included: a
point due after the joint state or the planner context it rests on would have gone stale is
cut (a robot never follows a stale plan), and the last point's velocity is zero, so a
controller that hears nothing more comes to rest there.
"""

from typing import Any, Optional

from ahawam_ros.runtime.safety import FilteredCommand, SafetyConfig, SafetyFilter
import numpy as np


def fresh_points(now: float, period: float, count: int, joint_stamp: Optional[float],
                 context_stamp: Optional[float], max_observation_age: float,
                 max_context_age: float) -> int:
    """
    Return how many of `count` points ahead rest on inputs still fresh when they are due.

    Point k (k = 1 .. count) is due at now + k * period; fresh then: the joint state younger
    than `max_observation_age` and the context younger than `max_context_age` (seconds).
    """
    if joint_stamp is None or context_stamp is None:
        return 0
    last_due = min(joint_stamp + max_observation_age, context_stamp + max_context_age)
    # k * period <= last_due - now, with a tolerance for rounding
    return int(max(0, min(count, np.floor((last_due - now) / period + 1e-9))))


def path_velocities(previous: Optional[np.ndarray], path: np.ndarray,
                    period: float) -> np.ndarray:
    """
    Return (P, A) velocities for the (P, A) `path`, its points `period` seconds apart.

    Central differences, point k: (path[k+1] - path[k-1]) / (2 period), with path[-1] the
    command sent before `previous` (path[0] when there was none); the last point's velocity
    is zero (the arm comes to rest there if no newer path arrives). One point: zero.
    """
    path = np.asarray(path, np.float64)
    velocities = np.zeros_like(path)
    if path.shape[0] < 2:
        return velocities
    before = path[0] if previous is None else np.asarray(previous, np.float64)
    padded = np.concatenate([before[None], path])  # (P + 1, A): padded[k + 1] = path[k]
    velocities[:-1] = (padded[2:] - padded[:-2]) / (2.0 * period)  # k = 0 .. P - 2
    return velocities


def command_path(safety: SafetyFilter, result: FilteredCommand, planned: Any, now: float,
                 joint_stamp: Optional[float], context_stamp: Optional[float],
                 limits: SafetyConfig) -> Optional[np.ndarray]:
    """
    Return the (P, A) path of a tick's filtered command, or None when nothing is sent.

    `planned` is the scheduler's `next_action` (its `ahead` rows and `period`), or None.
    A hold, or a plan with nothing ahead, is the command alone; else the command, then the
    plan's fresh points ahead (`fresh_points`) as the filter would send them
    (`SafetyFilter.preview`). Call under the lock that guards the filter's state.
    """
    if result.positions is None:
        return None
    if result.is_hold or planned is None or planned.ahead.shape[0] == 0:
        return result.positions[None].copy()
    fresh = fresh_points(now, planned.period, planned.ahead.shape[0], joint_stamp,
                         context_stamp, limits.max_observation_age, limits.max_context_age)
    rows = safety.preview(result.positions, planned.ahead[:fresh])
    return np.concatenate([result.positions[None], rows])
