"""The joint-space ALOHA environment: configuration, seeding, rendering, control, fidelity."""

import dataclasses

import numpy as np
import pytest

pytest.importorskip('gym_aloha', reason='the simulator (requirements/sim.txt) is not installed')

from ahawam_ros.robot import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER  # noqa: E402, I100
from ahawam_ros.sim.aloha_env import (  # noqa: E402
    AlohaSim, command_to_ctrl, finger_to_gripper, gripper_to_finger, sim_preset, SimConfig)
from ahawam_ros.sim.scripted_expert import ScriptedExpert  # noqa: E402

pytestmark = pytest.mark.sim
SMALL = SimConfig(cameras=('top', 'left_wrist'), image_height=48, image_width=64)


@pytest.fixture(scope='module')
def sim():
    with AlohaSim(SMALL) as env:
        yield env


@pytest.mark.parametrize('field,value', [
    ('task', 'stack_blocks'), ('cameras', ('top', 'nope')), ('cameras', ('top', 'top')),
    ('image_height', 4), ('image_width', 64.0), ('seed', -1), ('episode_len', 0)])
def test_config_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match=f'SimConfig.{field}'):
        SimConfig(**{field: value})


def test_unknown_preset_lists_the_valid_ones():
    assert sim_preset('insertion').task == 'insertion'
    with pytest.raises(ValueError, match='transfer_cube_top'):
        sim_preset('nope')


def test_images_have_the_configured_cameras_and_shape(sim):
    observation = sim.reset(0)
    assert list(observation.images) == ['top', 'left_wrist']
    for image in observation.images.values():
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8
        assert image.std() > 5.0  # a rendered scene, not a blank buffer
    assert observation.qpos.shape == observation.qvel.shape == (len(JOINT_NAMES),)
    assert observation.time == 0.0 and observation.step == 0


def test_a_step_without_render_has_no_images_and_the_same_physics(sim):
    start = sim.reset(3)
    skipped = sim.step(start.qpos + 0.05, render=False)
    assert skipped.images == {} and skipped.step == 1
    sim.reset(3)
    rendered = sim.step(start.qpos + 0.05)
    assert list(rendered.images) == ['top', 'left_wrist']
    np.testing.assert_array_equal(skipped.qpos, rendered.qpos)


def test_reset_with_a_seed_is_reproducible(sim):
    first = sim.reset(11)
    for _ in range(5):
        sim.step(first.qpos + 0.05)
    again = sim.reset(11)
    for camera in SMALL.cameras:
        np.testing.assert_array_equal(first.images[camera], again.images[camera])
    np.testing.assert_array_equal(first.qpos, again.qpos)
    np.testing.assert_array_equal(first.object_pose, again.object_pose)
    with AlohaSim(SMALL) as other:  # a fresh simulator renders the same pixels
        np.testing.assert_array_equal(other.reset(11).images['top'], first.images['top'])
    assert not np.allclose(sim.reset(12).object_pose, first.object_pose)


def test_seed_places_the_cube_where_gym_aloha_does(sim):
    from gym_aloha.utils import sample_box_pose
    np.testing.assert_allclose(sim.reset(7).object_pose, sample_box_pose(7))


def test_joint_command_moves_the_arms_to_the_target():
    with AlohaSim(dataclasses.replace(SMALL, cameras=())) as env:
        start = env.reset(0).qpos
        delta = np.tile([0.3, 0.2, -0.2, 0.3, 0.3, -0.3, 0.0], 2)
        target = start + delta
        target[[6, 13]] = 0.9
        for _ in range(50):
            observation = env.step(target)
    arm = [i for i in range(len(JOINT_NAMES)) if i not in (6, 13)]
    error = np.abs(observation.qpos - target)[arm]
    assert np.all(error < 0.1 * np.abs(delta[arm])), error
    assert np.all(observation.qpos[[6, 13]] > 0.8)  # grippers opened
    assert observation.time == pytest.approx(1.0)


def test_step_rejects_malformed_actions(sim):
    sim.reset(0)
    with pytest.raises(ValueError, match='finite'):
        sim.step(np.zeros(13))
    with pytest.raises(ValueError, match='finite'):
        sim.step(np.full(14, np.nan))


def test_gripper_units_and_mirrored_fingers():
    openings = np.array([0.0, 0.25, 1.0])
    np.testing.assert_allclose(finger_to_gripper(gripper_to_finger(openings)), openings)
    ctrl = command_to_ctrl(np.arange(14, dtype=float) / 14)
    assert ctrl.shape == (16,)
    assert ctrl[6] == -ctrl[7] == gripper_to_finger(6 / 14)
    np.testing.assert_allclose(ctrl[8:14], np.arange(7, 13) / 14)


def test_joint_limits_in_robot_match_the_mjcf(sim):
    for index, name in enumerate(JOINT_NAMES):
        arm, joint = name.split('_', 1)
        if joint == 'gripper':
            assert (JOINT_LOWER[index], JOINT_UPPER[index]) == (0.0, 1.0)
            continue
        mjcf_range = sim.model.joint(f'vx300s_{arm}/{joint}').range
        np.testing.assert_allclose((JOINT_LOWER[index], JOINT_UPPER[index]), mjcf_range)


def test_physics_and_reward_equal_gym_aloha():
    """Our direct MuJoCo stepping reproduces gym-aloha's env, state and staged reward."""
    from gym_aloha.env import AlohaEnv
    config = SimConfig(cameras=())
    with ScriptedExpert(config) as expert:
        commands = expert.joint_commands(4)
    reference = AlohaEnv('transfer_cube')
    # Skip gym-aloha's three 480x640 renders per step: they do not touch the physics.
    reference._env.physics.render = lambda *args, **kwargs: np.zeros((1, 1, 3), np.uint8)
    reference.reset(seed=4)
    rewards = []
    with AlohaSim(config) as env:
        env.reset(4)
        for action in commands:
            _, reward, _, _, _ = reference.step(action)
            ours = env.step(action)
            qpos = reference._env.task.get_qpos(reference._env.physics)
            np.testing.assert_allclose(ours.qpos, qpos, atol=1e-9)
            assert ours.reward == reward
            rewards.append(reward)
    assert max(rewards) == 4  # the comparison covered every reward stage
