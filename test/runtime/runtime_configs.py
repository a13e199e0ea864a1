"""
Core configs for the runtime's unit tests: explicit test values, one place to read them.

The package builds these from `RuntimeSettings` (its defaults); the unit tests pick their own
values (the latency schedule, no minimum spacing, a linear seam) to exercise each rule.
"""

from ahawam_ros.runtime.chunk_scheduler import SchedulerConfig
from ahawam_ros.runtime.executor_config import ExecutorCoreConfig
from ahawam_ros.runtime.planner_core import PlannerCoreConfig
from ahawam_ros.runtime.safety import SafetyConfig
from ahawam_ros.runtime.stamps import StampConfig


def scheduler_config(blend='linear', blend_steps=4, ensemble_decay=0.01) -> SchedulerConfig:
    """Return a seam config (a linear 4-step crossfade unless told otherwise)."""
    return SchedulerConfig(blend, blend_steps, ensemble_decay)


def stamp_config(max_future=0.2, **changes) -> StampConfig:
    """Return the stamp tolerances (0.2 s ahead unless told otherwise)."""
    return StampConfig(max_future=max_future, **changes)


def executor_config(safety: SafetyConfig, **changes) -> ExecutorCoreConfig:
    """Return an executor core config: latency schedule, no minimum spacing, linear seam."""
    values = {'scheduler': scheduler_config(), 'max_image_age': 0.5, 'max_joint_excess': 0.5,
              'schedule': 'latency',
              'execute_steps': 0, 'lead_percentile': 90.0, 'lead_margin_steps': 2,
              'stamps': stamp_config()}
    values.update(changes)
    return ExecutorCoreConfig(safety=safety, **values)


def planner_config(**changes) -> PlannerCoreConfig:
    """Return a planner core config: frames up to 0.5 s old, no pacing."""
    values = {'max_image_age': 0.5, 'min_interval': 0.0, 'stamps': stamp_config()}
    values.update(changes)
    return PlannerCoreConfig(**values)
