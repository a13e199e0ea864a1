"""Object positions from joints and commands alone: where a gripper closed, then carried."""

from ahawam_ros.data.hindsight import closing_step, fingertip_links, hindsight_object_position
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


def test_the_object_lies_where_the_first_gripper_closed_then_moves_with_the_grippers():
    rng = np.random.default_rng(0)
    joints = np.cumsum(0.01 * rng.standard_normal((T, len(JOINT_NAMES))), axis=0)  # moving
    actions = joints.copy()
    actions[:, RIGHT], actions[:, LEFT] = _closing(30), _closing(60)
    position = hindsight_object_position(joints, actions, JOINT_NAMES)
    kinematics = ArmKinematics(JOINT_NAMES)

    def tip(arm, step):
        return kinematics.link_positions(joints[step], fingertip_links(arm)).mean(0)

    assert position.shape == (T, 3)
    np.testing.assert_allclose(position[:31], np.repeat(tip('right', 30)[None], 31, 0))
    np.testing.assert_allclose(position[45], tip('right', 45))  # carried by the right hand
    np.testing.assert_allclose(position[80], tip('left', 80))  # handed over to the left
    actions[:, [LEFT, RIGHT]] = 1.0
    assert hindsight_object_position(joints, actions, JOINT_NAMES) is None


@pytest.mark.sim
def test_scripted_transfers_give_the_cube_reset_position_up_to_a_constant_offset():
    pytest.importorskip('gym_aloha', reason='the simulator is not installed')
    from ahawam_ros.sim.aloha_env import SimConfig
    from ahawam_ros.sim.scripted_expert import ScriptedExpert
    found, true = [], []
    with ScriptedExpert(SimConfig(task='transfer_cube', cameras=())) as expert:
        for seed in range(1000, 1006):  # held-out placements
            episode = expert.record(seed, expert.joint_commands(seed))
            found.append(hindsight_object_position(episode.qpos, episode.actions,
                                                   JOINT_NAMES)[0])
            true.append(episode.object_pose[0, :3])
    found, true = np.array(found), np.array(true)
    residual = (found - true) - (found - true).mean(axis=0)  # the grasp's constant offset off
    assert true[:, :2].std(axis=0).min() > 0.01  # the cube moves by centimetres over seeds
    assert np.abs(residual[:, :2]).max() < 0.005, residual  # found within 5 mm of it
