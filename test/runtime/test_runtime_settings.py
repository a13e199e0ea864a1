"""The runtime's settings: one default per knob, validated, read from a parameter file."""

import dataclasses
import math

from ahawam_ros.runtime.assembly import build_runtime, HostRules, limits_for
from ahawam_ros.runtime.params_file import settings_from_params_file, write_params_file
from ahawam_ros.runtime.policy_api import FakePolicy
from ahawam_ros.runtime.settings import (executor_core_config, ExecutorSettings, JointLimits,
                                         planner_core_config, PlannerSettings, RuntimeSettings)
import pytest


def test_replace_reaches_both_parts_and_validates():
    settings = RuntimeSettings().replace(max_image_age=0.25, execute_steps=3)
    assert settings.planner.max_image_age == settings.executor.max_image_age == 0.25
    assert settings.executor.execute_steps == 3
    with pytest.raises(ValueError, match=r"unknown runtime settings \['bogus'\]"):
        RuntimeSettings().replace(bogus=1)
    with pytest.raises(ValueError, match='schedule must be one of'):
        ExecutorSettings(schedule='eager')
    with pytest.raises(ValueError, match=r'refresh_rate_hz must be in \[0.05, 100.0\]'):
        PlannerSettings(refresh_rate_hz=math.nan)


def test_the_one_mapping_carries_every_knob_into_the_core_configs():
    knobs = ExecutorSettings(execute_steps=7, blend='linear', blend_steps=3, ensemble_decay=0.2,
                             max_step=0.01, max_context_age=0.9, max_observation_age=0.3,
                             max_image_age=0.4, max_future_stamp=0.1, schedule='latency',
                             lead_percentile=80.0, lead_margin_steps=5)
    core = executor_core_config(knobs, JointLimits.uniform(3, 2.0), zero_stamp_is_unset=True)
    assert (core.execute_steps, core.schedule, core.lead_percentile,
            core.lead_margin_steps) == (7, 'latency', 80.0, 5)
    assert (core.scheduler.blend, core.scheduler.blend_steps,
            core.scheduler.ensemble_decay) == ('linear', 3, 0.2)
    assert core.safety.max_step == (0.01,) * 3 and core.safety.upper == (2.0,) * 3
    assert (core.safety.max_context_age, core.safety.max_observation_age) == (0.9, 0.3)
    assert core.max_image_age == 0.4
    assert core.stamps.max_future == 0.1 and core.stamps.zero_is_unset
    planner = planner_core_config(PlannerSettings(refresh_rate_hz=4.0, max_image_age=0.3))
    assert planner.min_interval == 0.25 and planner.max_image_age == 0.3
    assert planner_core_config(PlannerSettings(), paced=False).min_interval == 0.0


def test_a_written_parameter_file_reads_back_the_same_settings(tmp_path):
    settings = RuntimeSettings().replace(refresh_rate_hz=2.0, execute_steps=4, blend='none')
    base = tmp_path / 'base.yaml'
    base.write_text('/**/action_executor:\n  ros__parameters:\n    resize_images: true\n')
    path = write_params_file(settings, base, tmp_path / 'params.yaml')
    assert settings_from_params_file(path) == settings
    assert 'resize_images: true' in path.read_text()  # the base file's other keys stay
    assert settings_from_params_file(None) == RuntimeSettings()


def test_the_assembly_builds_the_cores_from_the_settings():
    policy = FakePolicy(action_dim=14)
    settings = RuntimeSettings().replace(execute_steps=5, refresh_rate_hz=2.0, max_step=0.02)
    runtime = build_runtime(policy, settings, HostRules())
    assert runtime.planner.slot is runtime.executor.slot  # in-process: one shared slot
    assert runtime.executor.timing.execute_steps == 5
    assert runtime.executor.config.safety.lower == limits_for(14).lower
    assert runtime.planner.config.min_interval == 0.5
    apart = build_runtime(policy, settings, HostRules(), shared_slot=False)
    assert apart.planner.slot is not apart.executor.slot
    alone = build_runtime(policy, settings, HostRules(), with_planner=False)
    assert alone.planner is None and alone.orchestrator.planner is None
    assert limits_for(3) == JointLimits.uniform(3)
    assert dataclasses.asdict(settings)['executor']['max_step'] == 0.02
