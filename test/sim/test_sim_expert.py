"""The scripted expert: keyframe paths, the mocap scene and successful joint-space replays."""

import numpy as np
import pytest

pytest.importorskip('gym_aloha', reason='the simulator (requirements/sim.txt) is not installed')

from ahawam_ros.robot import JOINT_LOWER, JOINT_UPPER  # noqa: E402, I100
from ahawam_ros.sim.aloha_env import CONTROL_PERIOD, SimConfig  # noqa: E402
from ahawam_ros.sim.episode import SimEpisode  # noqa: E402
from ahawam_ros.sim.expert_plans import ArmPath, Keyframe, make_plan  # noqa: E402
from ahawam_ros.sim.mocap_sim import MocapSim  # noqa: E402
from ahawam_ros.sim.scripted_expert import (  # noqa: E402
    command_noise, generate_episode, ScriptedExpert)
from ahawam_ros.sim.tasks import get_task  # noqa: E402
from gym_aloha.constants import START_ARM_POSE  # noqa: E402

pytestmark = pytest.mark.sim
IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])


def test_arm_path_passes_keyframes_with_eased_motion():
    path = ArmPath([Keyframe(10, np.zeros(3), IDENTITY, 0.0),
                    Keyframe(20, np.array([1.0, 0.0, 0.0]), IDENTITY, 1.0)])
    pose, grip = path.at(0)  # before the first keyframe: hold it
    assert pose[0] == 0.0 and grip == 0.0
    pose, grip = path.at(15)
    assert pose[0] == pytest.approx(0.5) and grip == pytest.approx(0.5)
    assert path.at(11)[0][0] < 0.1  # eased: slow start
    pose, grip = path.at(25)
    np.testing.assert_allclose(pose, [1.0, 0, 0, 1.0, 0, 0, 0])
    with pytest.raises(ValueError, match='increase'):
        ArmPath([Keyframe(5, np.zeros(3), IDENTITY, 0.0), Keyframe(1, np.zeros(3), IDENTITY, 0)])


def test_unknown_task_has_no_plan():
    sim = MocapSim(get_task('transfer_cube'))
    sim.reset(0)
    with pytest.raises(ValueError, match='no scripted expert'):
        make_plan('stack_blocks', sim)


def test_mocap_reset_leaves_the_arms_at_the_start_pose():
    sim = MocapSim(get_task('transfer_cube'))
    sim.reset(0)
    start = sim.joint_positions()
    for _ in range(25):  # holding the mocap bodies still must not drag the arms
        sim.step(sim.mocap_pose(0), sim.mocap_pose(1), start[[6, 13]])
    arm = [0, 1, 2, 3, 4, 5]
    np.testing.assert_allclose(sim.joint_positions()[arm], np.array(START_ARM_POSE)[arm],
                               atol=0.02)


@pytest.mark.parametrize('task,seeds', [('transfer_cube', (0, 1, 2)), ('insertion', (0,))])
def test_expert_commands_succeed_in_the_joint_scene(task, seeds):
    with ScriptedExpert(SimConfig(task=task, cameras=())) as expert:
        for seed in seeds:
            commands = expert.joint_commands(seed)
            assert commands.shape == (400, 14)
            assert np.all(commands >= np.array(JOINT_LOWER) - 1e-6)
            assert np.all(commands <= np.array(JOINT_UPPER) + 1e-6)
            assert expert.replay_succeeds(seed, commands), f'{task} seed {seed} failed'


def test_generate_episode_records_a_consistent_episode():
    config = SimConfig(cameras=('top',), image_height=32, image_width=40)
    episode = generate_episode('transfer_cube', 3, config)
    assert isinstance(episode, SimEpisode)
    assert episode.success and episode.task == 'transfer_cube' and episode.seed == 3
    steps = len(episode)
    assert steps == 400
    assert episode.object_pose.shape == (steps, 7)  # the cube: position and wxyz quaternion
    assert episode.images['top'].shape == (steps, 32, 40, 3)
    assert episode.qpos.shape == episode.qvel.shape == episode.actions.shape == (steps, 14)
    np.testing.assert_allclose(episode.time, np.arange(steps) * CONTROL_PERIOD, atol=1e-9)
    np.testing.assert_allclose(episode.qpos[0, :6], START_ARM_POSE[:6])
    assert episode.reward[0] == 0 and episode.reward.max() == 4
    # The arm joints track the commands: the state after command t is close to command t.
    arm = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]
    assert np.abs(episode.qpos[1:, arm] - episode.actions[:-1, arm]).max() < 0.1
    # The recorded first image is the reset image of that seed.
    from ahawam_ros.sim.aloha_env import AlohaSim
    with AlohaSim(config) as sim:
        np.testing.assert_array_equal(sim.reset(3).images['top'], episode.images['top'][0])


def test_command_noise_is_smooth_seeded_and_spares_the_grippers():
    noise = command_noise(7, 4000, 0.03)
    assert np.array_equal(noise, command_noise(7, 4000, 0.03))
    assert not np.array_equal(noise, command_noise(8, 4000, 0.03))
    assert np.all(noise[:, [6, 13]] == 0.0)
    arms = np.delete(noise, [6, 13], axis=1)
    assert 0.02 < arms.std() < 0.04  # the stationary std, sigma
    # Correlated over the time constant: a step changes it far less than sigma.
    assert np.abs(np.diff(arms, axis=0)).mean() < 0.35 * arms.std()  # white noise: 1.13
    assert np.all(command_noise(7, 50, 0.0) == 0.0)


def test_a_noisy_replay_is_labelled_with_the_clean_commands():
    """DART: the arm follows noisy commands, the episode's actions are the expert's own."""
    with ScriptedExpert(SimConfig(cameras=('top',), image_height=24, image_width=32)) as expert:
        clean = expert.joint_commands(4)
        noisy = expert.episode(4, action_noise=0.03)  # seed 3 fails with this noise
        nominal = expert.record(4, clean)
    assert noisy is not None and noisy.success
    np.testing.assert_array_equal(noisy.actions, clean)
    arms = [i for i in range(clean.shape[1]) if i not in (6, 13)]
    assert np.abs(noisy.qpos[:, arms] - nominal.qpos[:, arms]).max() > 0.02
    assert noisy.object_pose.shape == (len(clean), 7)
