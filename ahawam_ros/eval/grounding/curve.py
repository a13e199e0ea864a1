"""
Success and grounding against training time, from a training run's saved checkpoints.

    ahawam eval-curve --run outputs/small_transfer_cube [--episodes 5] [--seeds 30]
                      [--task transfer_cube]

For every policy checkpoint of the run (`<run>/checkpoints/policy_step_*` of the joint stage,
`executor_step_*` of the executor stage, and the final `<run>/policy`; or those named by
`--checkpoints`), on held-out seeds: closed-loop success of the asynchronous runtime (`eval-sim`,
lock-step timing so that the figure does not depend on what else loads the machine) with its
68 % interval and the first-grasp distance, and the grounding figure of `eval-grounding` (the
held-out R^2 of each object's position from the first chunk, at the reset), on one task (a
multi-task run gets a curve per task: call it once per `--task`). The training time of
each checkpoint is summed from the run's `train_log.jsonl` (every stage, the executor stage's
context bank included), so the table reads as a learning curve: `curve.json` and `curve.md`
in `--out`.
"""

import argparse
from dataclasses import dataclass
import json
import math
from pathlib import Path
import re
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ahawam_ros.eval.closed_loop.cli import EvalOptions, evaluate_runtime
from ahawam_ros.eval.closed_loop.metrics import write_json
from ahawam_ros.eval.grounding.cli import evaluate as evaluate_grounding, GroundingOptions
from ahawam_ros.robot import FIRST_HELD_OUT_SEED
from ahawam_ros.sim.tasks import TASKS

CHECKPOINT_PATTERN = re.compile(r'(policy|executor)_step_(\d+)$')
FINAL = 'policy'  # the run's final policy directory
LOG_FILE = 'train_log.jsonl'


@dataclass(frozen=True)
class CurveOptions:
    """What `ahawam eval-curve` measures."""

    run: str
    episodes: int = 5
    seeds: int = 30
    checkpoints: Optional[Sequence[str]] = None
    first_seed: int = FIRST_HELD_OUT_SEED
    out: str = ''
    task: str = 'transfer_cube'

    def __post_init__(self):
        if self.episodes < 1 or self.seeds < 5:
            raise ValueError(f'need episodes >= 1 and seeds >= 5, got {self.episodes}, '
                             f'{self.seeds}')
        if self.task not in TASKS:
            raise ValueError(f'task must be one of {sorted(TASKS)}, got {self.task!r}')

    @property
    def out_dir(self) -> Path:
        """Where the curve is written (default: <run>/curve, or <run>/curve_insertion)."""
        default = 'curve' if self.task == 'transfer_cube' else f'curve_{self.task}'
        return Path(self.out) if self.out else Path(self.run) / default


def policy_checkpoints(run: Path) -> Dict[str, Tuple[str, int, Path]]:
    """
    Return {name: (stage, step, directory)} of a run's policy checkpoints in training order.

    The joint stage's `policy_step_*`, the executor stage's `executor_step_*`, then the
    final `<run>/policy` (stage 'final', step 0: its time is the whole run's).
    """
    found = []
    for path in (run / 'checkpoints').glob('*_step_*'):
        match = CHECKPOINT_PATTERN.search(path.name)
        if match and path.is_dir():
            found.append((match.group(1), int(match.group(2)), path))
    found.sort(key=lambda item: (item[0] != 'policy', item[1]))
    if (run / FINAL / 'config.json').is_file():
        found.append(('final', 0, run / FINAL))
    if not found:
        raise FileNotFoundError(f'{run}: no policy checkpoints under {run / "checkpoints"}')
    return {path.name if stage != 'final' else FINAL: (stage, step, path)
            for stage, step, path in found}


def training_minutes(log_rows: List[Dict[str, Any]],
                     batch_size: int) -> Dict[Tuple[str, int], float]:
    """
    Return {(stage, step): minutes of training up to it} from the log rows, in log order.

    A row covers the steps since the previous row of its stage at its `samples_per_s`
    (the joint stages count batches of `batch_size`, the executor stage chunks, its row
    `bank_seconds` adds the banking of the contexts); ('final', 0) is the whole run.
    A resumed run logs again from its checkpoint: a row whose step is not past the previous
    one of its stage rolls the clock back to the last row before it, and a stage's bank
    counts once, so the minutes are those of an uninterrupted run (the steps lost past the
    checkpoint and the rebuilt bank are not counted).
    """
    seconds, minutes = 0.0, {}
    done: List[Tuple[str, int, float]] = []  # (stage, step, seconds) of the rows kept
    for row in log_rows:
        stage, step = row['stage'], row['step']
        resumed = False
        while done and done[-1][0] == stage and done[-1][1] >= step:
            done.pop()  # steps the interrupted attempt ran past its last checkpoint
            resumed = True
        if resumed:
            seconds = done[-1][2] if done else 0.0
        previous = done[-1][1] if done and done[-1][0] == stage else 0
        batch = row.get('batch', batch_size)
        if row.get('samples_per_s', 0) > 0:
            seconds += (step - previous) * batch / row['samples_per_s']
        if previous == 0:  # the stage's first kept row: a resume's bank is not counted
            seconds += row.get('bank_seconds', 0.0)
        done.append((stage, step, seconds))
        minutes[(stage, step)] = seconds / 60.0
    minutes[('final', 0)] = seconds / 60.0
    return minutes


def _run_settings(run: Path) -> Dict[str, Any]:
    path = run / 'train_config.json'
    return json.loads(path.read_text()) if path.is_file() else {}


def evaluate_checkpoint(path: Path, options: CurveOptions) -> Dict[str, Any]:
    """Closed-loop success and the grounding R^2 of one checkpoint."""
    out = options.out_dir / path.name
    closed = evaluate_runtime(EvalOptions(
        checkpoint=str(path), episodes=options.episodes, mode='async', timing='replayed',
        seed=options.first_seed, task=options.task,
        out=str(out / 'eval_sim')))['modes']['async']
    grounding = evaluate_grounding(GroundingOptions(
        checkpoint=str(path), seeds=options.seeds, first_seed=options.first_seed,
        task=options.task, out=str(out / 'grounding')))['metrics']
    return {'success_rate': closed['success_rate'],
            'success_interval_68': closed['success_interval_68'],
            'successes': closed['successes'], 'episodes': closed['episodes'],
            'mean_max_reward': closed.get('mean_max_reward'),
            'first_grasp_distance_m': closed.get('first_grasp_distance_m'),
            'grounding_r2': {name: grounding['r2'][name]['policy']['mean']
                             for name in grounding['objects']},
            'grounding_r2_expert': {name: grounding['r2'][name]['expert']['mean']
                                    for name in grounding['objects']}}


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return format(value, spec)


def _r2_text(row: Dict[str, Any]) -> str:
    """Each object's grounding R^2 from the chunk, the expert's in brackets; '/' between."""
    policy, expert = row['grounding_r2'] or {}, row['grounding_r2_expert'] or {}
    if not policy:
        return '-'
    return ' / '.join(f"{_fmt(policy[name], '.2f')} ({_fmt(expert.get(name), '.2f')})"
                      for name in policy)


def format_markdown(rows: List[Dict[str, Any]]) -> str:
    """Return the curve as a markdown table."""
    objects = next((' / '.join(row['grounding_r2']) for row in rows if row['grounding_r2']),
                   'object')
    lines = ['| checkpoint | training min | success (async) | 68 % interval | max reward | '
             f'first-grasp distance (cm) | {objects} R^2 from chunk (expert) |',
             '|---|---|---|---|---|---|---|']
    for row in rows:
        low, high = row['success_interval_68']
        grasp_cm = (row['first_grasp_distance_m'] or {}).get('median')
        lines.append(
            f"| {row['checkpoint']} | {_fmt(row['training_minutes'], '.1f')} | "
            f"{row['successes']}/{row['episodes']} | [{low:.2f}, {high:.2f}] | "
            f"{_fmt(row['mean_max_reward'], '.2f')} | "
            f"{_fmt(None if grasp_cm is None else 100 * grasp_cm, '.1f')} | "
            f'{_r2_text(row)} |')
    return '\n'.join(lines)


def evaluate_curve(options: CurveOptions) -> List[Dict[str, Any]]:
    """Evaluate the chosen checkpoints of the run; write curve.json and curve.md."""
    run = Path(options.run)
    checkpoints = policy_checkpoints(run)
    if options.checkpoints:
        missing = sorted(set(options.checkpoints) - set(checkpoints))
        if missing:
            raise FileNotFoundError(f'{run}: no checkpoint(s) {missing}; saved: '
                                    f'{list(checkpoints)}')
        checkpoints = {name: checkpoints[name] for name in checkpoints
                       if name in options.checkpoints}
    settings = _run_settings(run)
    log = run / LOG_FILE
    rows_of_log = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    minutes = training_minutes(rows_of_log, settings.get('batch_size', 1))
    rows = []
    for name, (stage, step, path) in checkpoints.items():
        print(f'eval-curve: {path}', flush=True)
        row = {'checkpoint': name, 'stage': stage, 'step': step,
               'training_minutes': minutes.get((stage, step), math.nan),
               **evaluate_checkpoint(path, options)}
        rows.append(row)
        options.out_dir.mkdir(parents=True, exist_ok=True)
        write_json({'run': str(run), 'rows': rows}, options.out_dir / 'curve.json')
        (options.out_dir / 'curve.md').write_text(format_markdown(rows) + '\n')
    return rows


def parse_options(argv: Optional[Sequence[str]]) -> CurveOptions:
    """Parse the command line into CurveOptions."""
    parser = argparse.ArgumentParser(prog='ahawam eval-curve',
                                     description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--run', required=True, help='a training output directory')
    parser.add_argument('--episodes', type=int, default=5, help='closed-loop episodes (5)')
    parser.add_argument('--seeds', type=int, default=30, help='grounding seeds (30)')
    parser.add_argument('--checkpoints', nargs='+', metavar='NAME',
                        help='checkpoint names, e.g. policy_step_0003000 policy (default: all)')
    parser.add_argument('--first-seed', type=int, default=FIRST_HELD_OUT_SEED)
    parser.add_argument('--task', default='transfer_cube', choices=sorted(TASKS),
                        help='the task the checkpoints are scored on (transfer_cube)')
    parser.add_argument('--out', default='',
                        help='output directory (default: <run>/curve, <run>/curve_<task> for '
                             'a task other than transfer_cube)')
    args = parser.parse_args(argv)
    return CurveOptions(run=args.run, episodes=args.episodes, seeds=args.seeds,
                        checkpoints=args.checkpoints, first_seed=args.first_seed, out=args.out,
                        task=args.task)


def main(argv: Optional[List[str]] = None) -> int:
    """Run `ahawam eval-curve`; print the table."""
    try:
        options = parse_options(argv)
        rows = evaluate_curve(options)
    except (ValueError, FileNotFoundError) as exc:
        print(f'eval-curve: {exc}', file=sys.stderr)
        return 2
    print(format_markdown(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
