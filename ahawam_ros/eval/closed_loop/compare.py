"""
Closed-loop evaluations side by side, seed by seed (`ahawam eval-compare`).

A seed places the objects alike in every run, so two evaluations on the same seeds pair up
episode by episode. At the 50 episodes a CPU affords, two success rates tell apart only
large effects; the seeds that only one of the two solves (the discordant pairs, tested by
the exact McNemar test) say whether a difference is more than the evaluation's noise.

Pure functions over `eval_sim.json` reports, ROS-free and simulator-free apart from the
placement of each seed (`placement.edge_distance`).
"""

import argparse
from dataclasses import dataclass
import json
import math
from pathlib import Path
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ahawam_ros.eval.closed_loop.metrics import wilson_interval, write_json
from ahawam_ros.eval.closed_loop.placement import format_edge_bins, success_by_edge_distance

REPORT_FILE = 'eval_sim.json'  # what `ahawam eval-sim` writes under its --out


@dataclass(frozen=True)
class Run:
    """One mode of one evaluation report: what to call it, its task and success per seed."""

    label: str
    task: str
    success: Mapping[int, bool]  # seed -> whether the episode succeeded


def _report_path(path: Path) -> Path:
    return path / REPORT_FILE if path.is_dir() else path


def split_spec(spec: str) -> Tuple[str, Optional[str]]:
    """Split 'PATH[:MODE]' into the path and the mode (None: not named)."""
    path, colon, mode = spec.rpartition(':')
    if colon and mode and '/' not in mode and path:
        return path, mode
    return spec, None


def load_run(spec: str, label: Optional[str] = None) -> Run:
    """
    Read one mode of an `eval_sim.json` report.

    Parameters
    ----------
    spec : str
        'PATH[:MODE]': the report or the directory `eval-sim --out` wrote it to, and the
        mode ('async', 'sync', 'planner-off'); the mode may be left out when the report
        holds one.
    label : str, optional
        What to call the run in tables; default the spec.

    Raises
    ------
    ValueError
        The file is missing or not an eval-sim report, the mode is not in it (or must be
        named), or an episode lacks its seed or outcome.

    """
    path_text, mode = split_spec(spec)
    path = _report_path(Path(path_text))
    if not path.is_file():
        raise ValueError(f'{spec}: no evaluation report at {path}')
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f'{path}: not JSON ({error})') from error
    if 'tasks' in report and 'modes' not in report:
        raise ValueError(f"{path}: a summary of several tasks; name one task's report "
                         f'({sorted(report["tasks"])} under the same directory)')
    modes = report.get('modes')
    if not isinstance(modes, dict) or not modes:
        raise ValueError(f'{path}: not an eval-sim report (no modes)')
    if mode is None:
        if len(modes) > 1:
            raise ValueError(f'{spec}: the report holds the modes {sorted(modes)}; '
                             f'name one as {path_text}:MODE')
        mode = next(iter(modes))
    if mode not in modes:
        raise ValueError(f'{spec}: no mode {mode!r} in the report (it has {sorted(modes)})')
    success = {}
    for episode in modes[mode].get('episode_results') or []:
        if 'seed' not in episode or 'success' not in episode:
            raise ValueError(f'{path}: an episode of {mode} without its seed or success')
        success[int(episode['seed'])] = bool(episode['success'])
    if not success:
        raise ValueError(f'{spec}: the mode {mode} holds no episodes')
    return Run(label or spec, str(report.get('task', 'transfer_cube')), success)


def mcnemar_p(only_first: int, only_second: int) -> float:
    """
    Return the exact two-sided McNemar p-value of the discordant pairs.

    Under the null hypothesis each discordant seed is as likely to favour either run:
    twice the binomial(n, 1/2) tail at the smaller count, at most 1 (1 without discordance).
    """
    if only_first < 0 or only_second < 0:
        raise ValueError(f'counts must be >= 0, got {only_first} and {only_second}')
    n = only_first + only_second
    tail = sum(math.comb(n, i) for i in range(min(only_first, only_second) + 1))
    return min(1.0, 2.0 * tail / 2.0 ** n)


def common_seeds(runs: Sequence[Run]) -> List[int]:
    """Return the seeds every run evaluated, sorted; refuse runs of different tasks."""
    tasks = sorted({run.task for run in runs})
    if len(tasks) > 1:
        raise ValueError(f'the runs evaluate different tasks ({", ".join(tasks)}): '
                         f'compare one task at a time')
    seeds = set.intersection(*(set(run.success) for run in runs))
    if not seeds:
        raise ValueError('the runs share no seed: pair evaluations of the same --seed range')
    return sorted(seeds)


def compare(runs: Sequence[Run]) -> Dict[str, Any]:
    """
    Return each run's figures on the seeds all of them share, against the first run.

    Each row: 'label', 'successes', 'episodes', 'interval_68', the success by distance to the
    placement box's edge; every row after the first also 'only_reference' and 'only_this'
    (seeds only the first run / only this run solves) and 'mcnemar_p'.
    """
    if len(runs) < 2:
        raise ValueError('compare needs at least two runs')
    seeds = common_seeds(runs)
    reference = runs[0]
    rows = []
    for run in runs:
        solved = [seed for seed in seeds if run.success[seed]]
        row = {'label': run.label, 'successes': len(solved), 'episodes': len(seeds),
               'interval_68': list(wilson_interval(len(solved), len(seeds))),
               'by_edge_distance': success_by_edge_distance(
                   [{'seed': seed, 'success': run.success[seed]} for seed in seeds], run.task)}
        if run is not reference:
            row['only_reference'] = sum(reference.success[s] and not run.success[s]
                                        for s in seeds)
            row['only_this'] = sum(run.success[s] and not reference.success[s] for s in seeds)
            row['mcnemar_p'] = mcnemar_p(row['only_reference'], row['only_this'])
        rows.append(row)
    left_out = {run.label: len(run.success) - len(seeds) for run in runs
                if len(run.success) > len(seeds)}
    return {'task': reference.task, 'seeds': seeds, 'left_out': left_out, 'runs': rows}


def format_comparison(result: Mapping[str, Any]) -> str:
    """Return the comparison as a table (the first run is the reference) and edge lines."""
    seeds = result['seeds']
    width = max(len(row['label']) for row in result['runs'])
    lines = [f'{result["task"]}, {len(seeds)} seeds in common ({seeds[0]}..{seeds[-1]}); '
             f'the first run is the reference',
             f'  {"run":<{width}}  success   68 % interval   only reference / only this   '
             f'McNemar p']
    for row in result['runs']:
        low, high = row['interval_68']
        line = (f'  {row["label"]:<{width}}  {row["successes"]:>3}/{row["episodes"]:<4}  '
                f'[{low:.2f}, {high:.2f}]')
        if 'mcnemar_p' in row:
            line += (f'    {row["only_reference"]:>3} / {row["only_this"]:<3}'
                     f'                 {row["mcnemar_p"]:.3f}')
        lines.append(line)
    for row in result['runs']:
        lines.append(f'  {row["label"]:<{width}}  by distance to the box\'s edge: '
                     f'{format_edge_bins(row["by_edge_distance"])}')
    for label, count in result['left_out'].items():
        lines.append(f'  {label}: {count} episode(s) on seeds the others lack, left out')
    return '\n'.join(lines)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Parse the command line of `ahawam eval-compare`."""
    parser = argparse.ArgumentParser(
        prog='ahawam eval-compare',
        description='Closed-loop evaluations side by side on their common seeds: successes, '
                    'the seeds only one run solves and the exact McNemar p against the first.')
    parser.add_argument('runs', nargs='+', metavar='REPORT[:MODE]',
                        help='an eval_sim.json (or the --out directory of eval-sim) and the '
                             'mode to read (async, sync, planner-off; optional when the report '
                             'holds one); the first is the reference')
    parser.add_argument('--labels', nargs='+', default=None,
                        help='names for the runs in the table, one per run')
    parser.add_argument('--out', default=None, help='also write the comparison as JSON here')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Print the comparison (and write it with --out); 2 on input the reports cannot pair."""
    args = parse_args(argv)
    labels = args.labels or [None] * len(args.runs)
    try:
        if len(labels) != len(args.runs):
            raise ValueError(f'{len(labels)} labels for {len(args.runs)} runs')
        result = compare([load_run(spec, label) for spec, label in zip(args.runs, labels)])
    except ValueError as error:
        print(f'ahawam eval-compare: error: {error}', file=sys.stderr)
        return 2
    print(format_comparison(result))
    if args.out:
        print(f'comparison: {write_json(result, Path(args.out)).resolve()}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
