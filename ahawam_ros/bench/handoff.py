"""
The context handoff bench alone: by reference vs serialized, the policy's context and sizes.

    python -m ahawam_ros.bench.handoff [--checkpoint DIR] [--sizes-mib 1 16 64]
"""

import argparse
from typing import Optional, Sequence

from ahawam_ros.eval.closed_loop.policy import load_eval_policy, policy_views
from ahawam_ros.ros.bench_handoff import (handoff_contexts, handoff_lines, HANDOFF_MIB,
                                          measure_handoff)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the context handoff bench: the policy's context and synthetic sizes."""
    parser = argparse.ArgumentParser(prog='python -m ahawam_ros.bench.handoff',
                                     description=main.__doc__)
    parser.add_argument('--checkpoint', default='', help='policy whose context is measured '
                        '(default: the packaged one)')
    parser.add_argument('--sizes-mib', type=float, nargs='*', default=list(HANDOFF_MIB))
    parser.add_argument('--handoffs', type=int, default=50)
    args = parser.parse_args(argv)
    policy = load_eval_policy(args.checkpoint)
    contexts = handoff_contexts(policy, (policy_views(policy), *policy.image_size),
                                args.sizes_mib)
    print('\n'.join(handoff_lines(measure_handoff(contexts, args.handoffs))))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
