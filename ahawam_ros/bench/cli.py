"""
`ahawam bench`: the model, runtime and ROS benchmarks side by side, one process, same weights.

    ahawam bench [--checkpoint CKPT] [--presets small tiny] [--out DIR] [--ros-seconds S]

Rows (figures only, nothing asserted):
1. executor update rate, async vs synchronous, at N = 10 and N = 1, compiled and eager, alone
   and beside a planner refreshing in another thread, for each preset that fits in memory,
   and the ratio beside the paper's 4.59x / 10.82x and the compute-bound ideal
   (`bench_model`'s stages and timer);
2. the ROS graph (planner + executor nodes and a sensor stand-in on the nodes' executor):
   command period p50 / p99 at 50 Hz while the planner refreshes, and the achieved chunk update
   rate against the update latency (the cost of the ROS shell);
3. context handoff by reference (WorldContext descriptor + registry) vs serialized (the K/V
   floats in a Float32MultiArray), same process, for the policy's context and synthetic ones
   up to 64 MiB, with the ratio (`bench_handoff`);
4. planner refresh latency and resident memory over a long episode (rolling memory);
5. training throughput (samples/s) per preset.
The ROS rows are imported lazily: without rclpy they say so and the rest still runs.
Prints a table and writes `<out>/bench.json`; the load average is recorded with the figures.
"""

import argparse
import math
import os
from pathlib import Path
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ahawam_ros.bench.heavy_planner import heavy_planner_lines, heavy_planner_rows, PAIRED_ROUNDS
from ahawam_ros.bench.heavy_planner import PLANNER_WIDTHS
from ahawam_ros.bench.runtime import planner_run, training_throughput
from ahawam_ros.bench.runtime import update_rates
from ahawam_ros.bench.smoothness import Message, smoothness, smoothness_lines
from ahawam_ros.eval.closed_loop.metrics import write_json
from ahawam_ros.eval.closed_loop.policy import load_eval_policy, policy_views, RANDOM_PREFIX
from ahawam_ros.model.presets import get_preset, PRESETS
from ahawam_ros.runtime.settings_flags import add_settings_flags, settings_from_args
from ahawam_ros.train.memory_plan import count_parameters, device_memory_bytes
import torch

REPORT_FILE = 'bench.json'


def preset_fits(name: str) -> Tuple[bool, str]:
    """Return whether a preset trains here: weights, gradients and two AdamW moments in RAM."""
    count = count_parameters(get_preset(name))['total']
    needed, available = 16.0 * count, device_memory_bytes('cpu')
    reason = f'{count / 1e6:.1f} M parameters need ~{needed / 2 ** 30:.2f} GiB to train, ' \
             f'{available / 2 ** 30:.1f} GiB available'
    return needed < available, reason


def build_policies(presets: Sequence[str], checkpoint: str, device: str) -> Dict[str, Any]:
    """Return preset -> policy: the checkpoint for its own preset, seeded random weights else."""
    policies = {}
    if checkpoint:
        policy = load_eval_policy(checkpoint, device)
        policies[policy.model.config.name] = policy
    for name in presets:
        if name not in policies:
            policies[name] = load_eval_policy(RANDOM_PREFIX + name, device)
    return policies


def ros_rows(policy, args: argparse.Namespace) -> Dict[str, Any]:
    """Measure the ROS graph and the context handoff, or say why not."""
    try:
        from ahawam_ros.ros import bench_handoff, bench_ros  # lazily: the rest runs without ROS
    except ImportError as error:
        return {'skipped': f'ROS 2 is not available here ({error})'}
    shape = (policy_views(policy), *policy.image_size)
    system = bench_ros.measure_system(policy, shape, settings_from_args(args),
                                      seconds=args.ros_seconds, paired_rounds=PAIRED_ROUNDS)
    system['smoothness'] = smoothness([Message(*entry) for entry in system.pop('commands')])
    contexts = bench_handoff.handoff_contexts(policy, shape, args.handoff_mib)
    heavy = heavy_planner_rows(policy.model.config.name, args.planner_widths,
                               bench_ros.measure_system, settings_from_args(args),
                               args.ros_seconds) if args.planner_widths else []
    return {'system': system, 'handoff': bench_handoff.measure_handoff(contexts, args.handoffs),
            'heavy_planner': heavy}


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Run every row; return the report."""
    torch.set_num_threads(args.threads)
    report: Dict[str, Any] = {'load_average_before': os.getloadavg()[0],
                              'cpus': os.cpu_count(), 'torch_threads': args.threads,
                              'checkpoint': args.checkpoint or 'random weights (seeded)'}
    fits = {name: preset_fits(name) for name in args.presets}
    report['presets'] = {name: {'fits': ok, 'why': why} for name, (ok, why) in fits.items()}
    presets = [name for name, (ok, _) in fits.items() if ok]
    policies = build_policies(presets, args.checkpoint, args.device)
    main = policies.get('small') or next(iter(policies.values()))
    report['main_preset'] = main.model.config.name
    print('update rates ...', flush=True)
    report['update_rates'] = {name: update_rates(p, args.repeats) for name, p in policies.items()}
    print('ROS graph and handoff ...', flush=True)
    report['ros'] = ros_rows(main, args)
    print(f'planner: {args.refreshes} refreshes ...', flush=True)
    report['planner_run'] = planner_run(main, settings_from_args(args).planner, args.refreshes)
    print('training throughput ...', flush=True)
    report['training'] = {name: training_throughput(name, args.train_batch, args.train_repeats,
                                                    args.train_threads)
                          for name in presets if args.train_batch > 0}
    report['load_average_after'] = os.getloadavg()[0]
    return report


def _lines_updates(update_rates: Dict[str, Any]) -> List[str]:
    """Rows of the update table: per preset, N and backend (the policy's own when alone)."""
    lines = [f'{"preset":<8}{"N":>3}{"backend":>10}{"async ms":>10}{"+planner":>10}'
             f'{"sync ms":>9}{"async Hz":>10}{"sync Hz":>9}{"ratio":>8}{"ideal":>8}'
             f'{"paper":>8}']
    for name, rates in update_rates.items():
        rows = [(int(steps), backend, row) for steps, backends in
                rates.get('by_steps', {}).items() for backend, row in backends.items()]
        rows = rows or [(rates.get('num_steps', 10), rates.get('backend', ''), rates)]
        for steps, backend, row in rows:
            beside = row.get('beside_planner_ms', math.nan)
            lines.append(f'{name:<8}{steps:>3}{backend:>10}{row["async_ms"]:>10.1f}'
                         f'{beside:>10.1f}{row["sync_ms"]:>9.1f}{row["async_hz"]:>10.1f}'
                         f'{row["sync_hz"]:>9.1f}{row["ratio"]:>7.2f}x'
                         f'{row["ideal_ratio"]:>7.2f}x{row["paper_ratio"]:>7.2f}x')
    return lines


def _lines_ros(report: Dict[str, Any]) -> List[str]:
    ros = report['ros']
    if 'skipped' in ros:
        return [f'ROS rows skipped: {ros["skipped"]}']
    from ahawam_ros.ros.bench_handoff import handoff_lines  # the ROS rows ran: ROS is here
    system, handoff = ros['system'], ros['handoff']
    period, rates = system['command_period_ms'], report['update_rates'][report['main_preset']]
    own = system['chunk_latency_ms']['p50']
    achieved = 1e3 / system['chunk_rate_hz'] if system['chunk_rate_hz'] else float('nan')
    return [
        f'ROS graph ({report["main_preset"]}, {system["window_s"]:.0f} s, planner timer '
        f'{system["planner_rate_hz"]:g} Hz, chunk schedule {system.get("schedule", "?")}, '
        f'{system.get("ros_executor", "?")}):',
        f'  command period      p50 {period["p50"]:.1f} ms  p99 {period["p99"]:.1f} ms  max '
        f'{period["max"]:.1f} ms  ({system["command_rate_hz"]:.1f} Hz, target 50 Hz)',
        f'  planner             {system["planner_refreshes"]} refreshes, p50 '
        f'{system["plan_latency_ms"]["p50"]:.0f} ms in the graph',
        f'  chunk updates       {system["chunk_rate_hz"]:.1f} Hz achieved ({achieved:.1f} ms '
        f'each); update latency p50 {own:.1f} ms in the graph, {rates["async_ms"]:.1f} ms '
        f'alone -> ROS shell + waiting {achieved - own:.1f} ms per update',
        *_lines_schedule(system),
        *smoothness_lines(system.get('smoothness', {})),
        *heavy_planner_lines(ros.get('heavy_planner', [])),
        *handoff_lines(handoff)]


def _lines_schedule(system: Dict[str, Any]) -> List[str]:
    if 'hold_fraction' not in system:
        return []
    return [
        f'  holds after warm-up {system["holds"]} of {system["ticks"]} command ticks '
        f'({100.0 * system["hold_fraction"]:.1f} %, target <= 1 %)',
        f'  update latency      p50 {system["chunk_latency_ms"]["p50"]:.1f} ms in the graph vs '
        f'{system["alone_ms"]["p50"]:.1f} ms alone just before: {system["graph_vs_alone"]:.2f}x '
        f'(target <= 1.15x); stale actions per chunk {system["stale_actions_per_chunk"]:.1f}',
        *_lines_paired(system.get('paired', {})),
        f'  worker priorities   executor nice {system["executor_nice"]:g}, planner nice '
        f'{system["planner_nice"]:g}']


def _lines_paired(paired: Dict[str, Any]) -> List[str]:
    if not paired:
        return []
    on, paused = paired['on_ms'], paired['paused_ms']
    return [f'  planner paused      update latency p50 {on["p50"]:.1f} ms with the planner '
            f'refreshing vs {paused["p50"]:.1f} ms paused, in turns ({paired["rounds"]} rounds, '
            f'{on["count"]} / {paused["count"]} updates): {paired["ratio"]:.2f}x']


def format_report(report: Dict[str, Any]) -> str:
    """Return the printed table of a bench report."""
    lines = [f'ahawam bench: {report["checkpoint"]}, {report["cpus"]} CPUs, torch threads '
             f'{report["torch_threads"]}, load average {report["load_average_before"]:.1f} '
             f'-> {report["load_average_after"]:.1f}']
    lines += [f'  preset {n}: skipped ({p["why"]})' for n, p in report['presets'].items()
              if not p['fits']]
    lines += _lines_updates(report['update_rates'])
    lines += _lines_ros(report)
    run = report['planner_run']
    lines += [f'planner over {run["refreshes"]} refreshes (memory {run["memory_fill"]} deep): '
              f'p50 {run["first_ms"]["p50"]:.0f} ms first tenth, {run["last_ms"]["p50"]:.0f} ms '
              f'last tenth; RSS {run["rss_filled_mb"]:.0f} -> {run["rss_end_mb"]:.0f} MiB '
              f'(growth {run["rss_growth_mb"]:+.1f} MiB, max {run["rss_max_mb"]:.0f})']
    for name, row in report['training'].items():
        lines.append(f'training {name:<6} batch {row["batch_size"]}, {row["threads"]} threads: '
                     f'{row["step_ms"]:.0f} ms/step, {row["samples_per_s"]:.1f} samples/s '
                     f'({row["chunks_per_s"]:.0f} executor chunks/s); executor stage (eager), '
                     f'batch {row["executor_stage_batch"]}: {row["executor_stage_step_ms"]:.0f} '
                     f'ms/step, {row["executor_stage_chunks_per_s"]:.0f} chunks/s')
    return '\n'.join(lines)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog='ahawam bench',
                                     description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--checkpoint', default='', help='checkpoint for its preset '
                        '(default: seeded random weights for every preset)')
    parser.add_argument('--presets', nargs='+', default=list(PRESETS), choices=sorted(PRESETS),
                        help='presets to try; those that do not fit in memory are skipped')
    parser.add_argument('--repeats', type=int, default=30, help='timed updates per kind')
    parser.add_argument('--threads', type=int, default=1, help='torch threads for inference')
    parser.add_argument('--ros-seconds', type=float, default=10.0, help='ROS graph window')
    parser.add_argument('--handoffs', type=int, default=50, help='handoffs per kind and '
                        'context size (serialized: ~512 MiB per size at most)')
    parser.add_argument('--handoff-mib', type=float, nargs='*', default=[1.0, 16.0, 64.0],
                        help="synthetic context sizes handed over, beside the policy's")
    parser.add_argument('--planner-widths', type=int, nargs='*', default=list(PLANNER_WIDTHS),
                        help="heavy-planner rows: the main preset's planner widened to these "
                        '(none: skip the rows)')
    parser.add_argument('--refreshes', type=int, default=300, help='long planner episode')
    parser.add_argument('--train-batch', type=int, default=8, help='0 skips training')
    parser.add_argument('--train-repeats', type=int, default=3)
    parser.add_argument('--train-threads', type=int, default=1, help='torch threads for '
                        'training (0: every core; on a loaded machine more threads than free '
                        'cores stall at every OpenMP barrier)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', default='outputs/bench', help='where bench.json goes')
    add_settings_flags(parser)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark suite, print the table and write the JSON; returns 0."""
    args = parse_args(argv)
    started = time.monotonic()
    report = run(args)
    report['wall_seconds'] = time.monotonic() - started
    print(format_report(report))
    print(f'report: {write_json(report, Path(args.out) / REPORT_FILE).resolve()}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
