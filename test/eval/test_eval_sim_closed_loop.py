"""The lock-step closed loop: latency scheduling, modes, intervals (no simulator needed)."""

import math
from pathlib import Path
from types import SimpleNamespace

from ahawam_ros.eval.closed_loop.cli import parse_options, ros_figures
from ahawam_ros.eval.closed_loop.lockstep import (ClosedLoopConfig, delay_steps, EpisodeResult,
                                                  LockstepRuntime, run_episode)
from ahawam_ros.eval.closed_loop.metrics import format_table, summarize_mode, wilson_interval
from ahawam_ros.eval.closed_loop.modes import blank_context, PLANNER_OFF, SYNC
from ahawam_ros.model.kv_memory import PlannerContext
from ahawam_ros.runtime.clock import ManualClock
from ahawam_ros.runtime.params_file import settings_from_params_file
from ahawam_ros.runtime.policy_api import FakeContext, FakePolicy
from ahawam_ros.runtime.settings import RuntimeSettings
from fake_env import FakeEnv, views
import pytest
import torch
import yaml

PERIOD = 0.02
PARAMS = Path(__file__).resolve().parents[2] / 'config' / 'bimanual.yaml'


def knobs(**changes) -> RuntimeSettings:
    return RuntimeSettings().replace(**changes)


def fake_policy(wall, plan_latency, chunk_latency):
    return FakePolicy(chunk_len=16, plan_latency=plan_latency, chunk_latency=chunk_latency,
                      sleep=wall.advance)


@pytest.mark.parametrize('successes,trials,expected', [
    (5, 10, (0.2366, 0.7634)), (0, 10, (0.0, 0.2775)), (10, 10, (0.7225, 1.0)),
    (1, 20, (0.0089, 0.2361))])
def test_wilson_interval_matches_published_95_percent_values(successes, trials, expected):
    low, high = wilson_interval(successes, trials, confidence=0.95)
    assert low == pytest.approx(expected[0], abs=1e-4)
    assert high == pytest.approx(expected[1], abs=1e-4)


def test_wilson_interval_68_is_narrower_and_degenerate_cases():
    narrow, wide = wilson_interval(3, 10), wilson_interval(3, 10, 0.95)
    assert wide[0] < narrow[0] < 0.3 < narrow[1] < wide[1]
    low, high = wilson_interval(1, 2)  # symmetric around 1/2; z = 0.9945 for 68 %
    assert low == pytest.approx(1.0 - high) and high == pytest.approx(0.7876, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


@pytest.mark.parametrize('latency,steps', [(0.0, 0), (0.001, 1), (0.02, 1), (0.04, 2),
                                           (0.041, 3), (0.3 - 0.2, 5),
                                           (0.30000000000000004 - 0.2, 5)])
def test_delay_rounds_up_to_whole_control_steps(latency, steps):
    assert delay_steps(latency, PERIOD) == steps


def _drive(policy, config, wall, steps):
    """Run the runtime by hand; return the result and the command of every step."""
    runtime = LockstepRuntime(policy, config, wall)
    result, env, commands = EpisodeResult(seed=0), FakeEnv(), []
    observation = env.reset(0)
    for index in range(steps):
        command = runtime.step(index, views(observation), observation.qpos, result)
        commands.append(command)
        observation = env.step(command.positions)
    return result, commands


@pytest.mark.parametrize('plan_latency,chunk_latency,plan_delay,chunk_delay', [
    (0.1, 0.05, 5, 3), (0.3, 0.02, 15, 1), (0.06, 0.0, 3, 0)])
def test_results_are_used_exactly_when_their_latency_has_passed(plan_latency, chunk_latency,
                                                                plan_delay, chunk_delay):
    wall = ManualClock()
    policy = fake_policy(wall, plan_latency, chunk_latency)
    result, commands = _drive(policy, ClosedLoopConfig(settings=knobs(execute_steps=4)), wall, 60)
    assert result.plan_events and result.chunk_events
    assert all(ready - start == plan_delay for start, ready in result.plan_events)
    assert all(ready - start == chunk_delay for start, ready in result.chunk_events)
    # context k (seq k) was planned at plan_events[k - 1]; the first chunk computed from it
    # (the policy records each chunk's context step) may drive commands only once it is ready
    chunk_context_steps = [context_step for _, context_step in policy.chunk_calls]
    for seq, (planned, _) in enumerate(result.plan_events, start=1):
        if planned not in chunk_context_steps:
            continue
        ready = result.chunk_events[chunk_context_steps.index(planned)][1]
        if ready >= len(commands):
            continue  # arrives after the run
        used = [i for i, c in enumerate(commands) if not c.is_hold and c.context_seq == seq]
        assert used and used[0] == ready, (seq, used[:3], ready)
    first = next(i for i, command in enumerate(commands) if not command.is_hold)
    assert first == max(plan_delay + chunk_delay, 1)  # step 0 always holds (startup)


def test_first_action_waits_for_the_planner_then_the_executor():
    wall = ManualClock()
    result = run_episode(fake_policy(wall, 0.1, 0.05), FakeEnv(), ClosedLoopConfig(max_steps=30),
                         seed=3, views=views, wall_clock=wall)
    assert result.first_action_step == 5 + 3  # context ready at 5, its first chunk at 8
    assert result.holds['startup'] == 1 and sum(result.holds.values()) == 8
    assert result.steps == 30 and result.executed == 22


def test_sync_mode_pays_the_refresh_inside_every_update():
    wall = ManualClock()
    policy = fake_policy(wall, 0.03, 0.03)
    result = run_episode(policy, FakeEnv(), ClosedLoopConfig(mode=SYNC, max_steps=40), seed=0,
                         views=views, wall_clock=wall)
    assert not result.plan_events  # no separate planner
    assert all(ready - start == 3 for start, ready in result.chunk_events)  # 60 ms
    assert result.first_action_step == 3
    assert [step for step, _ in policy.chunk_calls] == [s for s, _ in result.chunk_events]
    assert all(context_step == step for step, context_step in policy.chunk_calls)


def test_planner_off_runs_the_executor_on_a_blank_context():
    wall = ManualClock()
    policy = fake_policy(wall, 0.0, 0.0)
    result = run_episode(policy, FakeEnv(), ClosedLoopConfig(mode=PLANNER_OFF, max_steps=20),
                         seed=0, views=views, wall_clock=wall)
    assert policy.plan_calls == [0] and not result.plan_events  # only the black frame
    assert policy.resets >= 2  # after the black-frame plan, the memory is cleared
    assert result.first_action_step == 1  # startup hold, then the first chunk at once
    assert result.executed == 19


def test_blank_context_zeroes_tensors_and_keeps_everything_else():
    context = PlannerContext(torch.randn(2, 2, 8, 16), torch.randn(2, 2, 8, 16), 40, 5.0, 3)
    blank = blank_context(context)
    assert blank.keys.shape == context.keys.shape and blank.keys.dtype == context.keys.dtype
    assert not blank.keys.any() and not blank.values.any() and context.keys.any()
    assert (blank.step, blank.position, blank.version) == (40, 5.0, 3)
    fake = blank_context(FakeContext(step=7, target=torch.ones(14)))
    assert fake.step == 7 and not fake.target.any()


def test_episode_ends_after_settling_on_success():
    wall = ManualClock()
    result = run_episode(fake_policy(wall, 0.0, 0.0), FakeEnv(succeed_at=10),
                         ClosedLoopConfig(max_steps=100, settle_steps=5), seed=0, views=views,
                         wall_clock=wall)
    assert result.success and result.max_reward == 4.0 and result.steps == 10 + 5


def test_eval_sim_runs_the_settings_of_the_system_parameter_file(tmp_path):
    options = parse_options(['--checkpoint', 'fake'])
    assert Path(options.params_file).resolve() == PARAMS
    assert options.settings == settings_from_params_file(PARAMS)
    document = yaml.safe_load(PARAMS.read_text())
    sim = document['/**/bimanual_sim']['ros__parameters']
    assert options.camera_every == sim.get('camera_every', ClosedLoopConfig().camera_every)
    flagged = parse_options(['--checkpoint', 'fake', '--execute-steps', '3',
                             '--max-image-age', '0.25'])
    assert flagged.settings.executor.execute_steps == 3
    settings = flagged.settings
    assert settings.planner.max_image_age == 0.25 == settings.executor.max_image_age


def test_a_slower_camera_is_rendered_every_nth_step_and_keeps_its_stamp():
    """camera_every 2: odd steps unrendered, the newest frame kept with its own stamp."""
    wall, env, seen = ManualClock(), FakeEnv(), []
    config = ClosedLoopConfig(max_steps=60, camera_every=2)  # 1.2 s > max_image_age
    result = run_episode(fake_policy(wall, 0.0, 0.0), env, config, seed=0,
                         views=lambda o: seen.append(int(o.images['cam'][0, 0, 0])) or views(o),
                         wall_clock=wall)
    assert env.rendered == [i % 2 == 1 for i in range(60)]  # renders the even steps' frames
    assert seen == list(range(0, 61, 2))  # frame k taken at step k, k even
    # Each frame carries its own stamp: never stale, no hold after the startup one.
    assert result.executed == 59 and result.holds == {'startup': 1}
    recorded = FakeEnv()
    run_episode(fake_policy(wall, 0.0, 0.0), recorded, ClosedLoopConfig(max_steps=6,
                camera_every=2), seed=0, views=views, recorder=SimpleNamespace(add=lambda *a: 0),
                wall_clock=wall)
    assert all(recorded.rendered)  # a recorded episode renders every step for its video


def test_parameter_file_keys_override_the_defaults(tmp_path):
    path = tmp_path / 'params.yaml'
    path.write_text('world_planner:\n  ros__parameters:\n    refresh_rate_hz: 7.5\n'
                    '/**/action_executor:\n  ros__parameters:\n    execute_steps: 11\n'
                    '    camera_topics: [a, b]\n')
    settings = settings_from_params_file(path)
    assert (settings.planner.refresh_rate_hz, settings.executor.execute_steps) == (7.5, 11)
    assert settings.executor.max_step == RuntimeSettings().executor.max_step  # the default


@pytest.mark.parametrize('field,value', [('mode', 'fast'), ('max_steps', 0),
                                         ('camera_every', 0)])
def test_config_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match=field):
        ClosedLoopConfig(**{field: value})


@pytest.mark.parametrize('field,value', [('refresh_rate_hz', 0.0), ('execute_steps', -1),
                                         ('blend', 'cubic'), ('ensemble_decay', math.inf),
                                         ('schedule', 'eager'), ('max_step', math.nan)])
def test_settings_name_the_bad_field(field, value):
    with pytest.raises(ValueError, match=field):
        knobs(**{field: value})


def test_mode_summary_and_table():
    episodes = [{'success': s, 'max_reward': r, 'command_rate_hz': 48.0, 'chunk_rate_hz': 6.0,
                 'hold_fraction': 0.04} for s, r in ((True, 4), (False, 2), (False, 3))]
    row = summarize_mode(episodes, [0.06, 0.08], [0.02] * 5, [])
    assert row['successes'] == 1 and row['mean_max_reward'] == pytest.approx(3.0)
    assert row['success_interval_68'] == pytest.approx(list(wilson_interval(1, 3)))
    assert row['plan_latency_ms']['p50'] == pytest.approx(70.0)
    assert math.isnan(row['context_age_ms']['p50']) and row['context_age_ms']['count'] == 0
    table = format_table({'async': row, 'sync': row})
    assert table.count('\n') == 3 and '1/3' in table and '70/79' in table


def test_ros_figures_map_the_demo_summary():
    summary = {'episodes': [
        {'seed': 0, 'success': True, 'max_reward': 4.0, 'command_rate': 50.0, 'duration': 4.0,
         'holds': 20, 'bag': 'b0', 'video': None},
        {'seed': 1, 'success': False, 'max_reward': 1.0, 'command_rate': 48.0,
         'duration': 8.0, 'holds': 0, 'bag': 'b1', 'video': None}],
        'chunks_accepted': 72, 'planner_refreshes': 30, 'planner_latency_p50_ms': 80.0,
        'planner_latency_p95_ms': 90.0,
        'executor_latency_p50_ms': 20.0, 'executor_latency_p95_ms': 30.0}
    figures = ros_figures(summary)
    assert figures['successes'] == 1 and figures['chunk_rate_hz'] == pytest.approx(6.0)
    assert figures['episode_results'][0]['hold_fraction'] == pytest.approx(0.1)
    assert figures['plan_latency_ms']['p50'] == 80.0
    assert figures['plan_latency_ms']['count'] == 30
    assert figures['update_latency_ms']['p95'] == 30.0
