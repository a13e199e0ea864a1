"""
What the executor's diagnostics and log say about holding: level, topics, throttled lines.

Pure Python (no rclpy), so that the rules are tested with a fake clock:

- `HoldMonitor` follows the reason of every command tick: how long the executor has been
  holding, and which hold / execute transitions to log. At most one line per `log_period`
  seconds; the transitions in between are counted and the next line says how many (an input
  that flaps at the staleness limit would otherwise log every few ticks).
- `input_problems` names the input topics that are missing or stale.
- `hold_level` turns a hold into a diagnostics level: WARN, ERROR after `error_after` seconds.
"""

import threading
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

from ahawam_ros.runtime.planner_health import ERROR, OK, WARN  # the diagnostic levels

EXECUTING = 'ok'  # the reason of a command that executes an action
JOINT_REASONS = ('no_joint_state', 'stale_joint_state')
CONTEXT_REASONS = ('no_context', 'stale_context')


class LogLine(NamedTuple):
    """A line to log: `warning` for holds, `info` otherwise."""

    warning: bool
    text: str


class HoldMonitor:
    """
    Follows hold / execute transitions; decides which are logged (throttled).

    Thread-safe: the command timer calls `update`, the diagnostics timer `flush` and
    `holding_for`.

    Parameters
    ----------
    log_period : float
        Least seconds between two logged lines; 0 logs every transition.

    """

    def __init__(self, log_period: float):
        self.log_period = log_period
        self.state: Optional[str] = None  # reason of the last tick
        self.holding_since: Optional[float] = None
        self.transitions = 0
        self._detail = ''
        self._logged_at = -float('inf')
        self._logged_state: Optional[str] = None
        self._suppressed = 0
        self._lock = threading.Lock()

    def holding_for(self, now: float) -> float:
        """Return the seconds the executor has held without a break (0 when executing)."""
        since = self.holding_since
        return 0.0 if since is None else max(0.0, now - since)

    def update(self, reason: str, now: float, detail: str = '') -> Optional[LogLine]:
        """
        Note the reason of one tick; return the line to log now, if any.

        `detail` completes the line (the topics a hold waits for, the executing context).
        """
        if reason == self.state:
            return None
        with self._lock:
            return self._update(reason, now, detail)

    def _update(self, reason: str, now: float, detail: str) -> Optional[LogLine]:
        self.state, self._detail = reason, detail
        self.transitions += 1
        if reason == EXECUTING:
            self.holding_since = None
        elif self.holding_since is None:
            self.holding_since = now
        if now - self._logged_at < self.log_period:
            self._suppressed += 1
            return None
        return self._line(now)

    def flush(self, now: float) -> Optional[LogLine]:
        """Log the current state if transitions were held back and the period has passed."""
        with self._lock:
            return self._flush(now)

    def _flush(self, now: float) -> Optional[LogLine]:
        if not self._suppressed or now - self._logged_at < self.log_period:
            return None
        if self.state == self._logged_state:  # it flapped and came back: say so once
            text = f'{self._describe()} again after {self._pending_text()}'
            self._logged_at, self._suppressed = now, 0
            return LogLine(self.state != EXECUTING, text)
        return self._line(now)

    def _line(self, now: float) -> LogLine:
        text = self._describe()
        if self._suppressed:
            text += f' ({self._pending_text()})'
        self._logged_at, self._logged_state, self._suppressed = now, self.state, 0
        return LogLine(self.state != EXECUTING, text)

    def _pending_text(self) -> str:
        count = self._suppressed
        return f'{count} transition{"s" if count != 1 else ""} not logged'

    def _describe(self) -> str:
        head = 'executing' if self.state == EXECUTING else f'holding: {self.state}'
        return f'{head} {self._detail}'.rstrip()


def input_problems(reason: str, now: float, joint_topic: str, context_topic: str,
                   camera_stamps: Mapping[str, Optional[float]],
                   max_image_age: float) -> Tuple[List[str], List[str]]:
    """
    Return (missing, stale) input topics behind a hold.

    Parameters
    ----------
    reason : str
        The hold reason of the last tick.
    now : float
        Node time (s).
    joint_topic, context_topic : str
        Resolved topic names of the joint states and the world context.
    camera_stamps : Mapping[str, float or None]
        Resolved camera topic -> stamp (s) of its newest frame, None if none arrived.
    max_image_age : float
        Frames older than this (s) are stale.

    """
    missing, stale = [], []
    if reason in JOINT_REASONS:
        (missing if reason == 'no_joint_state' else stale).append(joint_topic)
    if reason in CONTEXT_REASONS:
        (missing if reason == 'no_context' else stale).append(context_topic)
    if reason != EXECUTING:
        for topic, stamp in camera_stamps.items():
            if stamp is None:
                missing.append(topic)
            elif now - stamp > max_image_age:
                stale.append(topic)
    return missing, stale


def hold_level(reason: Optional[str], holding_for: float, error_after: float) -> int:
    """Return OK while executing, WARN while holding, ERROR after `error_after` s of holding."""
    if reason == EXECUTING:
        return OK
    return ERROR if holding_for >= error_after else WARN


def problems_text(missing: List[str], stale: List[str]) -> str:
    """Return '; missing: a, b; stale: c' (empty when nothing is wrong)."""
    parts: Dict[str, List[str]] = {'missing': missing, 'stale': stale}
    return ''.join(f'; {name}: {", ".join(topics)}' for name, topics in parts.items() if topics)
