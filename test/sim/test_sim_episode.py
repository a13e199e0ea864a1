"""The simulated-episode record and the tiling of camera views (no simulator needed)."""

from ahawam_ros.images import tile_views
from ahawam_ros.robot import JOINT_NAMES
from ahawam_ros.sim.episode import SimEpisode
import numpy as np
import pytest

STEPS, HEIGHT, WIDTH = 5, 4, 6


def _episode(**changes) -> SimEpisode:
    rng = np.random.default_rng(0)
    qpos = rng.normal(size=(STEPS, len(JOINT_NAMES)))
    fields = {
        'task': 'transfer_cube', 'seed': 3, 'success': False,
        'images': {camera: rng.integers(0, 256, (STEPS, HEIGHT, WIDTH, 3), dtype=np.uint8)
                   for camera in ('top', 'left_wrist')},
        'qpos': qpos, 'qvel': np.zeros_like(qpos), 'actions': qpos + 0.1,
        'reward': np.zeros(STEPS), 'time': np.arange(STEPS) * 0.02,
        'object_pose': np.zeros((STEPS, 0))}
    fields.update(changes)
    return SimEpisode(**fields)


def test_tile_views_puts_the_views_side_by_side_in_order():
    views = np.stack([np.full((HEIGHT, WIDTH, 3), value, np.uint8) for value in (1, 2, 3)])
    composite = tile_views(views)  # (V, H, W, 3) -> (H, V * W, 3)
    assert composite.shape == (HEIGHT, 3 * WIDTH, 3) and composite.dtype == np.uint8
    for index, value in enumerate((1, 2, 3)):
        assert np.all(composite[:, index * WIDTH:(index + 1) * WIDTH] == value)
    np.testing.assert_array_equal(tile_views(list(views)), composite)  # a sequence works too
    with pytest.raises(ValueError, match='no views'):
        tile_views([])


def test_episode_tiles_each_step_and_names_its_joints():
    episode = _episode()
    assert len(episode) == STEPS and episode.joint_names == JOINT_NAMES
    frames = episode.tiled_frames()
    assert len(frames) == STEPS
    step = 2
    np.testing.assert_array_equal(frames[step], tile_views(
        [episode.images['top'][step], episode.images['left_wrist'][step]]))


@pytest.mark.parametrize('field,value,message', [
    ('qvel', np.zeros((STEPS, 3)), 'SimEpisode.qvel'),
    ('time', np.zeros(STEPS + 1), 'SimEpisode.time'),
    ('object_pose', np.zeros(STEPS), 'SimEpisode.object_pose'),
    ('images', {'top': np.zeros((STEPS, HEIGHT, WIDTH, 3))}, r"SimEpisode.images\['top'\]"),
    ('actions', np.zeros((0, len(JOINT_NAMES))), 'at least one step'),
])
def test_a_field_of_the_wrong_shape_is_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        _episode(**{field: value})


def test_side_by_side_scales_the_other_image_beside_the_frame():
    from ahawam_ros.images import beside_width, side_by_side
    frame = np.full((4, 6, 3), 10, np.uint8)
    other = np.full((8, 24, 3), 200, np.uint8)
    width = beside_width(4, other.shape[:2])
    assert width == 12  # aspect ratio kept
    both = side_by_side(frame, other, width)
    assert both.shape == (4, 18, 3) and (both[:, :6] == 10).all() and (both[:, 6:] == 200).all()
    assert (side_by_side(frame, None, 5)[:, 6:] == 0).all()  # nothing yet: black
