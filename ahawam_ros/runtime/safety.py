"""
The safety filter every joint command passes through.

Shapes: A action dim (joints).

Rules, in order:
1. The first command after start (or `reset`) holds the measured joint position; without a
   fresh joint state nothing is commanded at all (positions None: the caller sends nothing).
2. Missing or stale inputs (joint state older than `max_observation_age`, planner context
   older than `max_context_age`), no action, or a non-finite action make the command a hold.
   A stamp ahead of `now` (or NaN) has no age to trust and counts as stale, never as fresh.
3. A hold repeats the last command sent, not the measured position: re-sending a measured
   position lets the arm creep under gravity and tracking error, and jumps if the measurement
   is off; the last command is known to be within limits and continuous with what came before.
4. Otherwise the action is clipped to the joint limits, then clamped to at most `max_step`
   per joint away from the last command, so resuming after a hold is smooth too.
"""

from dataclasses import dataclass
import enum
import math
from typing import Optional, Sequence, Tuple, Union

from ahawam_ros import robot
from ahawam_ros.runtime.stamps import stamp_age
import numpy as np


class HoldReason(str, enum.Enum):
    """Why a command holds ('ok' when it executes an action)."""

    OK = 'ok'
    STARTUP = 'startup'
    NO_JOINT_STATE = 'no_joint_state'
    STALE_JOINT_STATE = 'stale_joint_state'
    NO_CONTEXT = 'no_context'
    STALE_CONTEXT = 'stale_context'
    STALE_CAMERA = 'stale_camera'  # context or chunks ran out because a camera went silent
    NO_CHUNK = 'no_chunk'
    NONFINITE_ACTION = 'nonfinite_action'
    STOPPED = 'stopped'


def _as_floats(name: str, values: Sequence[float]) -> Tuple[float, ...]:
    floats = tuple(float(v) for v in values)
    if not floats or not all(math.isfinite(v) for v in floats):
        raise ValueError(f'{name} must be a non-empty sequence of finite floats, got {values}')
    return floats


@dataclass(frozen=True)
class SafetyConfig:
    """
    Limits of the safety filter; validated on construction.

    Attributes
    ----------
    lower, upper : tuple of float
        (A,) joint position limits in robot units, lower < upper.
    max_step : tuple of float
        (A,) largest change per command tick and joint, > 0.
    max_context_age : float
        Seconds after the planner's observation beyond which its context is stale.
    max_observation_age : float
        Seconds after which the joint state is stale.

    """

    lower: Tuple[float, ...]
    upper: Tuple[float, ...]
    max_step: Tuple[float, ...]
    max_context_age: float
    max_observation_age: float

    def __post_init__(self):
        for name in ('lower', 'upper', 'max_step'):
            object.__setattr__(self, name, _as_floats(name, getattr(self, name)))
        dims = {len(self.lower), len(self.upper), len(self.max_step)}
        if len(dims) != 1:
            raise ValueError(
                f'lower, upper and max_step must have one length, got {len(self.lower)}, '
                f'{len(self.upper)}, {len(self.max_step)}')
        bad = [i for i, (lo, hi) in enumerate(zip(self.lower, self.upper)) if not lo < hi]
        if bad:
            raise ValueError(f'lower must be < upper, violated at joints {bad}')
        if min(self.max_step) <= 0.0:
            raise ValueError(f'max_step must be > 0, got {self.max_step}')
        for name in ('max_context_age', 'max_observation_age'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f'{name} must be a finite number > 0, got {value}')

    @classmethod
    def uniform(cls, action_dim: int, lower: Union[float, Sequence[float]],
                upper: Union[float, Sequence[float]], max_step: Union[float, Sequence[float]],
                **ages: float) -> 'SafetyConfig':
        """Build a config, broadcasting scalar limits or step to all `action_dim` joints."""
        def expand(value):
            return (value,) * action_dim if np.isscalar(value) else tuple(value)
        return cls(lower=expand(lower), upper=expand(upper), max_step=expand(max_step), **ages)

    @classmethod
    def for_robot(cls, max_step: float, **ages: float) -> 'SafetyConfig':
        """
        Build a config with the bimanual arms' joint limits (`ahawam_ros.robot`).

        `max_step` applies to every joint: 0.05 rad per tick is 2.5 rad/s at 50 Hz, and for
        the normalised grippers 5 % of their range per tick.
        """
        return cls(lower=robot.JOINT_LOWER, upper=robot.JOINT_UPPER,
                   max_step=(max_step,) * robot.ACTION_DIM, **ages)

    @property
    def action_dim(self) -> int:
        return len(self.lower)


@dataclass(frozen=True)
class FilteredCommand:
    """
    What the filter lets through.

    Attributes
    ----------
    positions : np.ndarray or None
        float64 (A,) joint targets; None only before any fresh joint state was seen.
    is_hold : bool
        True when `positions` repeats the hold position instead of executing an action.
    reason : str
        A `HoldReason` value ('ok' when executing).
    clipped : bool
        The action was outside the joint limits.
    rate_limited : bool
        The action was further than `max_step` from the last command.

    """

    positions: Optional[np.ndarray]
    is_hold: bool
    reason: str
    clipped: bool = False
    rate_limited: bool = False


class SafetyFilter:
    """
    Stateful per-command filter (remembers the last command sent).

    Not thread-safe on its own: the executor calls it from one place, under its lock.

    Parameters
    ----------
    config : SafetyConfig
        Limits and maximum ages.

    """

    def __init__(self, config: SafetyConfig):
        self.config = config
        self._lower = np.asarray(config.lower)
        self._upper = np.asarray(config.upper)
        self._max_step = np.asarray(config.max_step)
        self._last: Optional[np.ndarray] = None

    def reset(self) -> None:
        """Forget the last command: the next one holds the measured position again."""
        self._last = None

    def reconfigure(self, config: SafetyConfig) -> None:
        """Use new limits from the next command on; the last command is kept (no jump)."""
        if config.action_dim != self.config.action_dim:
            raise ValueError(f'safety config has {config.action_dim} joints, the filter '
                             f'{self.config.action_dim}')
        self.config = config
        self._lower = np.asarray(config.lower)
        self._upper = np.asarray(config.upper)
        self._max_step = np.asarray(config.max_step)

    def impossible_joint(self, positions: np.ndarray, excess: float) -> Optional[int]:
        """Return the first joint of (A,) `positions` more than `excess` outside the limits."""
        outside = np.flatnonzero((positions < self._lower - excess)
                                 | (positions > self._upper + excess))
        return int(outside[0]) if outside.size else None

    @property
    def last_command(self) -> Optional[np.ndarray]:
        return None if self._last is None else self._last.copy()

    def check_inputs(self, now: float, joint_stamp: Optional[float],
                     context_stamp: Optional[float]) -> HoldReason:
        """
        Return why the inputs forbid executing an action, or `HoldReason.OK`.

        A stamp after `now` (a clock that jumped back, a stamp from another clock) or a
        non-finite one is stale: `stamp_age` makes its age infinite, never negative.

        Parameters
        ----------
        now : float
            Current time (s).
        joint_stamp : float or None
            Time of the newest joint state, None if none was received.
        context_stamp : float or None
            Observation time of the planner context behind the action, None if none exists.

        """
        if joint_stamp is None:
            return HoldReason.NO_JOINT_STATE
        if stamp_age(now, joint_stamp) > self.config.max_observation_age:
            return HoldReason.STALE_JOINT_STATE
        if context_stamp is None or math.isnan(context_stamp):
            return HoldReason.NO_CONTEXT
        if stamp_age(now, context_stamp) > self.config.max_context_age:
            return HoldReason.STALE_CONTEXT
        return HoldReason.OK

    def apply(self, proposed: Optional[np.ndarray], measured: Optional[np.ndarray],
              reason: HoldReason = HoldReason.OK) -> FilteredCommand:
        """
        Turn a proposed action into a safe command.

        Parameters
        ----------
        proposed : np.ndarray or None
            (A,) action to execute; None when there is none.
        measured : np.ndarray or None
            (A,) newest joint positions; used only for the first command.
        reason : HoldReason
            Result of `check_inputs`; anything but OK forces a hold.

        Returns
        -------
        FilteredCommand
            Finite positions within the limits, or walking into them at max_step from a
            first joint state measured outside (None before any joint state).

        """
        reason = HoldReason(reason)
        if self._last is None:
            return self._start(measured, reason)
        if reason is not HoldReason.OK:
            return self._hold(reason)
        if proposed is None:
            return self._hold(HoldReason.NO_CHUNK)
        proposed = np.asarray(proposed, dtype=np.float64)
        if proposed.shape != self._lower.shape:
            raise ValueError(f'action must be {self._lower.shape}, got {proposed.shape}')
        if not np.all(np.isfinite(proposed)):
            return self._hold(HoldReason.NONFINITE_ACTION)
        target = np.clip(proposed, self._lower, self._upper)
        self._last, rate_limited = self._step(self._last, target)
        return FilteredCommand(self._last.copy(), False, HoldReason.OK.value,
                               clipped=bool(np.any(target != proposed)),
                               rate_limited=rate_limited)

    def preview(self, start: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """
        Return the commands (m, A) that (n, A) `actions` would become after `start` (A,).

        Each row as `apply` would make it, without changing the filter's state: clipped into
        the limits, at most max_step from the row before (the first from `start`). Stops
        before the first non-finite row (m <= n).
        """
        rows, last = [], np.asarray(start, np.float64)
        for action in np.asarray(actions, np.float64):
            if not np.all(np.isfinite(action)):
                break
            last, _ = self._step(last, np.clip(action, self._lower, self._upper))
            rows.append(last)
        return np.array(rows, np.float64).reshape(len(rows), self._lower.shape[0])

    def _step(self, last: np.ndarray, target: np.ndarray) -> Tuple[np.ndarray, bool]:
        """Return (last moved towards `target` by at most max_step, whether that bound it)."""
        delta = target - last
        step = np.clip(delta, -self._max_step, self._max_step)
        # where last lies within the limits, so does last + step (target does): clip against
        # rounding; where the first command started outside them, it walks in at max_step
        inside = (last >= self._lower) & (last <= self._upper)
        moved = last + step
        return (np.where(inside, np.clip(moved, self._lower, self._upper), moved),
                bool(np.any(step != delta)))

    def _start(self, measured: Optional[np.ndarray], reason: HoldReason) -> FilteredCommand:
        stale = reason in (HoldReason.NO_JOINT_STATE, HoldReason.STALE_JOINT_STATE)
        if stale or measured is None:
            return FilteredCommand(None, True, (reason if stale else
                                                HoldReason.NO_JOINT_STATE).value)
        measured = np.asarray(measured, dtype=np.float64)
        if measured.shape != self._lower.shape or not np.all(np.isfinite(measured)):
            return FilteredCommand(None, True, HoldReason.NO_JOINT_STATE.value)
        # the first command holds the measured position, moved towards the limits by at most
        # max_step like any other command (a joint measured outside them walks in)
        limited = np.clip(measured, self._lower, self._upper)
        self._last = measured + np.clip(limited - measured, -self._max_step, self._max_step)
        return FilteredCommand(self._last.copy(), True, HoldReason.STARTUP.value,
                               clipped=bool(np.any(self._last != measured)))

    def _hold(self, reason: HoldReason) -> FilteredCommand:
        return FilteredCommand(self._last.copy(), True, reason.value)
