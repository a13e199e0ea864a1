"""
The planner's health in one line, for its /diagnostics status (ROS-free).

The planner is healthy while it publishes contexts: OK when the newest one is younger than
`PlannerHealth.stale_after(refresh_rate_hz)` (a few refresh periods). Otherwise WARN, then
ERROR after `error_after` seconds without a context (counted from the planner's start or
episode when it has not published since), with the reason of the newest refresh
that did not publish: no frame yet (naming the silent cameras), frames too old (naming the
stalest camera and its age), or the model failing (its error).
"""

from dataclasses import dataclass
import math
from typing import Mapping, Optional, Tuple

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels (the executor's too)
STALE_PERIODS = 3.0  # a context older than this many refresh periods is overdue


@dataclass(frozen=True)
class PlannerHealth:
    """A planner's state as its node sees it at one moment."""

    since_publish: float  # s since the newest published context (inf: none yet)
    last_status: str  # PlannerCore.last_status
    refresh_rate_hz: float
    camera_ages: Mapping[str, Optional[float]]  # resolved topic -> newest frame age (None: none)
    max_image_age: float
    last_error: str = ''
    since_start: float = math.inf  # s since the planner started (or its episode): the wait

    @staticmethod
    def stale_after(refresh_rate_hz: float) -> float:
        """Return the seconds after which the newest context is overdue."""
        return STALE_PERIODS / refresh_rate_hz

    def level(self, error_after: float) -> int:
        """Return OK, WARN, or ERROR after `error_after` s without a context."""
        if self.since_publish <= self.stale_after(self.refresh_rate_hz):
            return OK
        waited = min(self.since_publish, self.since_start)  # a planner just started: WARN
        return ERROR if waited > error_after else WARN

    def message(self, error_after: float) -> str:
        """Return 'refreshing', or why no context came for how long."""
        if self.level(error_after) == OK:
            return 'refreshing'
        since = ('no context yet' if math.isinf(self.since_publish)
                 else f'no context for {self.since_publish:.1f} s')
        return f'{since}: {self.reason()}'

    def reason(self) -> str:
        """Return the newest non-publishing refresh's reason, with the inputs behind it."""
        missing = [topic for topic, age in self.camera_ages.items() if age is None]
        if missing or self.last_status == 'no_images':
            return f'waiting for a frame on {", ".join(missing) or "the cameras"}'
        stale = {topic: age for topic, age in self.camera_ages.items()
                 if age is not None and age > self.max_image_age}
        if stale or self.last_status == 'stale_images':
            topic, age = max(stale.items(), key=lambda item: item[1]) if stale else ('?', 0.0)
            return (f'frames too old: {topic} newest {age:.2f} s '
                    f'(max_image_age {self.max_image_age:g} s)')
        if self.last_status == 'policy_error':
            return f'plan failed: {self.last_error}'
        return self.last_status

    def summary(self, error_after: float) -> Tuple[int, str]:
        """Return (level, message)."""
        return self.level(error_after), self.message(error_after)
