"""
The `ahawam` command line tool: one entry point, one subcommand per job.

Each subcommand lives in its own module with a `main(argv)` function; they are imported only
when chosen, so `ahawam train` never imports rclpy and `ahawam --help` is instant.
"""

import importlib
import sys
from typing import Dict, List, Optional, Tuple

# subcommand -> (module with main(argv), one-line help)
SUBCOMMANDS: Dict[str, Tuple[str, str]] = {
    'info': ('ahawam_ros.info', 'print versions and what this install can do'),
    'train': ('ahawam_ros.train.cli', 'train AHA-WAM on demonstration bags or a LeRobot '
              'dataset'),
    'export': ('ahawam_ros.train.export', 'package a trained checkpoint (fp16 weights)'),
    'distill': ('ahawam_ros.train.distill', 'AHA-WAM-Flash: distil a 1/2/4-step executor '
                'from a trained checkpoint'),
    'record-demos': ('ahawam_ros.sim.record_demos', 'record scripted-expert demonstrations '
                     'in the simulator as rosbag2 (mcap)'),
    'demo': ('ahawam_ros.ros.demo', 'run the system on the embedded default (ROS 2 nodes, '
             'simulator, packaged checkpoint)'),
    'eval-sim': ('ahawam_ros.eval.closed_loop.cli', 'closed-loop episodes in the simulator: '
                 'async vs sync vs planner-off'),
    'eval-compare': ('ahawam_ros.eval.closed_loop.compare', 'eval-sim reports side by side '
                     'on their common seeds (successes, seeds only one solves, McNemar p)'),
    'eval-grounding': ('ahawam_ros.eval.grounding.cli', 'does the chunk see the cube? held-out '
                       'R^2 of its position from the chunk, input-swap sensitivity'),
    'eval-imagination': ('ahawam_ros.eval.imagination', "the world model's predicted frames "
                         'against the frames that came (PSNR, beside copying the last)'),
    'eval-curve': ('ahawam_ros.eval.grounding.curve', 'success and grounding of a training '
                   "run's checkpoints against training time"),
    'eval-bag': ('ahawam_ros.eval.bag.cli', 'replay recorded bags (or a LeRobot dataset) '
                 'through the async runtime and compare with the commands sent'),
    'export-lerobot': ('ahawam_ros.data.lerobot.cli', 'write bags as a LeRobot v3.0 dataset'),
    'bench': ('ahawam_ros.bench.cli', 'model, runtime and ROS benchmarks side by side '
              '(JSON and a table)'),
}


def _usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = ['usage: ahawam <command> [options]', '', 'commands:']
    lines += [f'  {name:<{width}}  {text}' for name, (_, text) in SUBCOMMANDS.items()]
    lines += ['', "run 'ahawam <command> --help' for a command's options"]
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Dispatch to the chosen subcommand and return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ('-h', '--help'):
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"ahawam: unknown command '{name}'\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except ValueError as error:
        from ahawam_ros.runtime.loading import is_checkpoint_error  # torch is loaded by now
        if not is_checkpoint_error(error):
            raise
        print(f'ahawam {name}: error: {error}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
