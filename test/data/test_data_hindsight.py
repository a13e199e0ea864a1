"""Object positions from joints and commands alone: where a gripper closed, then carried."""

from ahawam_ros.data.episode import Episode
from ahawam_ros.data.hindsight import (closing_step, fingertip_links, grasp_positions,
                                       hindsight_object_position, hindsight_object_positions,
                                       opening_step)
from ahawam_ros.kinematics import ArmKinematics
from ahawam_ros.robot import JOINT_NAMES
import numpy as np
import pytest

T = 100
LEFT, RIGHT = JOINT_NAMES.index('left_gripper'), JOINT_NAMES.index('right_gripper')


def _closing(at: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Return a (T,) gripper command: open (1.0), ramping closed over 10 steps from `at`."""
    gripper = np.clip(1.0 - (np.arange(T) - at) / 10.0, 0.0, 1.0)
    return gripper + noise * np.random.default_rng(seed).standard_normal(T)


def test_the_closing_step_is_where_the_fall_began():
    assert closing_step(_closing(40)) == 40
    assert closing_step(np.ones(T)) is None
    assert closing_step(np.ones(T) - 0.1 * (np.arange(T) > 50)) is None  # too small a dip
    assert abs(closing_step(_closing(40, noise=0.01)) - 40) <= 2


def _opening(at: int) -> np.ndarray:
    """Return a (T,) gripper command: closed (0.0), ramping open over 10 steps from `at`."""
    return np.clip((np.arange(T) - at) / 10.0, 0.0, 1.0)


@pytest.fixture(scope='module')
def moving():
    """Return (T, A) joints of arms that wander, and the tip of an arm at a step."""
    rng = np.random.default_rng(0)
    joints = np.cumsum(0.01 * rng.standard_normal((T, len(JOINT_NAMES))), axis=0)
    kinematics = ArmKinematics(JOINT_NAMES)

    def tip(arm, step):
        return kinematics.link_positions(joints[step], fingertip_links(arm)).mean(0)
    return joints, tip


def test_the_opening_step_is_where_the_rise_began():
    assert opening_step(_opening(70), 0) == 70
    assert opening_step(np.maximum(_closing(30), _opening(70)), 30) == 70
    assert opening_step(_closing(30), 30) is None


def _hand_over(joints: np.ndarray) -> np.ndarray:
    """Return (T, A) commands: right grasps at 30; left closes at 60; right lets go at 70."""
    actions = joints.copy()
    actions[:, RIGHT] = np.maximum(_closing(30), _opening(70))
    actions[:, LEFT] = _closing(60)
    return actions


def test_the_object_lies_where_the_first_gripper_closed_then_is_handed_over(moving):
    joints, tip = moving
    actions = _hand_over(joints)
    position = hindsight_object_position(joints, actions, JOINT_NAMES)
    assert position.shape == (T, 3)
    np.testing.assert_allclose(position[:31], np.repeat(tip('right', 30)[None], 31, 0))
    np.testing.assert_allclose(position[65], tip('right', 65))  # both hold it: the first
    # handed over to the left at 70: from where the right held it, moving with the left
    np.testing.assert_allclose(position[70], tip('right', 70))
    np.testing.assert_allclose(position[80] - position[70], tip('left', 80) - tip('left', 70))
    actions[:, [LEFT, RIGHT]] = 1.0
    assert hindsight_object_position(joints, actions, JOINT_NAMES) is None


def test_grippers_that_both_hold_to_the_end_keep_the_first_grasp(moving):
    """Insertion: both close at once and hold; the left (tie) keeps the object throughout."""
    joints, tip = moving
    actions = joints.copy()
    actions[:, RIGHT] = actions[:, LEFT] = _closing(40)
    position = hindsight_object_position(joints, actions, JOINT_NAMES)
    np.testing.assert_allclose(position[:41], np.repeat(tip('left', 40)[None], 41, 0))
    np.testing.assert_allclose(position[90], tip('left', 90))


def test_each_object_a_gripper_picks_up_has_the_slot_of_that_arm(moving):
    """'each': a hand-over is one object (the right's); two holds to the end are two."""
    joints, tip = moving
    actions = _hand_over(joints)
    each = hindsight_object_positions(joints, actions, JOINT_NAMES)
    assert each.shape == (T, 2, 3) and np.isnan(each[:, 0]).all()  # the left took it over
    np.testing.assert_array_equal(each[:, 1], hindsight_object_position(joints, actions,
                                                                        JOINT_NAMES))
    actions[:, RIGHT] = actions[:, LEFT] = _closing(40)  # Insertion: socket left, peg right
    each = hindsight_object_positions(joints, actions, JOINT_NAMES)
    for slot, arm in enumerate(('left', 'right')):
        np.testing.assert_allclose(each[:41, slot], np.repeat(tip(arm, 40)[None], 41, 0))
        np.testing.assert_allclose(each[90, slot], tip(arm, 90))
    actions[:, [LEFT, RIGHT]] = 1.0
    assert hindsight_object_positions(joints, actions, JOINT_NAMES) is None


def test_grasp_positions_flatten_the_target_an_objective_names(moving):
    joints, _ = moving
    actions = joints.copy()
    actions[:, RIGHT] = _closing(30)
    episode = Episode(images=np.zeros((T, 1, 2, 2, 3), np.uint8), joint_positions=joints,
                      actions=actions, timestamps=np.arange(T), task='transfer_cube',
                      cameras=('top',), joint_names=JOINT_NAMES)
    assert grasp_positions(episode, 'first').shape == (T, 3)
    each = grasp_positions(episode, 'each')
    assert each.shape == (T, 6) and np.isnan(each[:, :3]).all()
    np.testing.assert_array_equal(each[:, 3:], grasp_positions(episode, 'first'))
    with pytest.raises(ValueError, match="grasp target 'both'"):
        grasp_positions(episode, 'both')


def test_an_object_let_go_with_no_other_hand_on_it_lies_where_it_was_put(moving):
    joints, tip = moving
    actions = joints.copy()
    actions[:, RIGHT] = np.maximum(_closing(20), _opening(60))
    actions[:, LEFT] = 1.0
    position = hindsight_object_position(joints, actions, JOINT_NAMES)
    np.testing.assert_allclose(position[50], tip('right', 50))
    np.testing.assert_allclose(position[60:], np.repeat(tip('right', 60)[None], T - 60, 0))


@pytest.mark.sim
def test_scripted_transfers_give_the_cube_reset_position_up_to_a_constant_offset():
    pytest.importorskip('gym_aloha', reason='the simulator is not installed')
    from ahawam_ros.sim.aloha_env import SimConfig
    from ahawam_ros.sim.scripted_expert import ScriptedExpert
    found, true = [], []
    with ScriptedExpert(SimConfig(task='transfer_cube', cameras=())) as expert:
        for seed in range(1000, 1006):  # held-out placements
            episode = expert.record(seed, expert.joint_commands(seed))
            label = hindsight_object_position(episode.qpos, episode.actions, JOINT_NAMES)
            assert np.abs(np.diff(label, axis=0)).max() < 0.02  # the hand-over does not jump
            found.append(label[0])
            true.append(episode.object_pose[0, :3])
    found, true = np.array(found), np.array(true)
    residual = (found - true) - (found - true).mean(axis=0)  # the grasp's constant offset off
    assert true[:, :2].std(axis=0).min() > 0.01  # the cube moves by centimetres over seeds
    assert np.abs(residual[:, :2]).max() < 0.005, residual  # found within 5 mm of it


@pytest.mark.sim
def test_scripted_insertions_give_the_socket_and_peg_reset_positions_up_to_an_offset():
    """Both grippers close at once: 'first' is the left one's, the socket; 'each' adds the peg."""
    pytest.importorskip('gym_aloha', reason='the simulator is not installed')
    from ahawam_ros.sim.aloha_env import SimConfig
    from ahawam_ros.sim.scripted_expert import ScriptedExpert
    found, true = [], []
    with ScriptedExpert(SimConfig(task='insertion', cameras=())) as expert:
        for seed in range(1000, 1006):
            episode = expert.record(seed, expert.joint_commands(seed))
            label = hindsight_object_position(episode.qpos, episode.actions, JOINT_NAMES)
            assert np.abs(np.diff(label, axis=0)).max() < 0.02  # no jump to the other object
            each = hindsight_object_positions(episode.qpos, episode.actions, JOINT_NAMES)
            np.testing.assert_array_equal(each[:, 0], label)
            found.append(each[0])  # (2, 3): socket (left), peg (right)
            true.append(episode.object_pose[0, [7, 8, 9, 0, 1, 2]].reshape(2, 3))  # peg 0:7
    found, true = np.array(found), np.array(true)  # (seeds, 2, 3)
    residual = (found - true) - (found - true).mean(axis=0)
    assert true[..., :2].std(axis=0).min() > 0.01
    assert np.abs(residual[..., :2]).max() < 0.005, residual
