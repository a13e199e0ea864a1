"""
Settings of `ahawam eval-bag`: the validated `BagEvalConfig` and the command-line flags.

Topics come from a YAML `TopicMapping` (`--mapping FILE`, see data/mapping) or each bag's
recorded layout, changed by `--cameras NAME[=TOPIC],...`, `--joint-states TOPIC,...`,
`--command-topic TOPIC,...` and `--max-skew S` (`MappingOverrides`).
"""

import argparse
from dataclasses import dataclass
import math
from pathlib import Path
from typing import Optional, Tuple

from ahawam_ros import robot
from ahawam_ros.data.bag_layout import Layout
from ahawam_ros.data.features import FeatureConfig
from ahawam_ros.data.mapping import MappingOverrides
from ahawam_ros.data.mapping_yaml import load_mapping
from ahawam_ros.eval.bag_replay import ReplayTiming
from ahawam_ros.runtime.chunk_scheduler import BlendMode, SchedulerConfig
from ahawam_ros.runtime.executor_core import ExecutorConfig
from ahawam_ros.runtime.policy_api import ChunkPolicy
from ahawam_ros.runtime.safety import SafetyConfig
from ahawam_ros.runtime.update_timing import SPACING


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
    ensemble_decay : float
        m of the weighted blend: the i-th oldest prediction of a step weighs exp(-m i).
    max_step : float
        Largest change of a joint command per tick (safety filter).
    max_context_age, max_observation_age, max_image_age : float
        Seconds after which a context, joint state or frame is stale.
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

    planner_rate_hz: float = 4.0
    control_rate_hz: float = 0.0
    chunk_rate_hz: float = 0.0
    execute_steps: int = 8
    planner_latency: Optional[float] = None
    executor_latency: Optional[float] = None
    blend: str = BlendMode.LINEAR.value
    blend_steps: int = 4
    ensemble_decay: float = 0.01
    max_step: float = 0.05
    max_context_age: float = 1.5
    max_observation_age: float = 0.2
    max_image_age: float = 0.5
    resize_images: bool = False
    mapping: str = ''
    cameras: Tuple[str, ...] = ()
    joint_state_topics: Tuple[str, ...] = ()
    command_topics: Tuple[str, ...] = ()
    max_skew: Optional[float] = None
    progress: bool = True

    def __post_init__(self):
        object.__setattr__(self, 'cameras', tuple(self.cameras))
        self.overrides()  # validates the topic flags
        self.layout()  # validates the mapping file
        checks = {'planner_rate_hz': self.planner_rate_hz > 0.0,
                  'control_rate_hz': self.control_rate_hz >= 0.0,
                  'chunk_rate_hz': self.chunk_rate_hz >= 0.0,
                  'max_step': self.max_step > 0.0,
                  'max_context_age': self.max_context_age > 0.0,
                  'max_observation_age': self.max_observation_age > 0.0,
                  'max_image_age': self.max_image_age > 0.0,
                  'ensemble_decay': True}
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

    def overrides(self) -> MappingOverrides:
        """Return the command-line changes to each bag's mapping."""
        return MappingOverrides(self.cameras, self.joint_state_topics, self.command_topics,
                                self.max_skew)

    def layout(self, features: Optional[FeatureConfig] = None) -> Layout:
        """Return the mapping file's mapping, else `features` (None: each bag's own)."""
        return load_mapping(self.mapping) if self.mapping else features

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
        # 'spacing': a chunk timer's rule, every execute_steps (the latency schedule is for
        # workers woken by every input, as in the nodes and eval-sim)
        return ExecutorConfig(safety=safety,
                              scheduler=SchedulerConfig(self.blend, self.blend_steps,
                                                        self.ensemble_decay),
                              max_image_age=self.max_image_age, schedule=SPACING,
                              execute_steps=self.execute_steps)


def parser() -> argparse.ArgumentParser:
    """Return the argument parser of `ahawam eval-bag`."""
    parser = argparse.ArgumentParser(
        prog='ahawam eval-bag', description='Replay rosbag2 bags through the asynchronous '
        'runtime (planner + executor on the bag clock) and compare what the policy would have '
        'commanded with what was commanded.')
    add = parser.add_argument
    add('bags', metavar='BAG_OR_DIR', type=Path,
        help='a rosbag2 directory, an .mcap file, or a tree of them')
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
    add('--ensemble-decay', type=float, default=0.01, metavar='M',
        help='weighted blend: the i-th oldest prediction of a step weighs exp(-M i)')
    add('--max-step', type=float, default=0.05, help='largest command change per tick')
    add('--max-context-age', type=float, default=1.5, metavar='S')
    add('--max-observation-age', type=float, default=0.2, metavar='S')
    add('--max-image-age', type=float, default=0.5, metavar='S')
    add('--resize-images', action='store_true',
        help="resize frames to the policy's input size (cv2 INTER_AREA)")
    add('--mapping', default='', metavar='FILE', help='YAML topic and joint mapping, e.g. '
        'config/mappings/aloha_interbotix.yaml (default: the layout the bag recorded)')
    add('--cameras', default='', metavar='NAME[=TOPIC],...',
        help="cameras in the policy's view order, optionally with their topics")
    add('--joint-states', default='', metavar='TOPIC,...', help='joint-state topics')
    add('--command-topic', default='', metavar='TOPIC,...', help='recorded command topics '
        '(default: /joint_commands, else /joint_trajectory)')
    add('--max-skew', type=float, metavar='S',
        help="largest age of a merged topic's newest value (default: the mapping's, 0.05)")
    add('--no-progress', action='store_true', help='no progress bars')
    return parser


def config_from_args(args: argparse.Namespace) -> BagEvalConfig:
    """Return the settings the parsed flags `args` give."""
    return BagEvalConfig(
        planner_rate_hz=args.planner_rate, control_rate_hz=args.control_rate,
        chunk_rate_hz=args.chunk_rate, execute_steps=args.execute_steps,
        planner_latency=args.planner_latency, executor_latency=args.executor_latency,
        blend=args.blend, blend_steps=args.blend_steps, ensemble_decay=args.ensemble_decay,
        max_step=args.max_step,
        max_context_age=args.max_context_age, max_observation_age=args.max_observation_age,
        max_image_age=args.max_image_age, resize_images=args.resize_images,
        mapping=args.mapping, cameras=_split(args.cameras),
        joint_state_topics=_split(args.joint_states), command_topics=_split(args.command_topic),
        max_skew=args.max_skew, progress=not args.no_progress)


def _split(flag: str) -> Tuple[str, ...]:
    return tuple(item for item in flag.split(',') if item)
