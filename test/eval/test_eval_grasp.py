"""The first grasp attempt of an episode and the fingertip-to-cube distance there."""

import math

from ahawam_ros.eval.closed_loop.grasp import FirstGrasp
from ahawam_ros.eval.closed_loop.metrics import format_table, summarize_mode
import numpy as np
import pytest

RIGHT_GRIPPER, LEFT_GRIPPER, RIGHT_WAIST = 13, 6, 7


def _commands(right, left=None):
    """(T, A) commands with the given gripper openings per step."""
    commands = np.zeros((len(right), 14))
    commands[:, RIGHT_GRIPPER] = right
    commands[:, LEFT_GRIPPER] = 0.1 if left is None else left
    return commands


def _watch(commands, observation=None, env=None):
    grasp = FirstGrasp()
    for index, command in enumerate(commands):
        grasp.update(index, command, observation, env)
    return grasp.summary()


def test_the_first_closing_after_an_opening_is_the_attempt():
    # Nearly closed at the start (as the robot's start pose), opens, closes at 6, again at 9.
    right = [0.1, 0.1, 0.3, 0.8, 1.0, 1.0, 0.4, 0.1, 0.9, 0.2]
    summary = _watch(_commands(right))
    assert summary['first_grasp_step'] == 6 and summary['first_grasp_arm'] == 'right'
    assert math.isnan(summary['first_grasp_distance_m'])  # no simulator state to measure


def test_a_gripper_that_never_opens_makes_no_attempt():
    summary = _watch(_commands([0.1, 0.0, 0.2, 0.1]))
    assert summary['first_grasp_step'] == -1 and summary['first_grasp_arm'] == ''


def test_the_left_arm_counts_too():
    summary = _watch(_commands([0.1] * 4, left=[0.1, 1.0, 1.0, 0.0]))
    assert summary['first_grasp_step'] == 3 and summary['first_grasp_arm'] == 'left'
    assert summary['first_grasp_steps'] == {'left': 3, 'right': -1}


def test_without_distances_the_earlier_attempt_is_reported():
    summary = _watch(_commands([0.1, 1.0, 1.0, 1.0, 0.0], left=[0.1, 1.0, 0.0, 0.0, 0.0]))
    assert summary['first_grasp_steps'] == {'left': 2, 'right': 4}
    assert summary['first_grasp_arm'] == 'left'


def test_the_mode_summary_reports_the_median_distance():
    episodes = [{'success': False, 'max_reward': 0.0, 'command_rate_hz': 50.0,
                 'chunk_rate_hz': 6.0, 'hold_fraction': 0.0, 'first_grasp_distance_m': d}
                for d in (0.01, 0.05, math.nan, None, 0.03)]
    row = summarize_mode(episodes, [], [], [])
    assert row['first_grasp_distance_m'] == {'median': pytest.approx(0.03),
                                             'mean': pytest.approx(0.03), 'count': 3}
    assert 0.0 <= row['success_interval_68'][0] <= row['success_interval_68'][1] <= 1.0
    table = format_table({'async': row})
    assert 'grasp cm' in table.splitlines()[0] and table.splitlines()[-1].endswith('3.0')
    empty = summarize_mode(episodes[2:4], [], [], [])
    assert empty['first_grasp_distance_m']['count'] == 0
    assert format_table({'sync': empty}).splitlines()[-1].endswith('-')


@pytest.fixture(scope='module')
def expert():
    pytest.importorskip('gym_aloha', reason='the simulator is not installed')
    from ahawam_ros.sim.aloha_env import AlohaSim, SimConfig
    from ahawam_ros.sim.scripted_expert import ScriptedExpert
    config = SimConfig(cameras=(), episode_len=160)  # past the expert's grasp (step 140)
    with ScriptedExpert(config) as scripted, AlohaSim(config) as sim:
        yield scripted, sim


def _replay(sim, seed, commands):
    grasp, observation = FirstGrasp(), sim.reset(seed)
    for index, command in enumerate(commands):
        grasp.update(index, command, observation, sim)
        observation = sim.step(command)
    return grasp.summary()


@pytest.mark.sim
@pytest.mark.parametrize('seed', [3, 1001])
def test_the_scripted_expert_closes_on_the_cube(expert, seed):
    scripted, sim = expert
    summary = _replay(sim, seed, scripted.joint_commands(seed))
    assert summary['first_grasp_arm'] == 'right' and 100 < summary['first_grasp_step'] < 160
    assert 0.0 < summary['first_grasp_distance_m'] < 0.03


@pytest.mark.sim
def test_a_reach_aimed_beside_the_cube_measures_far(expert):
    scripted, sim = expert
    commands = scripted.joint_commands(3)
    commands[:, RIGHT_WAIST] += 0.15  # about 7 cm sideways at the cube's distance
    assert _replay(sim, 3, commands)['first_grasp_distance_m'] > 0.04


@pytest.mark.sim
def test_a_stray_early_closing_of_the_other_arm_does_not_hide_the_pick(expert):
    scripted, sim = expert
    commands = scripted.joint_commands(3)
    commands[20:30, LEFT_GRIPPER] = 1.0  # the left gripper opens and shuts, far from the cube
    summary = _replay(sim, 3, commands)
    assert summary['first_grasp_steps']['left'] == 30
    assert summary['first_grasp_arm'] == 'right' and summary['first_grasp_distance_m'] < 0.03


@pytest.mark.sim
def test_on_insertion_each_arm_is_measured_to_the_object_it_picks():
    """The left closes on the socket, the right on the peg: each near its own object."""
    pytest.importorskip('gym_aloha', reason='the simulator is not installed')
    from ahawam_ros.sim.aloha_env import AlohaSim, SimConfig
    from ahawam_ros.sim.scripted_expert import ScriptedExpert
    config = SimConfig(task='insertion', cameras=(), episode_len=200)
    with ScriptedExpert(config) as scripted, AlohaSim(config) as sim:
        summary = _replay(sim, 1001, scripted.joint_commands(1001))
    distances = summary['first_grasp_distances_m']
    assert all(0.0 < distances[arm] < 0.03 for arm in ('left', 'right')), distances
    offsets = summary['first_grasp_offsets_m']
    assert np.linalg.norm(offsets['left']) == pytest.approx(distances['left'])
    episode = {'success': True, 'max_reward': 4, 'command_rate_hz': 50.0,
               'chunk_rate_hz': 50.0, 'hold_fraction': 0.0, **summary}
    row = summarize_mode([episode], [], [], [])
    assert row['first_grasp_distance_by_arm_m']['left']['median'] == distances['left']
    assert 'spread' not in row['first_grasp_distance_by_arm_m']['left']  # one grasp: none
    moved = {**episode, 'first_grasp_offsets_m': {
        arm: list(np.add(offset, [0.01, 0.0, 0.0])) for arm, offset in offsets.items()}}
    spread = summarize_mode([episode, moved], [], [], [])['first_grasp_distance_by_arm_m']
    assert spread['right']['spread'] == pytest.approx(0.01 / np.sqrt(2))  # std of two points
