"""
Compare what the replayed runtime would have commanded with what the bag says was commanded.

Each command tick is matched with the recorded command nearest in time, within half a control
period (ticks without one are not compared). Figures, per bag or pooled over bags:

- per-joint MAE and RMSE of (would-have-commanded - recorded), over the EXECUTED ticks only
  (those that sent an action of a chunk), beside the share of ticks that executed: a hold
  repeats the last command, which tracks a slow recording well and would flatter a policy
  that never produced a usable chunk (the hold ticks' own MAE is kept apart, `hold_mae_mean`);
- non-finite chunks (NaN / inf from the policy, refused by the executor) and non-finite
  actions, counted: any of them makes the evaluation fail (`problems`);
- error by index within the chunk executed (does the error grow along a chunk?);
- seam jumps: the largest per-joint |command change| between two consecutive executing ticks
  from different chunks, beside the same within one chunk, and the recorded commands' own step
  (what a smooth controller does per tick);
- context age at each command, planner and executor latencies (measured and spent), hold
  counts by reason, ticks the safety filter rate-limited or clipped, and the planner / chunk
  outcome counts.

Shapes: T command ticks, N recorded commands, J joint states, A joints, K chunk length.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ahawam_ros.runtime.safety import HoldReason
import numpy as np

SEAM, WITHIN = 1, 2  # kinds of consecutive executing tick pairs
NONFINITE_CHUNK = 'nonfinite_chunk'  # ExecutorCore.chunk_results key
NONFINITE_ACTION = HoldReason.NONFINITE_ACTION.value
ROLES = ('planner', 'executor')


@dataclass
class ReplayTrace:
    """
    What replaying one bag produced; times in seconds from the bag's first message.

    Attributes
    ----------
    name : str
        The bag's directory name.
    joint_names : tuple of str
        A names.
    tick_time : np.ndarray
        (T,) command tick times.
    command : np.ndarray
        (T, A) what would have been commanded; NaN rows where nothing would have been sent.
    is_hold : np.ndarray
        (T,) bool, the command holds.
    clipped, rate_limited : np.ndarray
        (T,) bool, the safety filter clipped the action to the joint limits / clamped its step.
    reason : np.ndarray
        (T,) str, the `HoldReason` value ('ok' when executing).
    context_age : np.ndarray
        (T,) seconds since the observation of the context behind the command (NaN: none).
    chunk_id : np.ndarray
        (T,) int, number of the accepted chunk executed (1, 2, ...); -1 for holds.
    chunk_index : np.ndarray
        (T,) int, index within that chunk of the action executed; -1 for holds.
    recorded_time, recorded : np.ndarray
        (N,) times and (N, A) values of the recorded commands.
    joint_time, joints : np.ndarray
        (J,) times and (J, A) values of the measured joint states.
    measured, simulated : dict of str -> np.ndarray
        Latencies (s) per call under 'planner' and 'executor'.
    holds, planner_results, chunk_results : dict of str -> int
        Hold reasons, planner refresh outcomes, chunk computation outcomes.
    chunk_len : int
        K.
    control_period : float
        Seconds between command ticks.

    """

    name: str
    joint_names: Tuple[str, ...]
    tick_time: np.ndarray
    command: np.ndarray
    is_hold: np.ndarray
    clipped: np.ndarray
    rate_limited: np.ndarray
    reason: np.ndarray
    context_age: np.ndarray
    chunk_id: np.ndarray
    chunk_index: np.ndarray
    recorded_time: np.ndarray
    recorded: np.ndarray
    joint_time: np.ndarray
    joints: np.ndarray
    measured: Dict[str, np.ndarray]
    simulated: Dict[str, np.ndarray]
    holds: Dict[str, int]
    planner_results: Dict[str, int]
    chunk_results: Dict[str, int]
    chunk_len: int
    control_period: float
    inputs: Dict[str, Any] = field(default_factory=dict)  # resolved topics, merge figures


class Comparison(NamedTuple):
    """Per-tick comparison of one trace (NaN where a tick was not compared)."""

    recorded: np.ndarray  # (T, A) recorded command matched to each tick
    error: np.ndarray  # (T, A) command - recorded
    jump: np.ndarray  # (T,) max over joints of |command[t] - command[t - 1]|
    jump_kind: np.ndarray  # (T,) SEAM, WITHIN, or 0 (a hold on either side, or the first)
    recorded_step: np.ndarray  # (T,) max over joints of |recorded[t] - recorded[t - 1]|


def match_recorded(trace: ReplayTrace) -> np.ndarray:
    """Return (T, A) the recorded command nearest each tick within half a period, else NaN."""
    ticks, times = trace.tick_time, trace.recorded_time
    out = np.full((len(ticks), len(trace.joint_names)), np.nan)
    if len(times) == 0 or len(ticks) == 0:
        return out
    after = np.clip(np.searchsorted(times, ticks), 0, len(times) - 1)  # (T,)
    before = np.clip(after - 1, 0, len(times) - 1)
    nearest = np.where(np.abs(times[before] - ticks) <= np.abs(times[after] - ticks),
                       before, after)  # ties go to the earlier command, the one executing
    close = np.abs(times[nearest] - ticks) <= 0.5 * trace.control_period + 1e-9
    out[close] = trace.recorded[nearest[close]]
    return out


def compare(trace: ReplayTrace) -> Comparison:
    """Match, difference and classify the ticks of one trace."""
    recorded = match_recorded(trace)
    error = trace.command - recorded  # (T, A)
    jump = np.full(len(trace.tick_time), np.nan)
    step = np.full(len(trace.tick_time), np.nan)
    kind = np.zeros(len(trace.tick_time), np.int64)
    if len(jump) > 1:
        jump[1:] = np.max(np.abs(np.diff(trace.command, axis=0)), axis=1)  # NaN if unsent
        step[1:] = np.max(np.abs(np.diff(recorded, axis=0)), axis=1)
        ids = trace.chunk_id
        executing = (ids[1:] >= 0) & (ids[:-1] >= 0)
        kind[1:] = np.where(executing, np.where(ids[1:] != ids[:-1], SEAM, WITHIN), 0)
    return Comparison(recorded, error, jump, kind, step)


def summary(values: np.ndarray) -> Dict[str, Optional[float]]:
    """Return count, mean, p50, p95 and max of the finite `values` (None when there are none)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {'count': 0, 'mean': None, 'p50': None, 'p95': None, 'max': None}
    p50, p95 = np.percentile(values, [50.0, 95.0])
    return {'count': int(values.size), 'mean': float(values.mean()), 'p50': float(p50),
            'p95': float(p95), 'max': float(values.max())}


def _counts(dicts: Sequence[Dict[str, int]]) -> Dict[str, int]:
    total: Counter = Counter()
    for counts in dicts:
        total.update(counts)
    return dict(sorted(total.items()))


def _chunk_step_error(abs_error: np.ndarray, index: np.ndarray,
                      chunk_len: int) -> Tuple[List[Optional[float]], List[int]]:
    """Mean |error| over joints and ticks by index within the chunk; (K,) means and counts."""
    means: List[Optional[float]] = []
    counts: List[int] = []
    for k in range(chunk_len):
        rows = abs_error[index == k]
        rows = rows[np.all(np.isfinite(rows), axis=1)]
        counts.append(int(len(rows)))
        means.append(float(rows.mean()) if len(rows) else None)
    return means, counts


def figures(traces: Sequence[ReplayTrace]) -> Dict[str, Any]:
    """
    Compute every figure of one bag, or pooled over several bags.

    Parameters
    ----------
    traces : sequence of ReplayTrace
        Replays of one policy (same joints and chunk length).

    Returns
    -------
    dict
        JSON-ready figures (None where undefined); see the module docstring.

    """
    if not traces:
        raise ValueError('figures of no traces')
    names = traces[0].joint_names
    comparisons = [compare(trace) for trace in traces]

    def pooled(get) -> np.ndarray:
        return np.concatenate([get(trace, comparison)
                               for trace, comparison in zip(traces, comparisons)])

    error = pooled(lambda t, c: c.error)  # (T, A)
    finite = np.all(np.isfinite(error), axis=1)  # (T,) sent and matched to a recorded command
    executing = pooled(lambda t, c: ~t.is_hold)
    compared = finite & executing  # (T,) the ticks the error figures count
    sent = pooled(lambda t, c: np.all(np.isfinite(t.command), axis=1))
    jump, kind = pooled(lambda t, c: c.jump), pooled(lambda t, c: c.jump_kind)
    abs_error = np.abs(error[compared])  # (C, A)
    mae = abs_error.mean(axis=0) if len(abs_error) else np.full(len(names), np.nan)
    rmse = np.sqrt((abs_error ** 2).mean(axis=0)) if len(abs_error) else mae
    step_mae, step_count = _chunk_step_error(np.abs(error), pooled(lambda t, c: t.chunk_index),
                                             traces[0].chunk_len)
    holds = _counts([t.holds for t in traces])
    chunk_results = _counts([t.chunk_results for t in traces])
    return _finite({
        'bags': [trace.name for trace in traces],
        'ticks': int(len(compared)), 'sent_ticks': int(sent.sum()),
        'executing_ticks': int(executing.sum()),
        'executed_share': float(executing.mean()) if len(executing) else None,
        'hold_ticks': int((sent & ~executing).sum()),
        'compared_ticks': int(compared.sum()),
        'unmatched_ticks': int((executing & ~finite).sum()),
        'nonfinite_chunks': int(chunk_results.get(NONFINITE_CHUNK, 0)),
        'nonfinite_actions': int(holds.get(NONFINITE_ACTION, 0)),
        'chunks_computed': int(sum(len(t.measured['executor']) for t in traces)),
        'rate_limited_ticks': int(pooled(lambda t, c: t.rate_limited).sum()),
        'clipped_ticks': int(pooled(lambda t, c: t.clipped).sum()),
        'duration_s': float(sum(t.tick_time[-1] - t.tick_time[0] if len(t.tick_time) else 0.0
                                for t in traces)),
        'joint_names': list(names),
        'mae': dict(zip(names, mae.tolist())), 'rmse': dict(zip(names, rmse.tolist())),
        'mae_mean': float(np.mean(mae)),
        'rmse_mean': float(np.sqrt(np.mean(abs_error ** 2))) if len(abs_error) else None,
        'hold_mae_mean': summary(np.abs(error[finite & ~executing]).mean(axis=1))['mean'],
        'chunk_step_mae': step_mae, 'chunk_step_count': step_count,
        'seam_jump': summary(jump[kind == SEAM]),
        'within_chunk_jump': summary(jump[kind == WITHIN]),
        'recorded_step': summary(pooled(lambda t, c: c.recorded_step)),
        'context_age': summary(pooled(lambda t, c: t.context_age)[sent]),
        'latency': {role: {'measured': summary(pooled(lambda t, c: t.measured[role])),
                           'simulated': summary(pooled(lambda t, c: t.simulated[role]))}
                    for role in ROLES},
        'holds': holds,
        'planner_results': _counts([t.planner_results for t in traces]),
        'chunk_results': chunk_results,
    })


def problems(values: Dict[str, Any]) -> List[str]:
    """
    Return what makes the figures of a bag (or of all bags) unusable; empty when sound.

    Non-finite chunks or actions mean a broken policy, whatever its error on the other ticks;
    no executed tick means no error figure at all (every command was a hold).
    """
    found = []
    if values['nonfinite_chunks'] or values['nonfinite_actions']:
        found.append(f"the policy produced {values['nonfinite_chunks']} non-finite chunks (of "
                     f"{values['chunks_computed']} computed) and {values['nonfinite_actions']} "
                     'non-finite actions (NaN or inf: refused, the robot would have held)')
    if not values['executing_ticks']:
        holds = ', '.join(f'{k} {v}' for k, v in values['holds'].items()) or 'none'
        found.append(f"nothing executed: 0 of {values['ticks']} command ticks sent an action "
                     f'of a chunk (holds: {holds}), so there is no error to report; latencies '
                     'too long for the bag? (measured ones vary with the load: see '
                     '--planner-latency, --executor-latency)')
    return found


def _finite(value: Any) -> Any:
    """Replace NaN / inf floats by None, recursively (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
