"""
`ahawam eval-bag`: replay recorded bags through the asynchronous runtime and compare commands.

    ahawam eval-bag BAG_OR_DIR --checkpoint CKPT [--out DIR] [--planner-rate HZ]
        [--executor-latency S] [--planner-latency S] [--execute-steps N] [--resize-images] ...

Every bag (a rosbag2 directory, mcap or sqlite3; a directory of bags means each of them) is
replayed on its own clock through `PlannerCore` + `ExecutorCore`, the cores the nodes run
(see `bag_replay`), and what the runtime would have commanded at each control tick is
compared with the command recorded then (`bag_metrics`). The output directory gets
`metrics.json` (every figure, per bag and pooled), `report.html` (headline table and plots)
and per bag its PNG plots and `trace.npz` (the per-tick series). It is written into a hidden
staging directory and renamed at the end: a failure leaves nothing behind. Bad bags and bad
settings end the command with a message naming the problem and exit code 2.
"""

import argparse
from dataclasses import asdict, dataclass, replace
import json
import math
import os
from pathlib import Path
import shutil
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ahawam_ros import robot
from ahawam_ros.data.bag_reader import BagError, find_bags, resolve_features
from ahawam_ros.data.features import FeatureConfig
from ahawam_ros.eval.bag_metrics import figures, ReplayTrace
from ahawam_ros.eval.bag_replay import BagReplay, EvalError, ReplayTiming
from ahawam_ros.eval.bag_stream import BagSource
from ahawam_ros.eval.report import headline, write_bag_plots, write_html
from ahawam_ros.runtime.chunk_scheduler import BlendMode, SchedulerConfig
from ahawam_ros.runtime.executor_core import ExecutorConfig
from ahawam_ros.runtime.loading import load_policy
from ahawam_ros.runtime.policy_api import ChunkPolicy
from ahawam_ros.runtime.safety import SafetyConfig
import numpy as np
from tqdm import tqdm

METRICS_FILE = 'metrics.json'
REPORT_FILE = 'report.html'
TRACE_FILE = 'trace.npz'


@dataclass(frozen=True)
class BagEvalConfig:
    """
    Settings of a bag evaluation; validated on construction. Defaults are the nodes'.

    Attributes
    ----------
    planner_rate_hz : float
        Planner refresh timer rate.
    control_rate_hz : float
        Command timer rate; 0 uses the policy's (1 / control_period).
    chunk_rate_hz : float
        Chunk timer rate of the executor; 0 uses the control rate.
    execute_steps : int
        Compute a new chunk once this many actions of the newest one are due (0: always).
    planner_latency, executor_latency : float or None
        Seconds each `plan` / `predict_chunk` call takes in simulated time; None spends the
        measured duration of the real call.
    blend : str
        Seam blending: 'none', 'linear' or 'weighted'.
    blend_steps : int
        Crossfade length (control steps) of the linear blend.
    max_step : float
        Largest change of a joint command per tick (safety filter).
    max_context_age, max_observation_age, max_image_age : float
        Seconds after which a context, joint state or frame is stale.
    resize_images : bool
        Resize frames to the policy's input size (cv2 INTER_AREA) instead of failing.
    cameras : tuple of str
        Cameras in the policy's view order; empty uses the bag's recorded ones.
    command_topic : str
        Recorded command topic; empty uses /joint_commands, else /joint_trajectory.
    progress : bool
        Show progress bars (tqdm).

    """

    planner_rate_hz: float = 4.0
    control_rate_hz: float = 0.0
    chunk_rate_hz: float = 0.0
    execute_steps: int = 8
    planner_latency: Optional[float] = None
    executor_latency: Optional[float] = None
    blend: str = BlendMode.LINEAR.value
    blend_steps: int = 4
    max_step: float = 0.05
    max_context_age: float = 1.5
    max_observation_age: float = 0.2
    max_image_age: float = 0.5
    resize_images: bool = False
    cameras: Tuple[str, ...] = ()
    command_topic: str = ''
    progress: bool = True

    def __post_init__(self):
        object.__setattr__(self, 'cameras', tuple(self.cameras))
        checks = {'planner_rate_hz': self.planner_rate_hz > 0.0,
                  'control_rate_hz': self.control_rate_hz >= 0.0,
                  'chunk_rate_hz': self.chunk_rate_hz >= 0.0,
                  'max_step': self.max_step > 0.0,
                  'max_context_age': self.max_context_age > 0.0,
                  'max_observation_age': self.max_observation_age > 0.0,
                  'max_image_age': self.max_image_age > 0.0}
        for name, ok in checks.items():
            value = getattr(self, name)
            if not (ok and math.isfinite(value)):
                raise ValueError(f'BagEvalConfig.{name}: {value!r} is out of range')
        for name in ('planner_latency', 'executor_latency'):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f'BagEvalConfig.{name}: {value!r} must be None or >= 0 s')
        for name in ('execute_steps', 'blend_steps'):
            if getattr(self, name) < 0:
                raise ValueError(f'BagEvalConfig.{name}: {getattr(self, name)!r} must be >= 0')
        if self.blend not in [mode.value for mode in BlendMode]:
            raise ValueError(f'BagEvalConfig.blend: {self.blend!r}; valid: '
                             f'{[mode.value for mode in BlendMode]}')
        if self.command_topic and not self.command_topic.startswith('/'):
            raise ValueError(f'BagEvalConfig.command_topic: {self.command_topic!r} must be '
                             'absolute')

    def timing(self, policy: ChunkPolicy) -> ReplayTiming:
        """Return the timer periods and latencies for `policy`."""
        control_rate = self.control_rate_hz or 1.0 / policy.control_period
        return ReplayTiming(control_period=1.0 / control_rate,
                            chunk_period=1.0 / (self.chunk_rate_hz or control_rate),
                            planner_period=1.0 / self.planner_rate_hz,
                            planner_latency=self.planner_latency,
                            executor_latency=self.executor_latency)

    def executor_config(self, joint_names: Tuple[str, ...]) -> ExecutorConfig:
        """Return the executor settings; the arms' joint limits when the joints are theirs."""
        ages = {'max_context_age': self.max_context_age,
                'max_observation_age': self.max_observation_age}
        if tuple(joint_names) == robot.JOINT_NAMES:
            safety = SafetyConfig.for_robot(self.max_step, **ages)
        else:  # joints of another robot: no limits known here, only the step clamp
            safety = SafetyConfig.uniform(len(joint_names), -1e9, 1e9, self.max_step, **ages)
        return ExecutorConfig(safety=safety,
                              scheduler=SchedulerConfig(self.blend, self.blend_steps),
                              max_image_age=self.max_image_age,
                              execute_steps=self.execute_steps)


def bag_features(path: Path, policy: ChunkPolicy, config: BagEvalConfig,
                 features: Optional[FeatureConfig] = None) -> FeatureConfig:
    """Return the bag's topics and joints (its recorded ones unless given), checked vs policy."""
    features = resolve_features(path, features)
    if config.cameras:
        features = replace(features, cameras=config.cameras)
    if len(features.joint_names) != policy.action_dim:
        raise EvalError(f'bag {path} has {len(features.joint_names)} joints, the policy '
                        f'{policy.action_dim}')
    return features


def _set_task(policy: ChunkPolicy, task: str) -> None:
    if not hasattr(policy, 'set_task'):
        return
    try:
        policy.set_task(task)
    except ValueError as error:
        raise EvalError(f"the policy does not know the bag's task {task!r}: {error}") from error


def evaluate_bag(path: Path, policy: ChunkPolicy, config: BagEvalConfig,
                 features: Optional[FeatureConfig] = None) -> ReplayTrace:
    """
    Replay one bag through a fresh runtime and return what it would have commanded.

    Parameters
    ----------
    path : Path
        A rosbag2 directory.
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
    features = bag_features(Path(path), policy, config, features)
    timing = config.timing(policy)
    image_size = getattr(policy, 'image_size', None)
    with BagSource(Path(path), features, config.command_topic) as source:
        _set_task(policy, source.task)
        replay = BagReplay(policy, config.executor_config(features.joint_names), timing,
                           None if image_size is None else tuple(image_size),
                           config.resize_images, config.max_image_age)
        ticks = int(source.duration_ns * 1e-9 / timing.control_period) + 1
        with tqdm(total=ticks, desc=Path(path).name, unit='tick', leave=False,
                  disable=not config.progress) as bar:
            return replay.run(source, on_tick=bar.update)


def bag_labels(bags: Sequence[Path], root: Path) -> List[str]:
    """Return a distinct file-name-safe label per bag: its path under `root`, '/' -> '__'."""
    labels = []
    for bag in bags:
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


def run_eval(bags: Sequence[Path], policy: ChunkPolicy, config: BagEvalConfig, out: Path,
             root: Optional[Path] = None, force: bool = False,
             settings: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """
    Evaluate `bags`, write the report to `out` (all or nothing) and return the figures.

    Every bag is opened and checked before any is replayed, so a bad bag fails fast.

    Returns
    -------
    dict
        'settings', 'bags' (label -> figures) and 'all' (figures pooled over the bags).

    """
    if not bags:
        raise BagError(f'no rosbag2 bags (directories with a metadata.yaml) under {root}')
    if Path(out).exists() and not force:
        raise FileExistsError(f'{out} exists: choose another --out or pass --force')
    for bag in bags:
        BagSource(bag, bag_features(bag, policy, config), config.command_topic).close()
    labels = bag_labels(bags, root or bags[0].parent)
    traces = [evaluate_bag(bag, policy, config)
              for bag in tqdm(bags, desc='bags', unit='bag',
                              disable=not config.progress or len(bags) < 2)]
    results = {'settings': settings or asdict(config),
               'bags': {label: figures([trace]) for label, trace in zip(labels, traces)},
               'all': figures(traces)}
    write_atomically(Path(out), lambda staging: write_report(staging, traces, labels, results),
                     force)
    return results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='ahawam eval-bag', description='Replay rosbag2 bags through the asynchronous '
        'runtime (planner + executor on the bag clock) and compare what the policy would have '
        'commanded with what was commanded.')
    add = parser.add_argument
    add('bags', metavar='BAG_OR_DIR', type=Path, help='a rosbag2 directory or a tree of them')
    add('--checkpoint', required=True, help="checkpoint directory, or 'fake' (FakePolicy)")
    add('--out', type=Path, help='output directory (default: outputs/eval_bag/<name>)')
    add('--force', action='store_true', help='replace --out if it exists')
    add('--device', default='cpu', help='torch device of the policy')
    add('--num-inference-steps', type=int, default=0, help="Euler steps; 0: the checkpoint's")
    add('--planner-rate', type=float, default=4.0, metavar='HZ', help='planner refresh rate')
    add('--control-rate', type=float, default=0.0, metavar='HZ',
        help="command rate; 0: the policy's")
    add('--chunk-rate', type=float, default=0.0, metavar='HZ',
        help='executor chunk timer rate; 0: the control rate')
    add('--execute-steps', type=int, default=8, metavar='N',
        help='compute a new chunk once N actions of the newest one are due')
    add('--planner-latency', type=float, metavar='S',
        help='fixed seconds per planner refresh (default: the measured time of each call)')
    add('--executor-latency', type=float, metavar='S',
        help='fixed seconds per executor update (default: the measured time of each call)')
    add('--blend', default='linear', choices=[mode.value for mode in BlendMode])
    add('--blend-steps', type=int, default=4, metavar='N')
    add('--max-step', type=float, default=0.05, help='largest command change per tick')
    add('--max-context-age', type=float, default=1.5, metavar='S')
    add('--max-observation-age', type=float, default=0.2, metavar='S')
    add('--max-image-age', type=float, default=0.5, metavar='S')
    add('--resize-images', action='store_true',
        help="resize frames to the policy's input size (cv2 INTER_AREA)")
    add('--cameras', default='',
        help='comma-separated cameras in view order (default: those the bag recorded)')
    add('--command-topic', default='', help='recorded command topic (default: '
        '/joint_commands, else /joint_trajectory)')
    add('--no-progress', action='store_true', help='no progress bars')
    return parser


def _config(args: argparse.Namespace) -> BagEvalConfig:
    return BagEvalConfig(
        planner_rate_hz=args.planner_rate, control_rate_hz=args.control_rate,
        chunk_rate_hz=args.chunk_rate, execute_steps=args.execute_steps,
        planner_latency=args.planner_latency, executor_latency=args.executor_latency,
        blend=args.blend, blend_steps=args.blend_steps, max_step=args.max_step,
        max_context_age=args.max_context_age, max_observation_age=args.max_observation_age,
        max_image_age=args.max_image_age, resize_images=args.resize_images,
        cameras=tuple(c for c in args.cameras.split(',') if c),
        command_topic=args.command_topic, progress=not args.no_progress)


def _print_figures(results: Dict[str, Any], out: Path) -> None:
    rows = list(results['bags'].items())
    if len(rows) > 1:
        rows.append(('all bags', results['all']))
    for label, values in rows:
        print(f'{label}:')
        for key, text in headline(values).items():
            print(f'  {key:<38} {text}')
    print(f'report: {out / REPORT_FILE}')


def main(argv: Optional[List[str]] = None) -> int:
    """Run `ahawam eval-bag`; return 0, or 2 with a message on a bad bag or setting."""
    args = _parser().parse_args(argv)
    out = args.out or Path('outputs') / 'eval_bag' / args.bags.resolve().name
    try:
        config = _config(args)
        bags = find_bags(args.bags)
        policy = load_policy(args.checkpoint, args.device)
        if args.num_inference_steps and hasattr(policy, 'num_steps'):
            policy.num_steps = args.num_inference_steps
        settings = {'bags': str(args.bags), 'checkpoint': args.checkpoint, 'device': args.device,
                    **asdict(config)}
        results = run_eval(bags, policy, config, out, args.bags, args.force, settings)
    except (BagError, EvalError, FileNotFoundError, FileExistsError, ValueError) as error:
        print(f'ahawam eval-bag: error: {error}', file=sys.stderr)
        return 2
    _print_figures(results, out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
