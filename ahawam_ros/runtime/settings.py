"""
The runtime's settings: every knob of the planner and executor, with its one default.

`RuntimeSettings` (a `PlannerSettings` and an `ExecutorSettings`) is what the deployed system
runs unless a user overrides it. Everything else is derived from these dataclasses:

- the nodes' parameters (`ros/node_configs.py` inherits these fields; live / read-only as
  each class's `LIVE` says), and so `ros2 param describe`;
- the flags of `ahawam eval-sim`, `eval-bag` and `bench` (`settings_flags.py`);
- the cores' configs (`executor_core_config`, `planner_core_config`: the one mapping);
- a ROS parameter file, read without ROS by `settings_from_params_file` (`params_file.py`).

Each field is declared with `setting(default, help, range)`: the help becomes the parameter
description and the flag's help, the (lo, hi) range the parameter's range and a check here.
"""

import dataclasses
from dataclasses import dataclass
import math
from typing import Any, ClassVar, Dict, Optional, Tuple

from ahawam_ros import robot
from ahawam_ros.runtime.chunk_scheduler import BlendMode, SchedulerConfig
from ahawam_ros.runtime.executor_config import ExecutorCoreConfig
from ahawam_ros.runtime.planner_core import PlannerCoreConfig
from ahawam_ros.runtime.safety import SafetyConfig
from ahawam_ros.runtime.stamps import StampConfig
from ahawam_ros.runtime.update_timing import SCHEDULES, SPACING


def setting(default: Any, help: str, range: Optional[tuple] = None):  # noqa: A002
    """Declare a settings field with its description and optional (lo, hi) range."""
    metadata = {'help': help}
    if range is not None:
        metadata['range'] = range
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default_factory=lambda: tuple(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def check_ranges(config) -> None:
    """Raise ValueError naming the first field outside its `metadata['range']` (lo, hi)."""
    for spec in dataclasses.fields(config):
        lo_hi = spec.metadata.get('range')
        value = getattr(config, spec.name)
        if lo_hi is not None and not (lo_hi[0] <= value <= lo_hi[1]):  # NaN fails too
            raise ValueError(f'{spec.name} must be in [{lo_hi[0]}, {lo_hi[1]}], got {value}')


def check_choice(config, name: str, valid) -> None:
    """Raise ValueError unless field `name` of `config` is one of `valid`."""
    if getattr(config, name) not in valid:
        raise ValueError(f'{name} must be one of {list(valid)}, got {getattr(config, name)!r}')


@dataclass(frozen=True)
class InputSettings:
    """What both cores accept as input: frame age and stamp tolerance."""

    max_image_age: float = setting(0.5, 'frames older than this (s) are not used',
                                   (0.001, 60.0))
    max_future_stamp: float = setting(0.2, "input stamps further ahead of this node's clock "
                                      '(s) are refused (unsynchronised clocks)', (0.0, 10.0))

    def __post_init__(self):
        check_ranges(self)


@dataclass(frozen=True)
class PlannerSettings(InputSettings):
    """The world planner's knobs."""

    LIVE: ClassVar[Tuple[str, ...]] = ('refresh_rate_hz', 'max_image_age')

    refresh_rate_hz: float = setting(3.0, 'planner refreshes per second, at most',
                                     (0.05, 100.0))


@dataclass(frozen=True)
class ExecutorSettings(InputSettings):
    """The action executor's knobs: cadence, seam blending, safety limits."""

    LIVE: ClassVar[Tuple[str, ...]] = (
        'max_step', 'control_rate_hz', 'execute_steps', 'blend', 'blend_steps',
        'ensemble_decay', 'max_context_age', 'max_observation_age', 'max_image_age')

    control_rate_hz: float = setting(robot.CONTROL_RATE_HZ, 'command timer rate',
                                     (1.0, 1000.0))
    num_inference_steps: int = setting(0, "Euler steps per chunk; 0 = the checkpoint's",
                                       (0, 100))
    schedule: str = setting(SPACING, 'when the next chunk is computed: spacing (as soon as '
                            'execute_steps allows) or latency (when the actions left fall to '
                            'the predicted update latency + lead_margin_steps)')
    execute_steps: int = setting(1, 'minimum spacing: no new chunk before this many actions '
                                 'of the newest one are due (0: none)', (0, 1000))
    lead_percentile: float = setting(90.0, 'percentile of recent update latencies that '
                                     'predicts the next one (latency schedule)', (1.0, 100.0))
    lead_margin_steps: int = setting(2, 'control steps added to the predicted update latency '
                                     '(latency schedule)', (0, 1000))
    blend: str = setting(BlendMode.WEIGHTED.value, 'how chunks meet: none, linear (crossfade '
                         'over blend_steps) or weighted (temporal ensembling, as ACT)')
    blend_steps: int = setting(4, 'crossfade length (control steps) of the linear blend',
                               (0, 100))
    ensemble_decay: float = setting(0.01, 'weighted blend: the i-th oldest prediction of a '
                                    'step is weighted exp(-m i) (ACT: 0.01)', (-10.0, 10.0))
    max_step: float = setting(0.05, 'largest change of a joint command per tick (rad, or '
                              'normalised gripper units)', (1e-4, 0.5))
    max_context_age: float = setting(1.5, 'hold when the planner context is older (s)',
                                     (0.001, 60.0))
    max_observation_age: float = setting(0.2, 'hold when the joint state is older (s)',
                                         (0.001, 60.0))
    max_joint_excess: float = setting(0.5, 'a measured joint state further outside the joint '
                                      'limits than this (rad, or gripper units) is refused as '
                                      'impossible, like NaN', (0.0, 10.0))

    def __post_init__(self):
        super().__post_init__()
        check_choice(self, 'schedule', SCHEDULES)
        check_choice(self, 'blend', [mode.value for mode in BlendMode])


@dataclass(frozen=True)
class RuntimeSettings:
    """Both cores' settings: what every host (nodes, eval-sim, eval-bag, bench) runs."""

    planner: PlannerSettings = dataclasses.field(default_factory=PlannerSettings)
    executor: ExecutorSettings = dataclasses.field(default_factory=ExecutorSettings)

    def __post_init__(self):
        if not isinstance(self.planner, PlannerSettings):
            raise ValueError(f'planner must be PlannerSettings, got {self.planner!r}')
        if not isinstance(self.executor, ExecutorSettings):
            raise ValueError(f'executor must be ExecutorSettings, got {self.executor!r}')

    def replace(self, **changes: Any) -> 'RuntimeSettings':
        """Return a copy with fields of either part changed by name (validated)."""
        names = {role: {f.name for f in dataclasses.fields(part)}
                 for role, part in (('planner', self.planner), ('executor', self.executor))}
        unknown = sorted(set(changes) - names['planner'] - names['executor'])
        if unknown:
            raise ValueError(f'unknown runtime settings {unknown}; valid: '
                             f'{sorted(names["planner"] | names["executor"])}')
        parts = {role: dataclasses.replace(getattr(self, role), **{
            k: v for k, v in changes.items() if k in names[role]}) for role in names}
        return RuntimeSettings(**parts)

    def as_dict(self) -> Dict[str, Dict[str, Any]]:
        """Return {'planner': {...}, 'executor': {...}} (JSON-ready)."""
        return dataclasses.asdict(self)


def part_values(part_cls, values: Dict[str, Any]) -> Dict[str, Any]:
    """Keep the entries of `values` that are fields of `part_cls` (lists become tuples)."""
    names = {f.name for f in dataclasses.fields(part_cls)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}


@dataclass(frozen=True)
class JointLimits:
    """Position limits of the commanded joints, (A,) each in the policy's joint order."""

    lower: Tuple[float, ...] = robot.JOINT_LOWER
    upper: Tuple[float, ...] = robot.JOINT_UPPER

    @property
    def action_dim(self) -> int:
        return len(self.lower)

    @classmethod
    def uniform(cls, action_dim: int, bound: float = math.pi) -> 'JointLimits':
        """Return +-`bound` for `action_dim` joints (a robot without known limits)."""
        return cls((-bound,) * action_dim, (bound,) * action_dim)


def executor_core_config(settings: ExecutorSettings, limits: JointLimits = JointLimits(),
                         zero_stamp_is_unset: bool = False) -> ExecutorCoreConfig:
    """
    Map the executor's settings onto the `ExecutorCore`'s config (the one mapping).

    `limits` are the robot's; `zero_stamp_is_unset` is the host's stamp rule (ROS headers:
    0 is unset; a simulated clock that starts at 0: a real time).
    """
    safety = SafetyConfig(lower=tuple(limits.lower), upper=tuple(limits.upper),
                          max_step=(settings.max_step,) * limits.action_dim,
                          max_context_age=settings.max_context_age,
                          max_observation_age=settings.max_observation_age)
    return ExecutorCoreConfig(
        safety=safety,
        scheduler=SchedulerConfig(settings.blend, settings.blend_steps, settings.ensemble_decay),
        max_image_age=settings.max_image_age, max_joint_excess=settings.max_joint_excess,
        schedule=settings.schedule,
        execute_steps=settings.execute_steps, lead_percentile=settings.lead_percentile,
        lead_margin_steps=settings.lead_margin_steps,
        stamps=StampConfig(max_future=settings.max_future_stamp,
                           zero_is_unset=zero_stamp_is_unset))


def planner_core_config(settings: PlannerSettings, zero_stamp_is_unset: bool = False,
                        paced: bool = True) -> PlannerCoreConfig:
    """
    Map the planner's settings onto the `PlannerCore`'s config (the one mapping).

    `paced`: the core itself keeps refreshes 1 / refresh_rate_hz apart (a host without a
    refresh timer); a node's timer paces them instead (False).
    """
    return PlannerCoreConfig(
        max_image_age=settings.max_image_age,
        min_interval=1.0 / settings.refresh_rate_hz if paced else 0.0,
        stamps=StampConfig(max_future=settings.max_future_stamp,
                           zero_is_unset=zero_stamp_is_unset))
