"""
`ahawam eval-bag`: replay recorded bags through the asynchronous runtime and compare commands.

    ahawam eval-bag BAG_OR_DIR --checkpoint CKPT [--out DIR] [--refresh-rate-hz HZ]
        [--executor-latency S] [--planner-latency S] [--execute-steps N] [--resize-images]
        [--mapping FILE] [--cameras NAME[=TOPIC],...] [--command-topic TOPIC,...] ...

Every bag (a rosbag2 directory, mcap or sqlite3, or a bare .mcap file; a directory means each
bag in it; its topics as a `TopicMapping` (--mapping YAML) or the default layout say), or
every episode of a LeRobot dataset directory (`dataset_source`), is
replayed on its own clock through the runtime the nodes run, built by the same assembly with
the same settings (see `replay`), and what it would have commanded at each control tick is
compared with the command recorded then (`metrics`). The output directory gets
`metrics.json` (every figure, per bag and pooled), `report.html` (headline table and plots)
and per bag its PNG plots and `trace.npz` (the per-tick series). It is written into a hidden
staging directory and renamed at the end: a failure leaves nothing behind. Bad bags and bad
settings end the command with a message naming the problem and exit code 2.
"""

from dataclasses import asdict
import json
import os
from pathlib import Path
import shutil
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from ahawam_ros.data.bag_files import BagError, find_bags
from ahawam_ros.data.features import FeatureConfig
from ahawam_ros.data.lerobot.meta import DatasetError, is_lerobot_dataset
from ahawam_ros.eval.bag.dataset_source import dataset_episodes, DatasetEpisode, DatasetSource
from ahawam_ros.eval.bag.metrics import figures, problems, ReplayTrace
from ahawam_ros.eval.bag.replay import BagReplay, EvalError
from ahawam_ros.eval.bag.report import headline, write_bag_plots, write_html
from ahawam_ros.eval.bag.settings import BagEvalConfig, config_from_args, parser
from ahawam_ros.eval.bag.stream import BagSource
from ahawam_ros.runtime.loading import load_policy
from ahawam_ros.runtime.orchestrator import warm_up
from ahawam_ros.runtime.policy_api import ChunkPolicy
import numpy as np
from tqdm import tqdm

METRICS_FILE = 'metrics.json'
REPORT_FILE = 'report.html'
TRACE_FILE = 'trace.npz'


Recording = Union[Path, DatasetEpisode]  # a bag, or an episode of a LeRobot dataset


def open_source(path: Recording, policy: ChunkPolicy, config: BagEvalConfig,
                features: Optional[FeatureConfig] = None) -> Union[BagSource, DatasetSource]:
    """Open a bag (or dataset episode) with its mapping, checked against the policy."""
    if isinstance(path, DatasetEpisode):
        source = DatasetSource(path, config.dataset_mapping())
    else:
        source = BagSource(Path(path), config.layout(features), config.overrides())
    joints = len(source.mapping.joint_names)
    if joints != policy.action_dim:
        source.close()
        raise EvalError(f'bag {path} has {joints} joints, the policy {policy.action_dim}')
    return source


def _set_task(policy: ChunkPolicy, task: str) -> None:
    if not hasattr(policy, 'set_task'):
        return
    try:
        policy.set_task(task)
    except ValueError as error:
        raise EvalError(f"the policy does not know the bag's task {task!r}: {error}") from error


def evaluate_bag(path: Recording, policy: ChunkPolicy, config: BagEvalConfig,
                 features: Optional[FeatureConfig] = None) -> ReplayTrace:
    """
    Replay one bag through a fresh runtime and return what it would have commanded.

    Parameters
    ----------
    path : Path or DatasetEpisode
        A rosbag2 directory, or an episode of a LeRobot dataset.
    policy : ChunkPolicy
        The policy; reset first, conditioned on the bag's task when it takes one.
    config : BagEvalConfig
        Settings.
    features : FeatureConfig, optional
        Topics and joints; the bag's recorded ones (or the default preset) when omitted.

    Raises
    ------
    BagError
        Missing topic, wrong type, empty or truncated bag, undecodable message.
    EvalError
        The policy and the bag do not fit (joints, image size, task) or the policy fails.

    """
    image_size = getattr(policy, 'image_size', None)
    with open_source(path, policy, config, features) as source:
        _set_task(policy, source.task)
        replay = BagReplay(policy, config.settings, config.timing(),
                           None if image_size is None else tuple(image_size),
                           config.resize_images)
        ticks = int(source.duration_ns * 1e-9 * config.settings.executor.control_rate_hz) + 1
        with tqdm(total=ticks, desc=path.name, unit='tick', leave=False,
                  disable=not config.progress) as bar:
            return replay.run(source, on_tick=bar.update)


def bag_labels(bags: Sequence[Recording], root: Path) -> List[str]:
    """Return a distinct file-name-safe label per bag: its path under `root`, '/' -> '__'."""
    labels = []
    for bag in bags:
        if isinstance(bag, DatasetEpisode):
            labels.append(bag.name)
            continue
        relative = bag.relative_to(root) if bag != root and root in bag.parents else None
        labels.append('__'.join(relative.parts) if relative else bag.name)
    return labels


def write_atomically(out: Path, build: Callable[[Path], None], force: bool = False) -> Path:
    """
    Build the directory `out` in a hidden staging directory beside it, then rename it.

    `build(staging)` writes the files. On any failure the staging directory is removed and
    `out` is untouched; with `force` an existing `out` is replaced only after success.
    """
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f'{out} exists: choose another --out or pass --force')
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f'.{out.name}.partial-{os.getpid()}'
    old = out.parent / f'.{out.name}.old-{os.getpid()}'
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        build(staging)
        if out.exists():
            out.rename(old)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old.exists() and not out.exists():
            old.rename(out)  # put back what --force was to replace
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out


def _save_trace(trace: ReplayTrace, path: Path) -> None:
    np.savez_compressed(
        path, tick_time=trace.tick_time, command=trace.command, is_hold=trace.is_hold,
        rate_limited=trace.rate_limited, clipped=trace.clipped,
        reason=trace.reason.astype(str), context_age=trace.context_age,
        chunk_id=trace.chunk_id, chunk_index=trace.chunk_index,
        recorded_time=trace.recorded_time, recorded=trace.recorded,
        joint_time=trace.joint_time, joints=trace.joints,
        joint_names=np.array(trace.joint_names))


def write_report(directory: Path, traces: Sequence[ReplayTrace], labels: Sequence[str],
                 results: Dict[str, Any]) -> None:
    """Write metrics.json, report.html and each bag's plots and trace into `directory`."""
    (directory / METRICS_FILE).write_text(json.dumps(results, indent=2) + '\n')
    plots = []
    for trace, label in zip(traces, labels):
        names = write_bag_plots(trace, results['bags'][label], directory / label)
        _save_trace(trace, directory / label / TRACE_FILE)
        plots.append((label, [f'{label}/{name}' for name in names]))
    rows = list(results['bags'].items())
    if len(traces) > 1:
        rows.append(('all bags', results['all']))
    write_html(directory / REPORT_FILE, 'AHA-WAM bag evaluation', rows, plots,
               results['settings'])


def run_eval(bags: Sequence[Recording], policy: ChunkPolicy, config: BagEvalConfig, out: Path,
             root: Optional[Path] = None, force: bool = False,
             settings: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """
    Evaluate `bags`, write the report to `out` (all or nothing) and return the figures.

    Every bag is opened and checked before any is replayed, so a bad bag fails fast; of a
    LeRobot dataset, the first episode (its mapping, joints and metadata are the others'), the
    others' rows and frames when they are replayed (decoded once). Either way a failure leaves
    no report.

    Returns
    -------
    dict
        'settings', 'bags' (label -> figures) and 'all' (figures pooled over the bags).

    """
    if not bags:
        raise BagError(f'no rosbag2 bags (directories with a metadata.yaml) under {root}')
    if Path(out).exists() and not force:
        raise FileExistsError(f'{out} exists: choose another --out or pass --force')
    checked = set()
    for bag in bags:  # a dataset's episodes share their metadata: the first is checked whole
        if isinstance(bag, DatasetEpisode):  # the others' rows and frames as they are read
            if bag.root in checked:
                continue
            checked.add(bag.root)
        open_source(bag, policy, config).close()
    warm_up(policy)  # as the nodes do before their first command: not charged to the bag
    first = bags[0]
    labels = bag_labels(bags, root or (first.root if isinstance(first, DatasetEpisode)
                                       else first.parent))
    traces = [evaluate_bag(bag, policy, config)
              for bag in tqdm(bags, desc='bags', unit='bag',
                              disable=not config.progress or len(bags) < 2)]
    results = {'settings': settings or asdict(config),
               'bags': {label: {**figures([trace]), 'inputs': trace.inputs}
                        for label, trace in zip(labels, traces)},
               'all': figures(traces)}
    write_atomically(Path(out), lambda staging: write_report(staging, traces, labels, results),
                     force)
    return results


def _print_figures(results: Dict[str, Any], out: Path) -> None:
    rows = list(results['bags'].items())
    if len(rows) > 1:
        rows.append(('all bags', results['all']))
    for label, values in rows:
        print(f'{label}:')
        for key, text in headline(values).items():
            print(f'  {key:<38} {text}')
    print(f'report: {out / REPORT_FILE}')


def run_problems(results: Dict[str, Any]) -> List[str]:
    """Return what makes the figures unusable, per bag (`bag_metrics.problems`), labelled."""
    bags = results['bags']
    return [f'{label}: {problem}' if len(bags) > 1 else problem
            for label, values in bags.items() for problem in problems(values)]


def main(argv: Optional[List[str]] = None) -> int:
    """
    Run `ahawam eval-bag`; return 0, or 2 with a one-line message.

    Exit code 2: a bad bag, setting or checkpoint (nothing written), or figures that are not
    usable (written, then named): non-finite chunks, or a bag where nothing executed.
    """
    args = parser().parse_args(argv)
    out = args.out or Path('outputs') / 'eval_bag' / args.bags.resolve().name
    try:
        config = config_from_args(args)
        bags = dataset_episodes(args.bags) if is_lerobot_dataset(args.bags) \
            else find_bags(args.bags)
        policy = load_policy(args.checkpoint, args.device)
        settings = {'bags': str(args.bags), 'checkpoint': args.checkpoint, 'device': args.device,
                    **asdict(config)}
        results = run_eval(bags, policy, config, out, args.bags, args.force, settings)
    except (BagError, DatasetError, EvalError, FileNotFoundError, FileExistsError,
            ValueError) as error:
        print(f'ahawam eval-bag: error: {error}', file=sys.stderr)
        return 2
    _print_figures(results, out)
    found = run_problems(results)
    if found:  # the report stays, for a look at what went wrong; the run fails
        print(f"ahawam eval-bag: error: {'; '.join(found)} (report: {out / REPORT_FILE})",
              file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
