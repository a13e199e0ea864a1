"""
How smoothly a trajectory controller moves on the executor's commands (the bench's figures).

The command messages recorded in the ROS graph are replayed, at the times they arrived, into
`sim.trajectory_follower` (ros2_control's JointTrajectoryController's interpolation rules),
sampled at a controller rate; side by side, the same messages cut to their first point with
positions only (what the executor sent before it sent the plan ahead). Figures per format:
the largest change of the desired velocity between two controller samples (p99 and max over
samples, the largest joint; a velocity jump), the RMS jerk, and the same stream with every
message dropped for `gap` seconds once a second (a stalled executor): the velocity jump and
how far the desired positions then stray from those of the uninterrupted stream.

Shapes: M messages, P points, A joints, S controller samples.
"""

from typing import Dict, List, NamedTuple, Optional, Sequence

from ahawam_ros.sim.trajectory_follower import TrajectoryFollower
import numpy as np

CONTROLLER_HZ = 500.0
GAP_S = 0.1
GAP_EVERY_S = 1.0


class Message(NamedTuple):
    """One received JointTrajectory command, in the receiver's clock (s)."""

    arrival: float
    stamp: float
    times: np.ndarray  # (P,) from the stamp
    positions: np.ndarray  # (P, A)
    velocities: Optional[np.ndarray]  # (P, A) or None


def first_point_only(message: Message) -> Message:
    """Return `message` as one point with positions only."""
    return message._replace(times=message.times[:1], positions=message.positions[:1],
                            velocities=None)


def follow(messages: Sequence[Message], rate_hz: float = CONTROLLER_HZ,
           drop: Optional[np.ndarray] = None):
    """
    Return (S,) sample times, (S, A) desired positions and velocities of a controller.

    The controller receives each message at its arrival (except where `drop` (M,) is True)
    and is sampled every 1 / `rate_hz` s from the first arrival to the last.
    """
    follower = TrajectoryFollower()
    times = np.arange(messages[0].arrival, messages[-1].arrival, 1.0 / rate_hz)
    positions, velocities, index = [], [], 0
    for t in times:
        while index < len(messages) and messages[index].arrival <= t:
            message = messages[index]
            if drop is None or not drop[index]:
                follower.receive(message.arrival, message.stamp, message.times,
                                 message.positions, message.velocities)
            index += 1
        state = follower.sample(t)
        positions.append(state.positions)
        velocities.append(state.velocities)
    return times, np.array(positions), np.array(velocities)


def _figures(velocities: np.ndarray, rate_hz: float) -> Dict[str, float]:
    jumps = np.abs(np.diff(velocities, axis=0)).max(axis=1)  # (S - 1,) largest joint
    jerk = np.diff(velocities, n=2, axis=0) * rate_hz ** 2  # (S - 2, A) rad/s^3
    return {'velocity_jump_p99': float(np.percentile(jumps, 99.0)),
            'velocity_jump_max': float(jumps.max()),
            'jerk_rms': float(np.sqrt(np.mean(jerk ** 2)))}


def gaps(messages: Sequence[Message], gap: float = GAP_S,
         every: float = GAP_EVERY_S) -> np.ndarray:
    """Return (M,) True for the messages inside a `gap`-long window once every `every` s."""
    arrivals = np.array([m.arrival for m in messages]) - messages[0].arrival
    phase = np.mod(arrivals, every)
    return (phase >= every / 2) & (phase < every / 2 + gap)


def smoothness(messages: List[Message], rate_hz: float = CONTROLLER_HZ,
               gap: float = GAP_S) -> Dict[str, Dict[str, float]]:
    """
    Return the figures of the messages as sent ('as_sent') and cut to one point ('one_point').

    Each: 'velocity_jump_p99' / 'velocity_jump_max' (rad/s per sample), 'jerk_rms' (rad/s^3),
    'points' (mean per message), and with gaps: 'gap_velocity_jump_max', 'gap_deviation_max'
    (rad, against the uninterrupted stream of the same format).
    """
    if len(messages) < 3:
        return {}
    dropped = gaps(messages, gap)
    out = {}
    for name, stream in (('as_sent', list(messages)),
                         ('one_point', [first_point_only(m) for m in messages])):
        _, positions, velocities = follow(stream, rate_hz)
        _, gap_positions, gap_velocities = follow(stream, rate_hz, dropped)
        row = _figures(velocities, rate_hz)
        row['points'] = float(np.mean([len(m.times) for m in stream]))
        row['gap_velocity_jump_max'] = _figures(gap_velocities, rate_hz)['velocity_jump_max']
        row['gap_deviation_max'] = float(np.abs(gap_positions - positions).max())
        out[name] = row
    return out


def smoothness_lines(figures: Dict[str, Dict[str, float]], rate_hz: float = CONTROLLER_HZ,
                     gap: float = GAP_S) -> List[str]:
    """Return the bench's table rows of `smoothness` figures."""
    if not figures:
        return ['  controller           too few commands to follow']
    lines = [f'  as a trajectory controller follows the commands ({rate_hz:g} Hz samples; '
             f'a {1e3 * gap:.0f} ms stall once a second):',
             f'    {"format":<24}{"points":>7}{"dv p99":>9}{"dv max":>9}{"jerk RMS":>11}'
             f'{"stall dv":>10}{"stall dev":>11}']
    for name, label in (('one_point', 'one point, positions'),
                        ('as_sent', 'as sent (plan ahead)')):
        row = figures[name]
        lines.append(f'    {label:<24}{row["points"]:>7.1f}{row["velocity_jump_p99"]:>9.3f}'
                     f'{row["velocity_jump_max"]:>9.3f}{row["jerk_rms"]:>11.0f}'
                     f'{row["gap_velocity_jump_max"]:>10.3f}{row["gap_deviation_max"]:>11.3f}')
    lines.append('    (dv: velocity change between two samples, rad/s, largest joint; jerk '
                 'rad/s^3; stall dev: rad from the uninterrupted stream)')
    return lines
