"""
The report of a bag evaluation a person looks at: PNG plots and one HTML page embedding them.

Per bag: predicted vs recorded joint trajectories, one figure per arm (joints grouped by their
name prefix, `left_` / `right_`); error, context age and error by chunk index over time; the
planner and executor latency histograms. Plots use matplotlib's object API on the Agg canvas
(no pyplot, no global backend state). The page holds a short table of the headline figures
and the plots, by relative paths.

Shapes: T command ticks, A joints.
"""

import html
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ahawam_ros.eval.bag.metrics import compare, Comparison, ReplayTrace, ROLES, SEAM
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

RECORDED, PREDICTED, MEASURED, HOLD = 'black', 'tab:blue', '0.55', 'tab:red'


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=90)


def arm_groups(joint_names: Sequence[str]) -> List[Tuple[str, List[int]]]:
    """Group joint indices by name prefix ('left_waist' -> 'left'), in first-seen order."""
    groups: Dict[str, List[int]] = {}
    for i, name in enumerate(joint_names):
        groups.setdefault(name.split('_')[0] if '_' in name else 'joints', []).append(i)
    return list(groups.items())


def _hold_spans(trace: ReplayTrace) -> List[Tuple[float, float]]:
    """Return the (start, end) times of runs of consecutive hold ticks."""
    spans: List[Tuple[float, float]] = []
    half = 0.5 * trace.control_period
    for t, hold in zip(trace.tick_time, trace.is_hold):
        if not hold:
            continue
        if spans and t - spans[-1][1] <= trace.control_period + 1e-9:
            spans[-1] = (spans[-1][0], t)
        else:
            spans.append((t, t))
    return [(start - half, end + half) for start, end in spans]


def plot_arm(trace: ReplayTrace, comparison: Comparison, arm: str, joints: Sequence[int],
             path: Path) -> None:
    """Plot recorded, would-be and measured positions of the `joints` of one arm."""
    figure = Figure(figsize=(10.0, 1.5 * len(joints) + 0.8), layout='constrained')
    axes = figure.subplots(len(joints), 1, sharex=True, squeeze=False)[:, 0]
    spans = _hold_spans(trace)
    for ax, j in zip(axes, joints):
        ax.plot(trace.joint_time, trace.joints[:, j], color=MEASURED, lw=0.8, ls=':',
                label='measured')
        ax.plot(trace.recorded_time, trace.recorded[:, j], color=RECORDED, lw=1.2,
                label='recorded command')
        ax.plot(trace.tick_time, trace.command[:, j], color=PREDICTED, lw=1.0,
                label='would command')
        for start, end in spans:
            ax.axvspan(start, end, color=HOLD, alpha=0.08, lw=0)
        errors = np.abs(comparison.error[:, j])
        mae = float(np.nanmean(errors)) if np.isfinite(errors).any() else float('nan')
        ax.set_ylabel(trace.joint_names[j].removeprefix(f'{arm}_'), fontsize='small')
        ax.text(0.995, 0.04, f'MAE {mae:.4f}', transform=ax.transAxes, ha='right',
                fontsize='x-small')
        ax.grid(alpha=0.3)
    axes[0].legend(loc='upper left', ncol=3, fontsize='x-small')
    axes[-1].set_xlabel('bag time (s); red: holds')
    figure.suptitle(f'{trace.name}: {arm} arm')
    _save(figure, path)


def plot_error(trace: ReplayTrace, comparison: Comparison, figures: Dict[str, Any],
               path: Path) -> None:
    """Plot |error| over time (seams marked), context age, and error by chunk index."""
    figure = Figure(figsize=(10.0, 8.0), layout='constrained')
    error_ax, age_ax, step_ax = figure.subplots(3, 1)
    mean_error = np.mean(np.abs(comparison.error), axis=1)  # (T,)
    error_ax.plot(trace.tick_time, mean_error, color=PREDICTED, lw=1.0)
    seams = comparison.jump_kind == SEAM
    error_ax.plot(trace.tick_time[seams], mean_error[seams], 'o', ms=3, color='tab:orange',
                  label='first tick of a new chunk')
    error_ax.set(ylabel='mean |error| over joints', xlabel='bag time (s)')
    error_ax.legend(loc='upper right', fontsize='x-small')
    age_ax.plot(trace.tick_time, 1e3 * trace.context_age, color='tab:green', lw=1.0)
    age_ax.set(ylabel='context age (ms)', xlabel='bag time (s)')
    means = [np.nan if v is None else v for v in figures['chunk_step_mae']]
    step_ax.bar(np.arange(len(means)), means, color=PREDICTED)
    step_ax.set_xlim(-0.5, len(means) - 0.5)
    step_ax.set(ylabel='mean |error|', xlabel='index of the executed action in its chunk')
    for ax in (error_ax, age_ax, step_ax):
        ax.grid(alpha=0.3)
    figure.suptitle(f'{trace.name}: error, context age, error along the chunk')
    _save(figure, path)


def plot_latency(trace: ReplayTrace, path: Path) -> None:
    """Histogram the measured planner and executor latencies (ms), the spent ones marked."""
    figure = Figure(figsize=(10.0, 3.5), layout='constrained')
    for ax, role in zip(figure.subplots(1, 2), ROLES):
        measured = 1e3 * trace.measured[role]
        if measured.size:
            ax.hist(measured, bins=min(40, max(5, measured.size // 3)), color='tab:purple')
            spent = float(np.median(1e3 * trace.simulated[role]))
            ax.axvline(spent, color='black', ls='--', lw=1.0, label=f'spent p50 {spent:.1f} ms')
            ax.legend(fontsize='x-small')
        ax.set(title=f'{role} ({measured.size} calls)', xlabel='measured latency (ms)',
               ylabel='calls')
        ax.grid(alpha=0.3)
    _save(figure, path)


def write_bag_plots(trace: ReplayTrace, figures: Dict[str, Any], directory: Path) -> List[str]:
    """Write every plot of one bag into `directory`; return their file names."""
    directory.mkdir(parents=True, exist_ok=True)
    comparison = compare(trace)
    names = []
    for arm, joints in arm_groups(trace.joint_names):
        names.append(f'joints_{arm}.png')
        plot_arm(trace, comparison, arm, joints, directory / names[-1])
    names += ['error.png', 'latency.png']
    plot_error(trace, comparison, figures, directory / 'error.png')
    plot_latency(trace, directory / 'latency.png')
    return names


def _number(value: Optional[float], scale: float = 1.0, digits: int = 4) -> str:
    return '-' if value is None else f'{scale * value:.{digits}g}'


def headline(figures: Dict[str, Any]) -> Dict[str, str]:
    """Return the headline figures of one row of the table, formatted."""
    seam, within = figures['seam_jump'], figures['within_chunk_jump']
    age = figures['context_age']
    latency = figures['latency']
    holds = ', '.join(f'{k} {v}' for k, v in figures['holds'].items()) or '-'
    share = figures['executed_share']
    return {
        'executed ticks': f"{figures['executing_ticks']} / {figures['ticks']} ("
                          f'{_number(share, 100.0, 3)} %)',
        'MAE (executed ticks)': _number(figures['mae_mean']),
        'RMSE (executed ticks)': _number(figures['rmse_mean']),
        'compared (executed, matched)': str(figures['compared_ticks']),
        'non-finite chunks / actions':
            f"{figures['nonfinite_chunks']} / {figures['nonfinite_actions']}",
        'seam jump mean (within chunk)': f"{_number(seam['mean'])} ({_number(within['mean'])})",
        'rate-limited ticks': str(figures['rate_limited_ticks']),
        'context age p50 / p95 (ms)': f"{_number(age['p50'], 1e3)} / {_number(age['p95'], 1e3)}",
        'planner / executor latency p50 (ms)':
            f"{_number(latency['planner']['simulated']['p50'], 1e3)} / "
            f"{_number(latency['executor']['simulated']['p50'], 1e3)}",
        'holds': holds,
        **_inputs(figures.get('inputs')),
    }


def _inputs(inputs: Optional[Dict[str, Any]]) -> Dict[str, str]:
    """Return the resolved input topics and the joint merge figures of one bag ('-': none)."""
    if not inputs:
        return {'inputs': '-', 'merged joint samples': '-'}
    cameras = ', '.join(f'{name} {topic}' for name, topic in inputs['cameras'].items())
    topics = (f"{cameras}; joint states {' '.join(inputs['joint_states'])}; commands "
              f"{' '.join(inputs['commands'])}")
    merge = '; '.join(
        f"{role}: {m['dropped']} dropped for skew > {inputs['max_skew_s']:g} s, max skew "
        f"{m['max_skew_ms']:.1f} ms, {m['out_of_range']} outside the limits"
        for role, m in inputs.get('merge', {}).items())  # a dataset's vectors are not merged
    return {'inputs': topics, 'merged joint samples': merge or '-'}


def _table(rows: Sequence[Tuple[str, Dict[str, Any]]]) -> str:
    columns = list(headline(rows[0][1]))
    head = ''.join(f'<th>{html.escape(c)}</th>' for c in ['bag'] + columns)
    body = []
    for name, figures in rows:
        cells = [name] + list(headline(figures).values())
        body.append('<tr>' + ''.join(f'<td>{html.escape(c)}</td>' for c in cells) + '</tr>')
    return f'<table><tr>{head}</tr>{"".join(body)}</table>'


def write_html(path: Path, title: str, rows: Sequence[Tuple[str, Dict[str, Any]]],
               plots: Sequence[Tuple[str, Sequence[str]]], settings: Dict[str, Any]) -> None:
    """
    Write the report page.

    Parameters
    ----------
    path : Path
        The HTML file.
    title : str
        Page title.
    rows : sequence of (str, dict)
        Table rows: a label and the figures of a bag (or of all bags).
    plots : sequence of (str, sequence of str)
        Per bag: its name and its plots' paths relative to the page.
    settings : dict
        The evaluation settings, listed under the table.

    """
    style = ('body{font-family:sans-serif;margin:2em;max-width:1100px}'
             'table{border-collapse:collapse;font-size:0.9em}'
             'td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}'
             'td:first-child,th:first-child{text-align:left}img{max-width:100%}')
    listing = ''.join(f'<li>{html.escape(str(k))}: {html.escape(str(v))}</li>'
                      for k, v in settings.items())
    sections = []
    for name, images in plots:
        tags = ''.join(f'<p><img src="{html.escape(src)}" alt="{html.escape(src)}"></p>'
                       for src in images)
        sections.append(f'<h2>{html.escape(name)}</h2>{tags}')
    path.write_text(
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{_table(rows)}'
        '<p>Errors are would-command minus recorded command, in joint units (rad; grippers '
        'normalised 0..1), over the executed ticks only: a hold repeats the last command and '
        'is not counted (metrics.json keeps the MAE of the holds apart); jumps are the '
        'largest per-joint command change between two ticks (at most max_step: a '
        'rate-limited tick jumps exactly that). All figures are in metrics.json.</p>'
        f'<details><summary>settings</summary><ul>{listing}</ul></details>'
        f'{"".join(sections)}</body></html>\n')
