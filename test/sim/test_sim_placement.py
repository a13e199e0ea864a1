"""Object placement: gym-aloha's by seed, or over boxes widened by a margin for demonstrations."""

import numpy as np
import pytest

pytest.importorskip('gym_aloha', reason='the simulator (requirements/sim.txt) is not installed')

from ahawam_ros.sim.aloha_env import AlohaSim, SimConfig  # noqa: E402, I100
from ahawam_ros.sim.scripted_expert import ScriptedExpert  # noqa: E402
from ahawam_ros.sim.tasks import get_task, placement_poses, TASKS  # noqa: E402
from gym_aloha import utils as aloha_utils  # noqa: E402

pytestmark = pytest.mark.sim


def test_no_margin_is_gym_alohas_placement():
    for seed in (0, 7, 1234):
        np.testing.assert_array_equal(placement_poses(get_task('transfer_cube'), seed),
                                      aloha_utils.sample_box_pose(seed))
        np.testing.assert_array_equal(placement_poses(get_task('insertion'), seed),
                                      np.concatenate(aloha_utils.sample_insertion_pose(seed)))


@pytest.mark.parametrize('task', sorted(TASKS))
def test_the_boxes_are_those_gym_aloha_samples_from(task):
    spec = get_task(task)
    poses = np.stack([placement_poses(spec, seed) for seed in range(500)])
    for index, ((x_low, x_high), (y_low, y_high), z) in enumerate(spec.boxes):
        for axis, (low, high) in ((0, (x_low, x_high)), (1, (y_low, y_high))):
            values = poses[:, index * 7 + axis]
            assert low <= values.min() < low + 0.005 and high - 0.005 < values.max() <= high
        np.testing.assert_array_equal(poses[:, index * 7 + 2], z)


@pytest.mark.parametrize('task', sorted(TASKS))
def test_a_margin_spreads_every_object_past_its_box_on_every_side(task):
    spec, margin = get_task(task), 0.03
    poses = np.stack([placement_poses(spec, seed, margin) for seed in range(400)])
    np.testing.assert_array_equal(poses, np.stack([placement_poses(spec, seed, margin)
                                                   for seed in range(400)]))  # seeded
    for index, ((x_low, x_high), (y_low, y_high), z) in enumerate(spec.boxes):
        pose = poses[:, index * 7:(index + 1) * 7]
        for axis, (low, high) in ((0, (x_low, x_high)), (1, (y_low, y_high))):
            values = pose[:, axis]
            assert values.min() >= low - margin and values.max() <= high + margin
            assert values.min() < low - margin / 2 and values.max() > high + margin / 2
        np.testing.assert_array_equal(pose[:, 2], z)
        np.testing.assert_array_equal(pose[:, 3:], np.tile([1.0, 0.0, 0.0, 0.0], (400, 1)))
    standard = np.stack([placement_poses(spec, seed) for seed in range(400)])
    assert not np.allclose(poses, standard)


@pytest.mark.parametrize('margin', [-0.01, 0.5, True, '0.03', float('nan')])
def test_a_bad_margin_is_refused(margin):
    with pytest.raises(ValueError, match='placement margin'):
        placement_poses(get_task('transfer_cube'), 0, margin)
    with pytest.raises(ValueError, match='SimConfig.placement margin'):
        SimConfig(placement_margin=margin)


def test_the_expert_demonstrates_a_widened_placement():
    config = SimConfig(cameras=(), placement_margin=0.03)
    seed = next(s for s in range(400)  # a cube beyond the evaluation's box, towards the right arm
                if placement_poses(get_task('transfer_cube'), s, 0.03)[0] > 0.21)
    expected = placement_poses(get_task('transfer_cube'), seed, 0.03)
    with AlohaSim(config) as sim:
        np.testing.assert_allclose(sim.reset(seed).object_pose[:3], expected[:3], atol=1e-9)
    with ScriptedExpert(config) as expert:
        episode = expert.episode(seed)
    assert episode is not None and episode.success
    np.testing.assert_allclose(episode.object_pose[0, :3], expected[:3], atol=1e-9)
