"""
Record scripted demonstrations as rosbag2 mcap bags, one bag per successful episode.

    python -m ahawam_ros.sim.record_demos --task transfer_cube --episodes 60 --out DIR

Seeds S, S+1, ..., S+N-1 are attempted (S = --seed); each successful episode is written to
DIR/<task>_seed<seed>/ with the topics of the task's FeatureConfig preset. Existing bags are
kept (the run resumes). This entry point is where the simulator meets the bag writer; the
simulator library itself imports nothing from `ahawam_ros.data`.
"""

import argparse
import dataclasses
from pathlib import Path
import sys
import time
from typing import List, Optional

from ahawam_ros.data.demo_bags import write_episode_bag_atomic
from ahawam_ros.data.features import FEATURE_PRESETS, FeatureConfig
from ahawam_ros.robot import FIRST_HELD_OUT_SEED
from ahawam_ros.sim.aloha_env import SimConfig
from ahawam_ros.sim.scripted_expert import ScriptedExpert
from ahawam_ros.sim.tasks import check_placement_margin, TASKS
import numpy as np


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m ahawam_ros.sim.record_demos',
                                     description=__doc__.strip().splitlines()[0])
    parser.add_argument('--task', choices=sorted(TASKS), default='transfer_cube')
    parser.add_argument('--episodes', type=int, required=True, help='seeds to attempt')
    parser.add_argument('--out', type=Path, required=True, help='directory of the bags')
    parser.add_argument('--seed', type=int, default=0, help='first seed')
    parser.add_argument('--cameras', help='comma-separated cameras (default: the preset)')
    parser.add_argument('--height', type=int, help='image height (default: the preset)')
    parser.add_argument('--width', type=int, help='image width (default: the preset)')
    parser.add_argument('--episode-len', type=int, default=SimConfig.episode_len,
                        help='control steps per episode')
    parser.add_argument('--trajectory-horizon', type=int, default=1,
                        help='commands per /joint_trajectory message')
    parser.add_argument('--no-compress', action='store_true', help='write uncompressed mcap')
    parser.add_argument('--action-noise', type=float, default=0.0,
                        help='DART: std (rad) of smooth noise on the replayed arm commands; '
                             'the recorded actions stay the clean commands')
    parser.add_argument('--noisy-every', type=int, default=1,
                        help='inject the noise on every k-th seed only (default: all)')
    parser.add_argument('--placement-margin', type=float, default=SimConfig.placement_margin,
                        metavar='METRES',
                        help='place the objects over their boxes widened by this on every '
                             'side (its own placement per seed), so that the edges of the '
                             'evaluation lie inside the demonstrated area (default '
                             '%(default)s: the placement of gym-aloha, as in the evaluations)')
    return parser


def _features(args: argparse.Namespace) -> FeatureConfig:
    features = FEATURE_PRESETS.get(args.task, FeatureConfig(task=args.task))
    changes = {'task': args.task}
    if args.cameras:
        changes['cameras'] = tuple(c.strip() for c in args.cameras.split(',') if c.strip())
    if args.height:
        changes['image_height'] = args.height
    if args.width:
        changes['image_width'] = args.width
    return dataclasses.replace(features, **changes)


def main(argv: Optional[List[str]] = None) -> int:
    """Generate the episodes, write the bags and print the expert's success rate."""
    args = _parser().parse_args(argv)
    if args.episodes < 1 or args.seed < 0 or args.action_noise < 0 or args.noisy_every < 1:
        print('record_demos: --episodes must be >= 1, --seed >= 0, --action-noise >= 0 and '
              '--noisy-every >= 1', file=sys.stderr)
        return 2
    features = _features(args)
    try:
        check_placement_margin(args.placement_margin)
    except ValueError as exc:
        print(f'record_demos: --placement-margin: {exc}', file=sys.stderr)
        return 2
    if args.seed + args.episodes > FIRST_HELD_OUT_SEED:
        print(f'record_demos: warning: seeds from {FIRST_HELD_OUT_SEED} are held out for '
              'evaluation (eval-sim, eval-grounding, the demo); a policy trained on them is '
              'scored on its training placements', file=sys.stderr)
    sim_config = SimConfig(task=args.task, cameras=features.cameras,
                           image_height=features.image_height, image_width=features.image_width,
                           episode_len=args.episode_len,
                           placement_margin=args.placement_margin)
    args.out.mkdir(parents=True, exist_ok=True)
    successes, start = 0, time.monotonic()
    with ScriptedExpert(sim_config) as expert:
        for seed in range(args.seed, args.seed + args.episodes):
            path = args.out / f'{args.task}_seed{seed:06d}'
            if path.exists():
                print(f'seed {seed}: kept existing {path}')
                successes += 1
                continue
            noise = args.action_noise if seed % args.noisy_every == 0 else 0.0
            episode = expert.episode(seed, action_noise=noise)
            if episode is None:
                print(f'seed {seed}: expert failed, no bag')
                continue
            write_episode_bag_atomic(
                episode, path, features, trajectory_horizon=args.trajectory_horizon,
                compress=not args.no_compress,
                extra_metadata={'generator': 'ahawam_ros.sim.scripted_expert',
                                'episode_len': args.episode_len, 'action_noise': noise,
                                'placement_margin': args.placement_margin,
                                # Training-time auxiliary target only, never a policy input.
                                'privileged_object_position': np.round(
                                    episode.object_pose[:, :3], 5).tolist()})
            successes += 1
            print(f'seed {seed}: wrote {path} ({time.monotonic() - start:.0f} s elapsed)',
                  flush=True)
    rate = successes / args.episodes
    print(f'{args.task}: {successes}/{args.episodes} successful episodes ({rate:.0%}), '
          f'{time.monotonic() - start:.0f} s, bags in {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
