"""
Settings of `ahawam eval-bag`: the validated `BagEvalConfig` and the command-line flags.

Topics come from a YAML `TopicMapping` (`--mapping FILE`, see data/mapping) or each bag's
recorded layout, changed by `--cameras NAME[=TOPIC],...`, `--joint-states TOPIC,...`,
`--command-topic TOPIC,...` and `--max-skew S` (`MappingOverrides`).
"""

import argparse
from dataclasses import dataclass, field
import math
from pathlib import Path
from typing import Optional, Tuple

from ahawam_ros.data.bag_layout import Layout
from ahawam_ros.data.features import FeatureConfig
from ahawam_ros.data.lerobot.mapping import DatasetMapping, load_any_mapping
from ahawam_ros.data.mapping import MappingOverrides
from ahawam_ros.eval.bag.replay import ReplayTiming
from ahawam_ros.runtime.settings import RuntimeSettings
from ahawam_ros.runtime.settings_flags import add_settings_flags, settings_from_args


@dataclass(frozen=True)
class BagEvalConfig:
    """
    Settings of a bag evaluation; validated on construction.

    Attributes
    ----------
    settings : RuntimeSettings
        The runtime's knobs, as the nodes' (rates, cadence, blending, limits).
    planner_latency, executor_latency : float or None
        Seconds each `plan` / `predict_chunk` call takes in simulated time; None spends the
        measured duration of the real call.
    resize_images : bool
        Resize frames to the policy's input size (cv2 INTER_AREA) instead of failing.
    mapping : str
        YAML topic mapping file (data/mapping); empty uses the bag's recorded layout.
    cameras : tuple of str
        'name' or 'name=/topic' in the policy's view order; empty: the mapping's.
    joint_state_topics, command_topics : tuple of str
        Replace the mapping's joint-state / recorded-command topics; empty: the mapping's
        (by default /joint_states, and /joint_commands, else /joint_trajectory).
    max_skew : float or None
        Replaces the mapping's max_skew (s) of merged per-topic joint values.
    progress : bool
        Show progress bars (tqdm).

    """

    settings: RuntimeSettings = field(default_factory=RuntimeSettings)
    planner_latency: Optional[float] = None
    executor_latency: Optional[float] = None
    resize_images: bool = False
    mapping: str = ''
    cameras: Tuple[str, ...] = ()
    joint_state_topics: Tuple[str, ...] = ()
    command_topics: Tuple[str, ...] = ()
    max_skew: Optional[float] = None
    progress: bool = True

    def __post_init__(self):
        object.__setattr__(self, 'cameras', tuple(self.cameras))
        if not isinstance(self.settings, RuntimeSettings):
            raise ValueError(f'BagEvalConfig.settings: {self.settings!r} is not RuntimeSettings')
        self.overrides()  # validates the topic flags
        if self.mapping:
            load_any_mapping(self.mapping)  # validates the mapping file
        for name in ('planner_latency', 'executor_latency'):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f'BagEvalConfig.{name}: {value!r} must be None or >= 0 s')

    def overrides(self) -> MappingOverrides:
        """Return the command-line changes to each bag's mapping."""
        return MappingOverrides(self.cameras, self.joint_state_topics, self.command_topics,
                                self.max_skew)

    def layout(self, features: Optional[FeatureConfig] = None) -> Layout:
        """Return the mapping file's mapping, else `features` (None: each bag's own)."""
        if not self.mapping:
            return features
        mapping = load_any_mapping(self.mapping)
        if isinstance(mapping, DatasetMapping):
            raise ValueError(f'mapping file {self.mapping}: a LeRobot dataset mapping, given '
                             'for bags')
        return mapping

    def dataset_mapping(self) -> Optional[DatasetMapping]:
        """Return the mapping file's dataset mapping, else None (the dataset's own layout)."""
        if self.cameras or self.joint_state_topics or self.command_topics:
            raise ValueError('--cameras, --joint-states and --command-topic are for bags: '
                             'give a LeRobot dataset a --mapping file')
        if not self.mapping:
            return None
        mapping = load_any_mapping(self.mapping)
        if not isinstance(mapping, DatasetMapping):
            raise ValueError(f'mapping file {self.mapping}: a bag (topic) mapping, given for a '
                             'LeRobot dataset (see config/mappings/lerobot_aloha.yaml)')
        return mapping

    def timing(self) -> ReplayTiming:
        """Return the latencies of the replay."""
        return ReplayTiming(self.planner_latency, self.executor_latency)


def parser() -> argparse.ArgumentParser:
    """Return the argument parser of `ahawam eval-bag`."""
    parser = argparse.ArgumentParser(
        prog='ahawam eval-bag', description='Replay rosbag2 bags through the asynchronous '
        'runtime (planner + executor on the bag clock) and compare what the policy would have '
        'commanded with what was commanded.')
    add = parser.add_argument
    add('bags', metavar='BAG_OR_DIR', type=Path,
        help='a rosbag2 directory, an .mcap file, a tree of them, or a LeRobot dataset '
        '(v3.0 or v2.1; each episode is replayed)')
    add('--checkpoint', required=True, help="checkpoint directory, or 'fake' (FakePolicy)")
    add('--out', type=Path, help='output directory (default: outputs/eval_bag/<name>)')
    add('--force', action='store_true', help='replace --out if it exists')
    add('--device', default='cpu', help='torch device of the policy')
    add('--planner-latency', type=float, metavar='S',
        help='fixed seconds per planner refresh (default: the measured time of each call)')
    add('--executor-latency', type=float, metavar='S',
        help='fixed seconds per executor update (default: the measured time of each call)')
    add('--resize-images', action='store_true',
        help="resize frames to the policy's input size (cv2 INTER_AREA)")
    add('--mapping', default='', metavar='FILE', help='YAML topic and joint mapping, e.g. '
        'aloha_interbotix (default: the layout the bag recorded); for a LeRobot dataset its '
        'feature mapping, e.g. lerobot_aloha')
    add('--cameras', default='', metavar='NAME[=TOPIC],...',
        help="cameras in the policy's view order, optionally with their topics")
    add('--joint-states', default='', metavar='TOPIC,...', help='joint-state topics')
    add('--command-topic', default='', metavar='TOPIC,...', help='recorded command topics '
        '(default: /joint_commands, else /joint_trajectory)')
    add('--max-skew', type=float, metavar='S',
        help="largest age of a merged topic's newest value (default: the mapping's, 0.05)")
    add('--no-progress', action='store_true', help='no progress bars')
    add_settings_flags(parser)
    return parser


def config_from_args(args: argparse.Namespace) -> BagEvalConfig:
    """Return the settings the parsed flags `args` give."""
    return BagEvalConfig(
        settings=settings_from_args(args),
        planner_latency=args.planner_latency, executor_latency=args.executor_latency,
        resize_images=args.resize_images,
        mapping=args.mapping, cameras=_split(args.cameras),
        joint_state_topics=_split(args.joint_states), command_topics=_split(args.command_topic),
        max_skew=args.max_skew, progress=not args.no_progress)


def _split(flag: str) -> Tuple[str, ...]:
    return tuple(item for item in flag.split(',') if item)
