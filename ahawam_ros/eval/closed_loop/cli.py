"""
`ahawam eval-sim`: closed-loop episodes of a checkpoint in the embedded ALOHA simulator.

    ahawam eval-sim --checkpoint CKPT --episodes N [--mode async|sync|planner-off|all]
                    [--through runtime|ros] [--timing realtime|replayed] [--video] [--bags]
                    [--out DIR] [--seed S] [--imagination SEEDS]
    ahawam eval-sim --policy expert --episodes N ...

`--policy expert` runs the privileged scripted expert (`ahawam_ros.sim.expert_policy`) through
the same runtime instead of a checkpoint: it is told each episode's seed, so its failures and
holds are the runtime's own (the ceiling of any policy).

`--through runtime` (default) runs the ROS-free runtime. With `--timing realtime` (default) it
runs as the nodes do (`realtime`): the planner and executor workers compute concurrently
in their own threads (same orchestration, priorities and warm-up), and the simulator advances
paced to real time (the cores on its clock; the real-time factor is reported), so their
contention shows in the latencies and the holds.
`--timing replayed` steps the simulator in lock-step with the runtime on a simulated clock and
hands every result over after its latency measured one call after the other (`lockstep`):
deterministic, for machines too slow for real time. `--through ros` runs the deployed system,
the ROS nodes in real time (`ahawam_ros.ros.demo`), async only. Every mode runs the same seeds.
Prints one table (success with its 68 % Wilson interval, mean max staged reward, executed
command and chunk rates per simulated second, latency percentiles) and writes it as JSON.
`--imagination SEEDS` then scores the world model's predicted frames on the first SEEDS seeds
(`eval.imagination`: PSNR against the frames that came, beside copying the last frame), after
the episodes so that it never competes with their real time.
"""

import argparse
from dataclasses import asdict, dataclass, field, replace
import json
import math
import os
from pathlib import Path
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ahawam_ros.eval.closed_loop.episode import ClosedLoopConfig, REALTIME, TIMINGS
from ahawam_ros.eval.closed_loop.lockstep import run_episode
from ahawam_ros.eval.closed_loop.metrics import format_table, summarize_mode, write_json
from ahawam_ros.eval.closed_loop.modes import ASYNC, MODES
from ahawam_ros.eval.closed_loop.placement import format_edge_bins, success_by_edge_distance
from ahawam_ros.eval.closed_loop.policy import (DEMO_HW, load_eval_policy, PolicyViews,
                                                sim_config_for)
from ahawam_ros.eval.closed_loop.realtime import run_realtime_episode
from ahawam_ros.eval.closed_loop.record import EpisodeRecorder, write_bag, write_video
from ahawam_ros.eval.imagination import evaluate as evaluate_imagination
from ahawam_ros.eval.imagination import format_table as imagination_table
from ahawam_ros.eval.imagination import ImaginationOptions
from ahawam_ros.robot import CAMERA_EVERY, CONTROL_RATE_HZ, FIRST_HELD_OUT_SEED
from ahawam_ros.runtime.loading import (CHECKPOINT_POLICY, EXPERT_POLICY, POLICY_KINDS,
                                        select_policy)
from ahawam_ros.runtime.orchestrator import warm_up
from ahawam_ros.runtime.params_file import node_parameters, SIM_NODE, write_params_file
from ahawam_ros.runtime.policy_api import ChunkPolicy
from ahawam_ros.runtime.settings import RuntimeSettings
from ahawam_ros.runtime.settings_flags import (add_settings_flags, params_file_of,
                                               settings_from_args)
from ahawam_ros.sim.aloha_env import AlohaSim
from ahawam_ros.sim.expert_policy import expert_for, PrivilegedSim
from ahawam_ros.sim.tasks import TASKS
import torch

ALL = 'all'
THROUGH = ('runtime', 'ros')
REPORT_FILE = 'eval_sim.json'


@dataclass(frozen=True)
class EvalOptions:
    """What `ahawam eval-sim` runs; validated on construction."""

    checkpoint: str
    episodes: int = 10
    mode: str = ASYNC
    through: str = 'runtime'
    video: bool = False
    bags: bool = False
    out: str = 'outputs/eval_sim'
    seed: int = FIRST_HELD_OUT_SEED
    task: str = 'transfer_cube'
    steps: int = 400
    render_hw: Optional[Tuple[int, int]] = DEMO_HW
    threads: int = 1
    device: str = 'cpu'
    timing: str = REALTIME
    policy: str = CHECKPOINT_POLICY
    settings: RuntimeSettings = field(default_factory=RuntimeSettings)
    camera_every: int = CAMERA_EVERY
    params_file: str = ''  # where the settings were read from (the report says)
    tasks: Tuple[str, ...] = ()  # every task of the call (`task` is the one evaluated)
    imagination: int = 0  # seeds of the world model's prediction scored after the episodes

    def __post_init__(self):
        if self.policy not in POLICY_KINDS:
            raise ValueError(f'policy must be one of {list(POLICY_KINDS)}, got {self.policy!r}')
        if self.policy == CHECKPOINT_POLICY and not self.checkpoint:
            raise ValueError('checkpoint must name a checkpoint directory, fake or '
                             'random:<preset> (or pass --policy expert)')
        if self.imagination < 0 or (self.imagination and self.policy != CHECKPOINT_POLICY):
            raise ValueError(f'imagination must be >= 0 seeds, and needs a checkpoint policy, '
                             f'got {self.imagination} with {self.policy}')
        if self.episodes < 1 or self.steps < 1 or self.threads < 1:
            raise ValueError(f'episodes, steps and threads must be >= 1, got {self.episodes}, '
                             f'{self.steps}, {self.threads}')
        if self.mode not in MODES + (ALL,):
            raise ValueError(f'mode must be one of {list(MODES + (ALL,))}, got {self.mode!r}')
        if self.timing not in TIMINGS:
            raise ValueError(f'timing must be one of {list(TIMINGS)}, got {self.timing!r}')
        if self.through not in THROUGH:
            raise ValueError(f'through must be one of {list(THROUGH)}, got {self.through!r}')
        if self.through == 'ros' and self.mode != ASYNC:
            raise ValueError('--through ros runs the deployed system, which is async; '
                             'evaluate sync and planner-off --through runtime')
        for task in (self.task, *self.tasks):
            if task not in TASKS:
                raise ValueError(f'task must be one of {sorted(TASKS)}, got {task!r}')

    @property
    def modes(self) -> Tuple[str, ...]:
        return MODES if self.mode == ALL else (self.mode,)


def _size(text: str) -> Optional[Tuple[int, int]]:
    if text == 'native':
        return None
    height, _, width = text.partition('x')
    return int(height), int(width)


def parse_options(argv: Optional[Sequence[str]]) -> EvalOptions:
    """Parse the command line into EvalOptions."""
    parser = argparse.ArgumentParser(prog='ahawam eval-sim',
                                     description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--policy', default=CHECKPOINT_POLICY, choices=POLICY_KINDS,
                        help='checkpoint (default), or expert: the privileged scripted expert')
    parser.add_argument('--checkpoint', default='',
                        help='checkpoint directory, fake, or random:<preset> (untrained); '
                        'required with --policy checkpoint')
    parser.add_argument('--episodes', type=int, default=10, help='episodes per mode (10)')
    parser.add_argument('--mode', default=ASYNC, choices=MODES + (ALL,))
    parser.add_argument('--through', default='runtime', choices=THROUGH)
    parser.add_argument('--timing', default=REALTIME, choices=TIMINGS,
                        help='runtime: real time with concurrent workers (default), or '
                        'replayed in lock-step on a simulated clock')
    parser.add_argument('--video', action='store_true', help='write an mp4 per episode')
    parser.add_argument('--bags', action='store_true', help='write a rosbag2 per episode')
    parser.add_argument('--out', default='outputs/eval_sim', help='report, videos and bags')
    parser.add_argument('--seed', type=int, default=FIRST_HELD_OUT_SEED,
                        help=f'seed of the first episode ({FIRST_HELD_OUT_SEED}: held out, '
                        'never a demonstration)')
    parser.add_argument('--task', nargs='+', default=['transfer_cube'], choices=sorted(TASKS),
                        help='task(s) to evaluate, each on the same seeds (several: a report '
                        'per task under OUT/<task> and a summary)')
    parser.add_argument('--steps', type=int, default=400, help='control steps per episode')
    parser.add_argument('--render-size', default=f'{DEMO_HW[0]}x{DEMO_HW[1]}',
                        help='rendered HxW, resized to the policy input; "native" renders '
                        'at the input size (default: 120x160, as the demonstrations)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (1, as a node)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--imagination', type=int, default=0, metavar='SEEDS',
                        help="also score the world model's predicted frames on the first SEEDS "
                        'seeds against the frames that came and copying the last one '
                        '(eval-imagination; 0: no)')
    add_settings_flags(parser)
    args = parser.parse_args(argv)
    if args.policy == CHECKPOINT_POLICY and not args.checkpoint:
        parser.error('--checkpoint is required (or pass --policy expert)')
    params = params_file_of(args)
    camera_every = CAMERA_EVERY
    if params is not None:
        camera_every = int(node_parameters(params, SIM_NODE).get('camera_every', camera_every))
    return EvalOptions(args.checkpoint, args.episodes, args.mode, args.through, args.video,
                       args.bags, args.out, args.seed, args.task[0], args.steps,
                       _size(args.render_size), args.threads, args.device, args.timing,
                       args.policy, settings_from_args(args), camera_every,
                       str(params) if params is not None else '', tuple(args.task),
                       args.imagination)


def load_options_policy(options: EvalOptions) -> ChunkPolicy:
    """Return the policy `--policy` selects: the checkpoint's (fake, random:) or the expert."""
    if options.policy == CHECKPOINT_POLICY:
        return load_eval_policy(options.checkpoint, options.device)
    return select_policy(options.policy, expert=lambda: expert_for(options.task))


def run_mode(policy, sim, views: PolicyViews, config: ClosedLoopConfig,
             options: EvalOptions) -> Dict[str, Any]:
    """Run the episodes of one mode; record them if asked; return the mode's figures."""
    period = policy.control_period
    out = Path(options.out) / config.mode
    summaries, plan, update, ages = [], [], [], []
    run = run_realtime_episode if options.timing == REALTIME else run_episode
    for index in range(options.episodes):
        seed = options.seed + index
        recorder = EpisodeRecorder(views.cameras) if options.video or options.bags else None
        result = run(policy, sim, config, seed, views, recorder)
        summary = result.summary(period)
        if recorder is not None:
            summary.update(_save(recorder.finish(options.task, seed, result.success), out,
                                 index, options, config.mode))
        summaries.append(summary)
        plan += result.plan_latencies
        update += result.update_latencies
        ages += result.context_ages
        print(f'  {config.mode:<12} episode {index} (seed {seed}): success {result.success}, '
              f'max reward {result.max_reward:.0f}, {result.steps} steps', flush=True)
    figures = summarize_mode(summaries, plan, update, ages)
    stale = sum(s['stale_actions_total'] for s in summaries)
    chunks = sum(s['stale_chunks'] for s in summaries)
    figures.update(stale_actions_total=stale,
                   stale_actions_per_chunk=stale / chunks if chunks else math.nan,
                   real_time_factor=_mean(s['real_time_factor'] for s in summaries),
                   late_steps=sum(s['late_steps'] for s in summaries))
    figures['episode_results'] = summaries
    return figures


def _save(episode, out: Path, index: int, options: EvalOptions, mode: str) -> Dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    if options.video:
        paths['video'] = str(write_video(episode.tiled_frames(), out / f'episode_{index:03d}.mp4'))
    if options.bags:
        paths['bag'] = str(write_bag(episode, out / f'episode_{index:03d}', {
            'mode': mode, 'checkpoint': options.checkpoint, 'through': 'runtime'}))
    return paths


def evaluate_runtime(options: EvalOptions, policy=None) -> Dict[str, Any]:
    """Evaluate every requested mode through the lock-step runtime; return the report."""
    config = ClosedLoopConfig(settings=options.settings, camera_every=options.camera_every)
    torch.set_num_threads(options.threads)
    policy = policy or load_options_policy(options)
    if hasattr(policy, 'set_task'):
        policy.set_task(options.task)
    warm_up_s = warm_up(policy)  # before the first command, as the nodes do
    spec = options.checkpoint if options.policy == CHECKPOINT_POLICY else EXPERT_POLICY
    sim_config = sim_config_for(policy, spec, options.task, options.steps, options.render_hw)
    views = PolicyViews(sim_config.cameras, getattr(policy, 'image_size', None))
    modes = {}
    with AlohaSim(sim_config) as sim:
        # The expert is told each episode's seed by the simulator's reset (privileged).
        env = PrivilegedSim(sim, policy) if options.policy == EXPERT_POLICY else sim
        for mode in options.modes:
            modes[mode] = run_mode(policy, env, views, replace(config, mode=mode,
                                                               max_steps=options.steps), options)
    settings = {**config.settings.as_dict(), 'settle_steps': config.settle_steps,
                'camera_every': config.camera_every,
                'params_file': options.params_file or 'built-in defaults',
                'timing': options.timing, 'warm_up_s': warm_up_s}
    return {'through': 'runtime', 'settings': settings, 'sim': asdict(sim_config),
            'modes': modes}


def _mean(values) -> float:
    values = [v for v in values if math.isfinite(v)]
    return sum(values) / len(values) if values else math.nan


def evaluate_ros(options: EvalOptions) -> Dict[str, Any]:
    """Run the episodes through the ROS nodes (`ahawam demo`, its own process); the report."""
    out = Path(options.out) / 'ros'
    out.mkdir(parents=True, exist_ok=True)
    params = write_params_file(options.settings, options.params_file or None,
                               out / 'params.yaml')  # the same settings, for the nodes
    argv = ['--episodes', str(options.episodes), '--seed', str(options.seed),
            '--checkpoint', options.checkpoint, '--out', str(out), '--policy', options.policy,
            '--episode-seconds', str(options.steps / CONTROL_RATE_HZ),
            '--params-file', str(params), '--task', options.task]
    command = [sys.executable, '-m', 'ahawam_ros.ros.demo'] + argv
    if subprocess.call(command + ([] if options.video else ['--no-video'])) != 0 or not (
            out / 'summary.json').is_file():
        raise RuntimeError('the ROS system did not run every episode')
    summary = json.loads((out / 'summary.json').read_text())
    return {'through': 'ros', 'settings': {**options.settings.as_dict(),
                                           'params_file': str(params)},
            'modes': {ASYNC: ros_figures(summary)}}


def ros_figures(summary: Dict[str, Any]) -> Dict[str, Any]:
    """Map the demo's summary onto the figures of `summarize_mode`."""
    episodes = []
    for e in summary['episodes']:
        commands = max(e['command_rate'] * e['duration'], 1.0)
        episodes.append({'seed': e['seed'], 'success': e['success'],
                         'max_reward': e['max_reward'], 'command_rate_hz': e['command_rate'],
                         'chunk_rate_hz': math.nan, 'hold_fraction': e['holds'] / commands,
                         'bag': e['bag'], 'video': e['video']})
    figures = summarize_mode(episodes, [], [], [])
    seconds = sum(e['duration'] for e in summary['episodes'])
    figures['chunk_rate_hz'] = summary['chunks_accepted'] / max(seconds, 1e-9)
    for key, name, count in (('plan_latency_ms', 'planner', 'planner_refreshes'),
                             ('update_latency_ms', 'executor', 'chunks_accepted')):
        figures[key].update(p50=summary[f'{name}_latency_p50_ms'],
                            p95=summary[f'{name}_latency_p95_ms'], count=int(summary[count]))
    if 'context_age_p50_ms' in summary:  # the executor's rolling window, at the end
        figures['context_age_ms'].update(p50=summary['context_age_p50_ms'],
                                         p95=summary['context_age_p95_ms'],
                                         count=int(summary['context_age_count']))
    figures['episode_results'] = episodes
    return figures


def write_report(report: Dict[str, Any], out: Path) -> Path:
    """Write the report as `<out>/eval_sim.json`; return its path."""
    return write_json(report, out / REPORT_FILE)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the evaluation of every task, print the tables, write the JSON reports; return 0."""
    options = parse_options(argv)
    tasks = options.tasks or (options.task,)
    if len(tasks) == 1:
        evaluate_and_print(options)
        return 0
    reports = {task: evaluate_and_print(replace(options, task=task,
                                                out=str(Path(options.out) / task)))
               for task in tasks}
    print('\nper task, same seeds:')
    for task, report in reports.items():
        for mode, figures in report['modes'].items():
            print(f'  {task:<14} {mode:<12} success {figures["successes"]}/'
                  f'{figures["episodes"]}')
    summary = {task: {mode: {k: figures[k] for k in ('successes', 'episodes', 'success_rate')}
                      for mode, figures in report['modes'].items()}
               for task, report in reports.items()}
    print(f'summary: {write_report({"tasks": summary}, Path(options.out)).resolve()}')
    return 0


def evaluate_and_print(options: EvalOptions) -> Dict[str, Any]:
    """Evaluate one task, print its table, write its report; return the report."""
    load_before, started = os.getloadavg()[0], time.monotonic()
    if options.through == 'ros':
        report = evaluate_ros(options)
    else:
        report = evaluate_runtime(options)
    report.update(policy=options.policy, checkpoint=options.checkpoint,
                  episodes=options.episodes,
                  seed=options.seed, task=options.task, steps=options.steps,
                  machine={'cpus': os.cpu_count(), 'load_average_before': load_before,
                           'load_average_after': os.getloadavg()[0],
                           'torch_threads': options.threads},
                  wall_seconds=time.monotonic() - started)
    for figures in report['modes'].values():
        episodes = figures.get('episode_results') or []
        figures['success_by_edge_distance'] = success_by_edge_distance(episodes, options.task)
    if options.imagination:  # after the episodes: never beside their real-time runs
        report['imagination'] = score_imagination(options)
    name = options.checkpoint if options.policy == CHECKPOINT_POLICY else 'the expert policy'
    print(f'\n{name} through {options.through}, {options.episodes} episode(s) '
          f'per mode, seeds {options.seed}..{options.seed + options.episodes - 1}')
    print(format_table(report['modes']))
    for mode, figures in report['modes'].items():
        if 'stale_actions_total' in figures:
            print(f'  {mode:<12} stale actions per chunk {figures["stale_actions_per_chunk"]:.2f} '
                  f'({figures["stale_actions_total"]} in all), real-time factor '
                  f'{figures["real_time_factor"]:.3f}, {figures["late_steps"]} late steps')
        arms = [f'{arm} {100.0 * grasp["median"]:.1f} ({grasp["count"]}, spread '
                f'{100.0 * grasp.get("spread", math.nan):.1f})' for arm, grasp
                in (figures.get('first_grasp_distance_by_arm_m') or {}).items() if grasp['count']]
        if arms:
            print(f'  {mode:<12} grasp cm per arm (median, attempts, spread of the offsets): '
                  f'{", ".join(arms)}')
        if any(row['episodes'] for row in figures['success_by_edge_distance']):
            print(f'  {mode:<12} success by the distance of the objects to the edge of their '
                  f'placement box: {format_edge_bins(figures["success_by_edge_distance"])}')
    if 'warm_up_s' in report.get('settings', {}):
        print(f'policy warm-up {report["settings"]["warm_up_s"]:.2f} s (before the first command)')
    replayed = options.through == 'runtime' and options.timing != REALTIME
    clock = 'simulated' if replayed else 'wall-clock (real time)'
    print(f'latencies measured on this machine (load average {load_before:.1f} at the start, '
          f'{os.cpu_count()} CPUs); rates per {clock} second')
    if 'imagination' in report:
        print(f'world model prediction (PSNR against the frames that came), seeds '
              f'{options.seed}..{options.seed + options.imagination - 1}:')
        print(imagination_table(report['imagination']))
    print(f'report: {write_report(report, Path(options.out)).resolve()}')
    return report


def score_imagination(options: EvalOptions) -> Dict[str, Any]:
    """Return eval-imagination's figures for the options' checkpoint, task and first seeds."""
    anchors = tuple(s for s in ImaginationOptions.steps if s < options.steps) or (0,)
    report = evaluate_imagination(ImaginationOptions(
        options.checkpoint, options.imagination, options.seed, anchors, task=options.task,
        out=str(Path(options.out) / 'imagination'), device=options.device))
    return {key: report[key] for key in ('future_steps', 'psnr_db', 'wall_seconds')}


if __name__ == '__main__':
    raise SystemExit(main())
