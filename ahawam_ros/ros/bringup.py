"""
The bringup executable: world planner and action executor in ONE process.

Hosting both nodes in one process is what lets the world context travel by reference (the
WorldContext topic carries only a descriptor and a handle). They spin on rclpy's
EventsExecutor (`spin.make_executor`; `AHAWAM_EXECUTOR=multi` picks the MultiThreadedExecutor)
with separate callback groups; refreshes and chunk inference run in the runtime's worker
threads, so the 50 Hz command timer keeps its rate on 2 cores. `--with-sim`
also hosts the simulator node. Parameters come from config/bimanual.yaml unless a
--params-file is given.

    ros2 run ahawam_ros bringup [--with-sim] [--checkpoint DIR] [--ros-args --params-file ...]
"""

import argparse
import os
import sys
from typing import List, Optional

# One intra-op thread per torch worker by default: the planner and the executor each get one
# core's worth of work, and the command timer never waits for a core (set before torch loads).
os.environ.setdefault('OMP_NUM_THREADS', '1')

from ahawam_ros.paths import resolve_params_file, system_params_file  # noqa: E402
from ahawam_ros.ros.spin import run_nodes  # noqa: E402
from rclpy.utilities import remove_ros_args  # noqa: E402


def with_default_params(args: List[str]) -> List[str]:
    """Append `--ros-args --params-file config/bimanual.yaml` unless a params file is given."""
    if '--params-file' in args:
        return args
    return args + ['--ros-args', '--params-file', str(system_params_file())]


def resolve_params_files(args: List[str]) -> List[str]:
    """Return `args` with each `--params-file PATH` made absolute (`resolve_params_file`)."""
    out = list(args)
    for index in range(len(out) - 1):
        if out[index] == '--params-file':
            out[index + 1] = str(resolve_params_file(out[index + 1]))
    return out


def make_nodes(with_sim: bool):
    """Build the nodes of the process: [simulator], planner, executor (one shared policy)."""
    from ahawam_ros.ros.action_executor_node import ActionExecutorNode
    from ahawam_ros.ros.world_planner_node import WorldPlannerNode
    from ahawam_ros.runtime.orchestrator import RuntimeOrchestrator
    nodes = []
    if with_sim:
        from ahawam_ros.ros.bimanual_sim_node import BimanualSimNode
        nodes.append(BimanualSimNode())
    runtime = RuntimeOrchestrator()  # one orchestration of both workers (warm-up, priorities)
    planner = WorldPlannerNode(runtime=runtime)
    # Both nodes load through the per-process policy cache: one set of weights.
    nodes += [planner, ActionExecutorNode(runtime=runtime)]
    return nodes


def main(argv: Optional[List[str]] = None) -> int:
    """Parse `--with-sim`, then spin the nodes until Ctrl-C / SIGTERM."""
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(prog='bringup', description=__doc__.splitlines()[1])
    parser.add_argument('--with-sim', action='store_true',
                        help='also host the bimanual simulator node in this process')
    parser.add_argument('--checkpoint', default='',
                        help='policy checkpoint for both nodes (overrides the params file)')
    try:
        args = resolve_params_files(with_default_params(argv))
        options = parser.parse_args(remove_ros_args(args)[1:])
    except (FileNotFoundError, RuntimeError) as error:  # a bad path or ROS argument (rcl)
        print(f'bringup: error: {error}', file=sys.stderr)
        return 2
    if options.checkpoint:
        args += ['--ros-args', '-p', f'checkpoint:={options.checkpoint}']
    # A malformed checkpoint or parameter ends the process with one line and code 2 (run_nodes).
    return run_nodes(lambda: make_nodes(options.with_sim), args=args, exit_process=True)


if __name__ == '__main__':
    sys.exit(main())
