"""
`ahawam export-lerobot`: bags (the demo's, record-demos', a robot's) as a LeRobot v3.0 dataset.

    ahawam export-lerobot BAGS_DIR --out DATASET_DIR [--mapping FILE] [--fps HZ]
        [--codec libx264|libsvtav1] [--robot-type NAME]

Each bag is read on its command clock as training reads it (`bag_reader`, through a topic
mapping for a robot's own layout) and written as one episode (`writer`): the policy's views
as `observation.images.<view>` videos, its joints as `observation.state` and `action`, the
task name as the episode's task. The rate is the bags' recorded control rate, else the one
their command stamps give (whole Hz); bags that disagree, or frames of other sizes, stop with
exit 2 and nothing written.
"""

import argparse
from pathlib import Path
import sys
from typing import List, Optional

from ahawam_ros.data.bag_files import BagError, find_bags
from ahawam_ros.data.bag_reader import read_episode
from ahawam_ros.data.demo_bags import METADATA_FILE, read_bag_metadata
from ahawam_ros.data.episode import Episode
from ahawam_ros.data.lerobot.writer import DatasetWriter, DEFAULT_CODEC
from ahawam_ros.data.mapping_yaml import load_mapping
import numpy as np


def step_rate(bag: Path, episode: Episode) -> float:
    """
    Return the bag's control rate: recorded in its episode.json, else from its stamps.

    A live recording's commands come at the control rate with jitter (49.8 or 49.96 Hz for
    50): the median period, rounded to whole Hz. --fps overrides it.
    """
    if (bag / METADATA_FILE).is_file():
        rate = read_bag_metadata(bag).get('control_rate_hz')
        if rate:
            return float(rate)
    if len(episode) < 2:
        raise BagError(f'bag {bag}: one step, no rate: give --fps')
    return float(np.round(1e9 / np.median(np.diff(episode.timestamps))))  # whole Hz


def parser() -> argparse.ArgumentParser:
    """Return the argument parser of `ahawam export-lerobot`."""
    parser = argparse.ArgumentParser(
        prog='ahawam export-lerobot', description='Write rosbag2 demonstrations as a LeRobot '
        'v3.0 dataset (one episode per bag).')
    add = parser.add_argument
    add('bags', metavar='BAGS', type=Path, help='a bag, or a directory tree of bags')
    add('--out', type=Path, required=True, help='dataset directory to create')
    add('--mapping', help='YAML topic and joint mapping of the bags (default: their recorded '
        'layout)')
    add('--fps', type=float, help="the dataset's fps (default: the bags' control rate)")
    add('--codec', default=DEFAULT_CODEC, help=f'video encoder (default {DEFAULT_CODEC}: '
        "H.264; libsvtav1: LeRobot's AV1, smaller files)")
    add('--robot-type', default='aloha', help="info.json's robot_type (default aloha)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run `ahawam export-lerobot`; return 0, or 2 with a one-line message."""
    args = parser().parse_args(argv)
    writer = None
    try:
        bags = find_bags(args.bags)
        if not bags:
            raise BagError(f'no rosbag2 bags under {args.bags}')
        layout = load_mapping(args.mapping) if args.mapping else None
        for number, bag in enumerate(bags):
            episode = read_episode(bag, layout)
            rate = args.fps or step_rate(bag, episode)
            if writer is None:
                writer = DatasetWriter(args.out, rate, args.robot_type, args.codec)
            elif abs(rate - writer.fps) > 1e-6 * rate:
                raise BagError(f"bag {bag}: control rate {rate:g} Hz, the first bag's "
                               f'{writer.fps:g} Hz: export them apart, or give --fps')
            try:
                writer.add(episode)
            except ValueError as error:
                raise BagError(f'bag {bag}: {error}') from None
            print(f'{number + 1}/{len(bags)} {bag}: {len(episode)} steps')
        out = writer.close()
    except (BagError, FileExistsError, ValueError) as error:
        if writer is not None:
            writer.abort()
        print(f'ahawam export-lerobot: error: {error}', file=sys.stderr)
        return 2
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    print(f'wrote {out} ({len(bags)} episodes, {writer.rows} frames, {writer.fps:g} fps)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
