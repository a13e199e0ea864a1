"""
Following joint trajectories as ros2_control's JointTrajectoryController does.

Shapes: P points, A joints.

Each received trajectory replaces the one being followed from the moment it arrives: the
desired state then (position and velocity) is the start, the points still ahead follow.
Between two knots the desired state is a cubic Hermite spline when both have velocities and
a straight line when one has positions only (the controller's rules for "splines"
interpolation). After the last point the desired position stays there at rest; a trajectory
whose points all lie in the past jumps to its last point, as the controller would.

The bench measures with `sample` how smoothly a controller would move on the executor's
commands; the simulator, a position servo stepping at the control period, steers each step to
the point the trajectory is heading for (`next_point`): on time that is the message's first
point, as a one-point command was, and when messages stop it goes on along the points.
"""

from typing import NamedTuple, Optional, Tuple

import numpy as np


class DesiredState(NamedTuple):
    """The controller's desired state at one time."""

    positions: np.ndarray  # (A,)
    velocities: np.ndarray  # (A,)


def _hermite(s: float, h: float, p0, v0, p1, v1) -> DesiredState:
    """Cubic Hermite spline over a knot interval of length h at fraction s in [0, 1]."""
    s2, s3 = s * s, s * s * s
    positions = ((2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * h * v0
                 + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * h * v1)
    velocities = ((6 * s2 - 6 * s) * p0 + (3 * s2 - 4 * s + 1) * h * v0
                  + (-6 * s2 + 6 * s) * p1 + (3 * s2 - 2 * s) * h * v1) / h
    return DesiredState(positions, velocities)


class TrajectoryFollower:
    """The desired state of a trajectory controller, as trajectories arrive."""

    def __init__(self):
        self._times: Optional[np.ndarray] = None  # (N,) absolute knot times, s
        self._positions: Optional[np.ndarray] = None  # (N, A)
        self._velocities: Optional[np.ndarray] = None  # (N, A), NaN rows: positions only

    @property
    def following(self) -> bool:
        """Return whether a trajectory was received (since the last `clear`)."""
        return self._times is not None

    def clear(self) -> None:
        """Forget the trajectory (a new episode): the next one starts from the measured state."""
        self._times = self._positions = self._velocities = None

    def receive(self, now: float, start: float, times_from_start: np.ndarray,
                positions: np.ndarray, velocities: Optional[np.ndarray] = None,
                measured: Optional[np.ndarray] = None) -> None:
        """
        Follow a new trajectory from time `now` (s) on.

        Parameters
        ----------
        now : float
            Arrival time, on the same clock as `start` and the `sample` times.
        start : float
            The trajectory's start (its header stamp); point k is due at start + time k.
        times_from_start : np.ndarray
            (P,) increasing seconds.
        positions, velocities : np.ndarray
            (P, A); velocities None for positions only.
        measured : np.ndarray, optional
            (A,) where the arm is, the start when no trajectory was followed yet (at rest).

        """
        due = start + np.asarray(times_from_start, np.float64)
        positions = np.asarray(positions, np.float64)
        with_velocities = velocities is not None and np.size(velocities) > 0
        velocities = (np.asarray(velocities, np.float64) if with_velocities
                      else np.full_like(positions, np.nan))
        ahead = due > now
        if not ahead.any():  # all in the past: jump to the last point, at rest
            self._set(np.array([now]), positions[-1:], np.zeros_like(positions[-1:]))
            return
        if self.following:
            current = self.sample(now)
        elif measured is not None:
            current = DesiredState(np.asarray(measured, np.float64), np.zeros(positions.shape[1]))
        else:
            current = DesiredState(positions[0], np.zeros(positions.shape[1]))
        self._set(np.concatenate([[now], due[ahead]]),
                  np.concatenate([current.positions[None], positions[ahead]]),
                  np.concatenate([current.velocities[None], velocities[ahead]]))

    def _set(self, times, positions, velocities) -> None:
        self._times, self._positions, self._velocities = times, positions, velocities

    def sample(self, t: float) -> DesiredState:
        """Return the desired state at time `t` (s); the first knot's before it, at rest after."""
        if not self.following:
            raise RuntimeError('no trajectory received yet')
        times, positions, velocities = self._times, self._positions, self._velocities
        if t >= times[-1]:
            return DesiredState(positions[-1].copy(), np.zeros(positions.shape[1]))
        k = max(0, int(np.searchsorted(times, t, side='right')) - 1)  # times[k] <= t < times[k+1]
        h = times[k + 1] - times[k]
        s = min(1.0, max(0.0, (t - times[k]) / h))
        p0, p1 = positions[k], positions[k + 1]
        v0, v1 = velocities[k], velocities[k + 1]
        if np.isnan(v0).any() or np.isnan(v1).any():  # positions only: a straight line
            return DesiredState(p0 + s * (p1 - p0), (p1 - p0) / h)
        return _hermite(s, h, p0, v0, p1, v1)

    def next_point(self, t: float) -> np.ndarray:
        """
        Return the (A,) positions of the first point due at or after time `t` (s).

        The last point once every point is due. A position servo stepping at the control
        period takes this as its target: the point the trajectory is heading for.
        """
        if not self.following:
            raise RuntimeError('no trajectory received yet')
        ahead = np.flatnonzero(self._times[1:] >= t)  # knot 0: the state at arrival
        return self._positions[1 + ahead[0] if ahead.size else -1].copy()

    def knots(self) -> Tuple[np.ndarray, np.ndarray]:
        """Return the (N,) knot times and (N, A) positions being followed (for tests)."""
        return self._times.copy(), self._positions.copy()
