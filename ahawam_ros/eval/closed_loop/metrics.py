"""
Figures of closed-loop evaluations: success intervals, latency percentiles, the mode table.

Pure functions over plain numbers; no simulator, no model.
"""

import json
import math
from pathlib import Path
from statistics import NormalDist
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ahawam_ros.robot import ARMS
import numpy as np

CONFIDENCE = 0.68  # the reported interval: about one standard error either side


def wilson_interval(successes: int, trials: int,
                    confidence: float = CONFIDENCE) -> Tuple[float, float]:
    """
    Return the Wilson score interval of a success rate.

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n
    successes, which matters for the few episodes a CPU evaluation affords.

    Parameters
    ----------
    successes : int
        k, successful episodes (0 <= k <= n).
    trials : int
        n, episodes; 0 gives the uninformative (0, 1).
    confidence : float
        Two-sided coverage in (0, 1); 0.68 by default.

    Returns
    -------
    (float, float)
        Lower and upper bound.

    """
    if not 0 <= successes <= trials:
        raise ValueError(f'need 0 <= successes <= trials, got {successes} of {trials}')
    if not 0.0 < confidence < 1.0:
        raise ValueError(f'confidence must be in (0, 1), got {confidence}')
    if trials == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    rate, z2 = successes / trials, z * z
    denominator = 1.0 + z2 / trials
    center = (rate + z2 / (2.0 * trials)) / denominator
    half = z / denominator * math.sqrt(rate * (1.0 - rate) / trials + z2 / (4.0 * trials ** 2))
    return max(0.0, center - half), min(1.0, center + half)


def latency_summary(seconds: Iterable[float]) -> Dict[str, float]:
    """Return p50 / p95 / p99 / max in milliseconds and the count; NaN without samples."""
    values = np.asarray([s for s in seconds if math.isfinite(s)], dtype=np.float64) * 1e3
    if values.size == 0:
        return {'p50': math.nan, 'p95': math.nan, 'p99': math.nan, 'max': math.nan, 'count': 0}
    p50, p95, p99 = (float(v) for v in np.percentile(values, [50.0, 95.0, 99.0]))
    return {'p50': p50, 'p95': p95, 'p99': p99, 'max': float(values.max()),
            'count': int(values.size)}


def summarize_mode(episodes: Sequence[Mapping[str, float]], plan_latencies: Sequence[float],
                   update_latencies: Sequence[float],
                   context_ages: Sequence[float]) -> Dict[str, object]:
    """
    Aggregate the episodes of one mode.

    Parameters
    ----------
    episodes : sequence of mapping
        Per episode: 'success' (bool), 'max_reward', 'command_rate_hz', 'chunk_rate_hz',
        'hold_fraction'; optionally 'first_grasp_distance_m' (NaN or None: no attempt) and
        'first_grasp_distances_m' (per arm).
    plan_latencies, update_latencies, context_ages : sequence of float
        Seconds, pooled over the episodes.

    Returns
    -------
    dict
        Success count, rate and its Wilson interval, means of the per-episode rates,
        latency / context-age percentiles (ms) and the first grasp attempts' distances.

    """
    count = len(episodes)
    successes = sum(bool(e['success']) for e in episodes)
    low, high = wilson_interval(successes, count)

    def mean(key: str) -> float:
        return float(np.mean([e[key] for e in episodes])) if episodes else math.nan

    return {'episodes': count, 'successes': successes,
            'success_rate': successes / count if count else math.nan,
            'success_interval_68': [low, high],
            'mean_max_reward': mean('max_reward'),
            'command_rate_hz': mean('command_rate_hz'),
            'chunk_rate_hz': mean('chunk_rate_hz'),
            'hold_fraction': mean('hold_fraction'),
            'plan_latency_ms': latency_summary(plan_latencies),
            'update_latency_ms': latency_summary(update_latencies),
            'context_age_ms': latency_summary(context_ages),
            'first_grasp_distance_m': grasp_summary(episodes),
            'first_grasp_distance_by_arm_m': {arm: grasp_summary(episodes, arm) for arm in ARMS}}


def grasp_summary(episodes: Sequence[Mapping[str, Any]],
                  arm: Optional[str] = None) -> Dict[str, float]:
    """
    Return the median / mean fingertip-to-object distance (m) at first grasp attempts.

    The episodes' figure (the nearer arm's), or with `arm` that arm's own attempts, then with
    'spread': the root of the summed variances of its (3,) grasp offsets (m): how much where
    it closes on the object varies (the scripted expert: 0.2 to 0.4 cm on Insertion's socket
    and peg and TransferCube's cube).
    """
    if arm is None:
        values = [e.get('first_grasp_distance_m') for e in episodes]
    else:
        values = [(e.get('first_grasp_distances_m') or {}).get(arm) for e in episodes]
    values = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not values:
        return {'median': math.nan, 'mean': math.nan, 'count': 0}
    out = {'median': float(np.median(values)), 'mean': float(np.mean(values)),
           'count': len(values)}
    if arm is not None:
        offsets = [(e.get('first_grasp_offsets_m') or {}).get(arm) for e in episodes]
        offsets = np.array([o for o in offsets if o is not None], np.float64).reshape(-1, 3)
        if len(offsets) >= 2:
            out['spread'] = float(np.sqrt(offsets.var(axis=0, ddof=1).sum()))
    return out


def _ms(summary: Mapping[str, float]) -> str:
    if not summary['count']:
        return '-'
    return f'{summary["p50"]:.0f}/{summary["p95"]:.0f}'


def _grasp_cm(row: Mapping[str, Any]) -> str:
    grasp = row.get('first_grasp_distance_m') or {'count': 0}
    return f'{100.0 * grasp["median"]:.1f}' if grasp['count'] else '-'


def format_table(modes: Mapping[str, Mapping[str, object]]) -> str:
    """
    Return one text table comparing modes (rows) on the figures of `summarize_mode`.

    Latency columns read 'p50/p95' in milliseconds; 'grasp cm' is the median fingertip-to-cube
    distance at the first grasp attempts ('-': no attempt).
    """
    header = (f'{"mode":<12}{"success":>9}{"rate [68% CI]":>20}{"max rew":>9}{"cmd Hz":>8}'
              f'{"chunk Hz":>9}{"holds":>7}{"plan ms":>10}{"update ms":>11}{"ctx age ms":>12}'
              f'{"grasp cm":>10}')
    lines: List[str] = [header, '-' * len(header)]
    for name, row in modes.items():
        low, high = row['success_interval_68']
        rate = f'{row["success_rate"]:.2f} [{low:.2f}, {high:.2f}]'
        lines.append(
            f'{name:<12}{row["successes"]:>5}/{row["episodes"]:<3}{rate:>20}'
            f'{row["mean_max_reward"]:>9.2f}{row["command_rate_hz"]:>8.1f}'
            f'{row["chunk_rate_hz"]:>9.1f}{row["hold_fraction"]:>7.2f}'
            f'{_ms(row["plan_latency_ms"]):>10}{_ms(row["update_latency_ms"]):>11}'
            f'{_ms(row["context_age_ms"]):>12}{_grasp_cm(row):>10}')
    return '\n'.join(lines)


def strict_json(value: Any) -> Any:
    """Replace NaN and infinities by None, recursively, so that a report is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def write_json(report: Mapping[str, Any], path: Path) -> Path:
    """Write `report` as indented strict JSON at `path` (parents created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(strict_json(dict(report)), indent=2) + '\n')
    return path
