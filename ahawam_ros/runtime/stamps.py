"""
Message stamps checked against the receiving clock on arrival.

A stamp comes from another machine's or another process's clock. It can be NaN or infinite (a
broken driver), zero (a ROS header nobody set), negative, or ahead of this clock (clocks not
synchronised, sim time on one side and wall time on the other). Taken as it is, a stamp ahead
looks fresh for as long as it leads, and as the newest observation it makes every later,
correct one look out of order. `StampGuard` refuses such a stamp on arrival, counts the refusal
per source (topic) and cause, logs the first of each, and keeps a running estimate of
now - stamp per source, so that a consistent clock offset is reported by name. A refused stamp
is never stored: the next good message is accepted at once. An accepted stamp that leads the
clock (by at most `max_future`) is stored as now, so no stored age is ever negative.
"""

from collections import Counter, deque
from dataclasses import dataclass
import logging
import math
import statistics
import threading
from typing import Deque, Dict, List, NamedTuple, Optional, Tuple

_LOG = logging.getLogger(__name__)

OK = 'ok'
NONFINITE = 'nonfinite'  # NaN or infinite
NEGATIVE = 'negative'
ZERO = 'zero'  # an unset header.stamp (only where `zero_is_unset`)
FUTURE = 'future'  # ahead of the receiving clock by more than `max_future`
NO_CLOCK = 'no_clock'  # the receiving clock reads 0 or garbage: no age can be computed
OFFSET_WINDOW = 16  # arrivals per source in the running offset estimate (a median)
OFFSET_MIN_SAMPLES = 5  # a median of fewer is one message's word, not a consistent offset


def stamp_age(now: float, stamp: float) -> float:
    """
    Return seconds from `stamp` to `now`, never negative: math.inf when unknown.

    A stamp ahead of `now` or not finite has no age a safety decision may trust; infinity makes
    every `age > max_age` test treat it as stale.
    """
    age = now - stamp
    return age if age >= 0.0 else math.inf  # NaN >= 0 is False too


@dataclass(frozen=True)
class StampConfig:
    """
    Tolerances of the stamp checks; validated on construction.

    Attributes
    ----------
    max_future : float
        Seconds a stamp may lie ahead of the receiving clock (>= 0); further is refused.
        Accepted leads (transport jitter, a few ms of clock skew) are stored as now.
    max_offset : float
        A source whose running now - stamp (median of its recent arrivals) is beyond this
        (s, > 0), either way, is reported: a clock offset, or a very late stream.
    zero_is_unset : bool
        ROS semantics: a stamp of 0 is an unset header (refused as 'zero'), and a clock that
        reads 0 has not started (sim time before the first /clock: refused as 'no_clock').
        Off for clocks that legitimately start at 0 (bag replay, lock-step evaluation).

    """

    max_future: float
    max_offset: float = 0.5
    zero_is_unset: bool = False

    def __post_init__(self):
        if not (math.isfinite(self.max_future) and self.max_future >= 0.0):
            raise ValueError(f'max_future must be a finite number >= 0, got {self.max_future}')
        if not (math.isfinite(self.max_offset) and self.max_offset > 0.0):
            raise ValueError(f'max_offset must be a finite number > 0, got {self.max_offset}')


class StampVerdict(NamedTuple):
    """The result of one check: `cause` OK with the stamp to store, or why it was refused."""

    cause: str
    stamp: float  # min(stamp, now) when accepted, NaN when refused

    @property
    def accepted(self) -> bool:
        return self.cause == OK


class _Source:
    """What the guard knows of one source (topic)."""

    def __init__(self, camera: bool):
        self.camera = camera
        self.newest = -math.inf  # newest stamp accepted (as stored)
        self.last = (math.nan, math.nan)  # (raw, stored) of the last accepted stamp
        self.last_refused = math.nan  # raw stamp of the last refusal
        self.refused: Counter = Counter()
        self.lags: Deque[float] = deque(maxlen=OFFSET_WINDOW)  # now - stamp per arrival
        self.offset_reported = False


class StampGuard:
    """
    Checks every stamp of every input source; thread-safe.

    Parameters
    ----------
    config : StampConfig
        Tolerances.
    logger : logging.Logger
        Where the first refusal per source and cause, and offset changes, are logged.

    """

    def __init__(self, config: StampConfig,
                 logger: logging.Logger = _LOG):
        self.config = config
        self._log = logger
        self._sources: Dict[str, _Source] = {}
        self._lock = threading.Lock()

    def check(self, source: str, stamp: float, now: float, camera: bool = False,
              reoffer: bool = False) -> StampVerdict:
        """
        Check `stamp` (s) of a message from `source` that arrives at `now` (s).

        Parameters
        ----------
        source : str
            Topic (or other name) of the stream, named in logs and statistics.
        stamp, now : float
            The message's stamp and the receiving clock, in seconds.
        camera : bool
            The source is a camera (`stale_camera` considers only cameras).
        reoffer : bool
            The caller offers the same message again at times (the newest frames, at each
            worker step): a stamp equal to the last refused one is not counted again. An
            accepted stamp equal to the last one always gets the same stored stamp.

        Returns
        -------
        StampVerdict
            Accepted with the stamp to store, or refused with the cause.

        """
        stamp, now = float(stamp), float(now)
        cause = self._cause(stamp, now)
        with self._lock:
            state = self._sources.get(source)
            if state is None:
                state = self._sources[source] = _Source(camera)
            if stamp == state.last[0] and cause == OK:
                return StampVerdict(OK, state.last[1])
            if reoffer and stamp == state.last_refused:
                return StampVerdict(cause, math.nan)
            first = self._count(state, cause)
            offset = self._track(state, now - stamp) if cause in (OK, FUTURE) else None
            if cause == OK:
                state.last = (stamp, min(stamp, now))
                state.newest = max(state.newest, state.last[1])
            else:
                state.last_refused = stamp
            verdict = StampVerdict(cause, state.last[1] if cause == OK else math.nan)
        if first:  # a clock not yet started is normal for a moment under sim time
            self._log.log(logging.INFO if cause == NO_CLOCK else logging.WARNING,
                          'refusing stamps on %s: %s (the first of this kind on this topic; '
                          'every refusal is counted in the statistics)',
                          source, self._describe(cause, stamp, now))
        if offset is not None:
            self._report_offset(source, offset)
        return verdict

    def _cause(self, stamp: float, now: float) -> str:
        if not math.isfinite(now) or (self.config.zero_is_unset and now <= 0.0):
            return NO_CLOCK
        if not math.isfinite(stamp):
            return NONFINITE
        if stamp < 0.0:
            return NEGATIVE
        if stamp == 0.0 and self.config.zero_is_unset:
            return ZERO
        if stamp - now > self.config.max_future:
            return FUTURE
        return OK

    @staticmethod
    def _count(state: _Source, cause: str) -> bool:
        """Count a refusal; True when it is the first of its cause on this source."""
        if cause == OK:
            return False
        state.refused[cause] += 1
        return state.refused[cause] == 1

    def _track(self, state: _Source, lag: float) -> Optional[float]:
        """Add one arrival's lag; return the new offset estimate when its report changes."""
        state.lags.append(lag)
        if len(state.lags) < OFFSET_MIN_SAMPLES:
            return None
        offset = statistics.median(state.lags)
        beyond = abs(offset) > self.config.max_offset
        if beyond == state.offset_reported:
            return None
        state.offset_reported = beyond
        return offset

    def _describe(self, cause: str, stamp: float, now: float) -> str:
        if cause == NO_CLOCK:
            return (f"this node's clock reads {now} s: not started (use_sim_time without a "
                    '/clock publisher?)')
        if cause == NONFINITE:
            return f'stamp {stamp} is not finite'
        if cause == NEGATIVE:
            return f'stamp {stamp:.9f} s is negative'
        if cause == ZERO:
            return 'stamp is 0: header.stamp not set by the publisher (or a clock at its start)'
        return (f"stamp is {stamp - now:.3f} s ahead of this node's clock (tolerance "
                f'{self.config.max_future:g} s): clocks not synchronised, or use_sim_time set '
                'on one side only')

    def _report_offset(self, source: str, offset: float) -> None:
        if abs(offset) <= self.config.max_offset:
            self._log.info("stamps on %s are back within %g s of this node's clock",
                           source, self.config.max_offset)
        elif offset < 0.0:
            self._log.warning("clock offset: stamps on %s are %.3f s ahead of this node's "
                              'clock (median of recent messages)', source, -offset)
        else:
            self._log.warning("clock offset: stamps on %s are %.3f s behind this node's clock "
                              '(median of recent messages): a clock behind, or a late stream',
                              source, offset)

    # ---- queries --------------------------------------------------------------------------

    def newest(self, source: str) -> Optional[float]:
        """Return the newest stamp accepted from `source` (as stored), None if none."""
        with self._lock:
            state = self._sources.get(source)
            return None if state is None or state.newest == -math.inf else state.newest

    def stale_camera(self, now: float, max_age: float) -> Optional[Tuple[str, float]]:
        """Return (topic, age) of the camera whose newest frame is oldest, if beyond `max_age`."""
        with self._lock:
            cameras = [(stamp_age(now, s.newest), name) for name, s in self._sources.items()
                       if s.camera and s.newest > -math.inf]
        if not cameras:
            return None
        age, name = max(cameras)
        return (name, age) if age > max_age else None

    def offsets(self) -> Dict[str, float]:
        """Return each source's running now - stamp (s; negative: ahead), NaN until known."""
        with self._lock:
            return {name: (statistics.median(s.lags) if len(s.lags) >= OFFSET_MIN_SAMPLES
                           else math.nan) for name, s in self._sources.items()}

    def offset_problems(self) -> List[str]:
        """Return the sources whose clock offset is currently reported (beyond `max_offset`)."""
        with self._lock:
            return sorted(name for name, s in self._sources.items() if s.offset_reported)

    def refusals(self, source: Optional[str] = None) -> Dict[str, int]:
        """Return refusal counts by cause, of one source or summed over all."""
        total: Counter = Counter()
        with self._lock:
            for name, state in self._sources.items():
                if source is None or name == source:
                    total.update(state.refused)
        return dict(total)

    def stats(self) -> Dict[str, float]:
        """
        Return flat diagnostics values.

        'stamps_refused' (all), 'stamps_refused_<cause>' (all sources), and per source
        'stamps_refused_<cause>[<topic>]' and 'stamp_offset[<topic>]' (s, NaN until known).
        """
        out = {'stamps_refused': float(sum(self.refusals().values()))}
        out.update({f'stamps_refused_{c}': float(n) for c, n in self.refusals().items()})
        with self._lock:
            per_source = {name: dict(s.refused) for name, s in self._sources.items()}
        for name, counts in per_source.items():
            out.update({f'stamps_refused_{c}[{name}]': float(n) for c, n in counts.items()})
        out.update({f'stamp_offset[{name}]': v for name, v in self.offsets().items()})
        return out

    def forget(self) -> None:
        """Forget the newest stamps (a new episode); counts and offsets stay."""
        with self._lock:
            for state in self._sources.values():
                state.newest = -math.inf
                state.last, state.last_refused = (math.nan, math.nan), math.nan
