"""
`ahawam demo`: the whole system on the embedded default, as ROS 2 nodes.

The simulator runs in its own process, as a robot would; the planner and executor nodes (and
the supervisor) share this one, so the world context travels by reference.

The simulator, the world planner and the action executor (with the packaged checkpoint)
run a few TransferCube episodes in real time; a supervisor node resets each episode with a
seed, prints live status once a second (command rate, context age, latencies, reward),
records each episode as a rosbag2 (mcap) and an mp4 of the top camera, and prints a summary.

`--policy expert` runs the privileged scripted expert (told each episode's seed by the
supervisor) instead of the checkpoint: the system's own ceiling. The simulator reports its
real-time factor in /diagnostics; the status line and the summary show it. Real time is the
default; where the machine cannot simulate at real time, `--sim-time` (an option, not an
automatic fallback) makes the simulator the clock (/clock) and puts every node on
use_sim_time, and the summary says which clock ran.
"""

import argparse
import dataclasses
from dataclasses import dataclass
import json
import math
import os
from pathlib import Path
import signal
import subprocess
import sys
from typing import List, Optional

os.environ.setdefault('OMP_NUM_THREADS', '1')  # before torch: one core per worker thread

from ahawam_ros.paths import system_params_file  # noqa: E402
from ahawam_ros.robot import FIRST_HELD_OUT_SEED  # noqa: E402
from ahawam_ros.ros.demo_supervisor import (DemoSupervisor, EpisodeResult,  # noqa: E402
                                            REAL_TIME_OK)
from ahawam_ros.ros.log_bridge import bridge_core_logging  # noqa: E402
from ahawam_ros.ros.node_configs import BimanualSimConfig  # noqa: E402
from ahawam_ros.ros.spin import exit_now, make_executor, responsive_gil  # noqa: E402
from ahawam_ros.ros.spin import ShutdownSignals, SpinThread  # noqa: E402
from ahawam_ros.runtime.loading import (CHECKPOINT_POLICY, load_policy,  # noqa: E402
                                        POLICY_KINDS)
from ahawam_ros.runtime.params_file import config_from_params_file  # noqa: E402
from ahawam_ros.sim.tasks import TASKS  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import ExternalShutdownException  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402


@dataclass(frozen=True)
class DemoOptions:
    """What the demo runs."""

    episodes: int = 3
    seed: int = FIRST_HELD_OUT_SEED
    checkpoint: str = ''
    out: str = 'outputs/demo'
    episode_seconds: float = 8.0
    video: bool = True
    policy: str = CHECKPOINT_POLICY
    sim_time: bool = False
    params_file: str = ''
    task: str = ''  # empty: the simulator's task in the parameter file

    def __post_init__(self):
        if self.task and self.task not in TASKS:
            raise ValueError(f'task must be one of {sorted(TASKS)}, got {self.task!r}')
        if self.policy not in POLICY_KINDS:
            raise ValueError(f'policy must be one of {list(POLICY_KINDS)}, got {self.policy!r}')
        if self.episodes < 1:
            raise ValueError(f'episodes must be >= 1, got {self.episodes}')
        if not self.episode_seconds > 0:
            raise ValueError(f'episode_seconds must be > 0, got {self.episode_seconds}')


def parse_options(argv: Optional[List[str]]) -> DemoOptions:
    """Parse the command line into DemoOptions."""
    parser = argparse.ArgumentParser(prog='ahawam demo', description=__doc__.splitlines()[1])
    parser.add_argument('--episodes', type=int, default=3, help='episodes to run (3)')
    parser.add_argument('--seed', type=int, default=FIRST_HELD_OUT_SEED,
                        help=f'seed of the first episode ({FIRST_HELD_OUT_SEED}: held out, '
                        'never a demonstration)')
    parser.add_argument('--checkpoint', default='', help='policy checkpoint directory '
                        '(default: the packaged one)')
    parser.add_argument('--out', default='outputs/demo', help='where bags and videos go')
    parser.add_argument('--episode-seconds', type=float, default=8.0,
                        help='episode length in seconds (TransferCube: 8 s = 400 steps)')
    parser.add_argument('--no-video', action='store_true', help='do not write mp4 videos')
    parser.add_argument('--policy', default=CHECKPOINT_POLICY, choices=POLICY_KINDS,
                        help='checkpoint (default), or expert: the privileged scripted expert')
    parser.add_argument('--params-file', default='', help='ROS parameter file of the nodes '
                        "(default: the system's config/bimanual.yaml)")
    parser.add_argument('--task', default='', choices=sorted(TASKS),
                        help="the simulator's task, and so the policy's (default: the "
                        "parameter file's bimanual_sim task)")
    parser.add_argument('--sim-time', action='store_true',
                        help='the simulator publishes /clock and the nodes use sim time (for '
                        'machines too slow to simulate in real time)')
    args = parser.parse_args(argv)
    return DemoOptions(args.episodes, args.seed, args.checkpoint, args.out,
                       args.episode_seconds, not args.no_video, args.policy, args.sim_time,
                       args.params_file, args.task)


def _ros_args(options: DemoOptions, params_file: str) -> List[str]:
    args = ['--ros-args', '--params-file', params_file, '--log-level', 'warn']
    if options.checkpoint:
        args += ['-p', f'checkpoint:={Path(options.checkpoint).resolve()}']
    if options.sim_time:
        args += ['-p', 'use_sim_time:=true']
    if options.task:
        args += ['-p', f'task:={options.task}']
    return args


def start_simulator(params_file: str, sim_time: bool = False,
                    task: str = '') -> subprocess.Popen:
    """Start the bimanual_sim node in its own process, as the robot would be."""
    command = [sys.executable, '-m', 'ahawam_ros.ros.bimanual_sim_node', '--ros-args',
               '--params-file', params_file, '--log-level', 'warn']
    if sim_time:
        command += ['-p', 'publish_clock:=true']
    if task:
        command += ['-p', f'task:={task}']
    return subprocess.Popen(command, env=dict(os.environ, PYTHONUNBUFFERED='1'))


def stop_simulator(process: subprocess.Popen) -> None:
    """Stop the simulator process (SIGINT, then kill after 10 s)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            process.kill()


def print_summary(results: List[EpisodeResult], supervisor: DemoSupervisor,
                  out: Path) -> None:
    """Print the per-episode table and the system figures; write summary.json."""
    print('\n=== AHA-WAM demo summary ===')
    print(f'{"episode":>7} {"seed":>5} {"success":>8} {"max reward":>10} {"cmd Hz":>7} '
          f'{"holds":>6} {"warm holds":>10} {"RTF":>5}  bag / video')
    for r in results:
        print(f'{r.index:>7} {r.seed:>5} {str(r.success):>8} {r.max_reward:>10.0f} '
              f'{r.command_rate:>7.1f} {r.holds:>6} {r.warm_hold_fraction:>10.1%} '
              f'{r.real_time_factor:>5.2f}  {r.bag} {r.video or ""}')
    figures = {**supervisor.system_figures(), **timing_figures(results, supervisor)}
    successes = sum(r.success for r in results)
    print(f'success: {successes}/{len(results)} episodes')
    for key, value in figures.items():
        print(f'{key}: {value:.4g}' if isinstance(value, float) else f'{key}: {value}')
    print(real_time_verdict(figures))
    summary = {'episodes': [dict(r.__dict__, warm_hold_fraction=r.warm_hold_fraction)
                            for r in results],
               'success_rate': successes / len(results), **figures}
    (out / 'summary.json').write_text(json.dumps(summary, indent=2, default=str))
    print(f'outputs: {out.resolve()}')


def _stop_system(supervisor: Optional[DemoSupervisor], spinner: Optional[SpinThread],
                 simulator: subprocess.Popen) -> None:
    """Stop spinning (no command tick after the hold), send the final hold, stop all."""
    if spinner is not None:
        spinner.stop()  # the loop ends, running callbacks end, the executor shuts down
    if supervisor is not None:
        supervisor.shutdown_system()
    for node in supervisor.nodes if supervisor is not None else []:
        node.destroy_node()
    rclpy.try_shutdown()
    stop_simulator(simulator)


def timing_figures(results: List[EpisodeResult], supervisor: DemoSupervisor) -> dict:
    """Return the policy, the clock, the real-time factors and the holds after warm-up."""
    options = supervisor.options
    factors = [r.real_time_factor for r in results if math.isfinite(r.real_time_factor)]
    ticks = sum(r.warm_ticks for r in results)
    return {'policy': options.policy,
            'sim_clock': 'simulated (/clock, nodes on use_sim_time)' if options.sim_time
            else 'wall (real time)',
            'real_time_factor_mean': sum(factors) / len(factors) if factors else math.nan,
            'real_time_factor_min': min(factors) if factors else math.nan,
            'warm_ticks': ticks,
            'warm_hold_fraction': (sum(r.warm_holds for r in results) / ticks if ticks
                                   else math.nan)}


def real_time_verdict(figures: dict) -> str:
    """One line: did the simulator keep real time, and on which clock did the nodes run."""
    factor = figures['real_time_factor_min']
    if figures['sim_clock'].startswith('simulated'):
        return (f'clock: simulated (/clock); the simulator ran at {factor:.2f}x real time at '
                'worst and the nodes followed its clock')
    if not math.isfinite(factor):
        return 'real time: unknown (no diagnostics from the simulator)'
    if factor >= REAL_TIME_OK:
        return f'real time: kept (real-time factor >= {factor:.2f} in every episode)'
    return (f'real time: NOT kept (real-time factor down to {factor:.2f}); the policy saw a '
            'slowed world: rerun with --sim-time to run the nodes on simulated time')


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo; return 0 when every episode ran (successful or not); exit 0 on a signal."""
    options = parse_options(argv)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    params_file = options.params_file or str(system_params_file())
    sim_config = config_from_params_file(params_file, 'bimanual_sim', BimanualSimConfig)
    if options.task:
        sim_config = dataclasses.replace(sim_config, task=options.task)
    if options.checkpoint and options.policy == CHECKPOINT_POLICY:
        # A bad checkpoint fails here, before anything starts (cached).
        load_policy(str(Path(options.checkpoint).resolve()))
    simulator = start_simulator(params_file, options.sim_time, options.task)
    responsive_gil()
    bridge_core_logging()
    rclpy.init(args=['ahawam_demo'] + _ros_args(options, params_file),
               signal_handler_options=SignalHandlerOptions.NO)
    executor = make_executor()
    supervisor, spinner = None, None
    results: List[EpisodeResult] = []
    # The first SIGINT / SIGTERM interrupts the episodes; later ones (the terminal's Ctrl-C
    # reaches the whole process group) must not interrupt the cleanup below. The previous
    # handlers come back afterwards (a caller of main() keeps its own).
    with ShutdownSignals(raise_first=True, restore=True) as signals:
        try:
            supervisor = DemoSupervisor.with_system(options, out, sim_config)
            for node in supervisor.nodes:
                executor.add_node(node)
            spinner = SpinThread(executor).start()
            for index in range(options.episodes):
                results.append(supervisor.run_episode(index, options.seed + index))
            print_summary(results, supervisor, out)
        except (KeyboardInterrupt, ExternalShutdownException):
            print('\ninterrupted', file=sys.stderr)
        finally:
            signals.begin_shutdown()
            _stop_system(supervisor, spinner, simulator)
    if signals.count:
        # A signal is a request to stop the process (also when eval-sim starts the demo), not a
        # failure: exit 0 as the nodes do, without the interpreter's 2 s teardown of torch.
        exit_now(0)
    return 0 if len(results) == options.episodes else 1


if __name__ == '__main__':
    sys.exit(main())
