"""The closed-loop recorder: observations and commands in, a SimEpisode and its video out."""

from types import SimpleNamespace

from ahawam_ros.eval.closed_loop.record import EpisodeRecorder, write_video
from ahawam_ros.robot import ACTION_DIM
from ahawam_ros.sim.episode import SimEpisode
import numpy as np
import pytest

CAMERAS, STEPS = ('top', 'left_wrist'), 4


def _observation(step: int, with_pose: bool) -> SimpleNamespace:
    """Return an observation shaped like `ahawam_ros.sim.aloha_env.Observation`."""
    fields = {'images': {c: np.full((8, 10, 3), 10 * step + i, np.uint8)
                         for i, c in enumerate(CAMERAS)},
              'qpos': np.full(ACTION_DIM, float(step)), 'qvel': np.zeros(ACTION_DIM),
              'reward': float(step), 'time': 0.02 * step}
    if with_pose:
        fields['object_pose'] = np.arange(7.0) + step
    return SimpleNamespace(**fields)


def _record(with_pose: bool) -> SimEpisode:
    recorder = EpisodeRecorder(CAMERAS)
    for step in range(STEPS):
        recorder.add(_observation(step, with_pose), np.full(ACTION_DIM, step + 0.5))
    return recorder.finish('transfer_cube', 7, True)


def test_recorder_returns_a_sim_episode_with_the_object_poses_it_saw():
    episode = _record(with_pose=True)
    assert isinstance(episode, SimEpisode) and len(episode) == STEPS
    assert (episode.task, episode.seed, episode.success) == ('transfer_cube', 7, True)
    assert list(episode.images) == list(CAMERAS)
    assert episode.images['top'].shape == (STEPS, 8, 10, 3)
    np.testing.assert_allclose(episode.actions[:, 0], np.arange(STEPS) + 0.5)
    np.testing.assert_allclose(episode.time, 0.02 * np.arange(STEPS))
    assert episode.object_pose.shape == (STEPS, 7)
    np.testing.assert_allclose(episode.object_pose[:, 0], np.arange(STEPS))


def test_recorder_leaves_object_pose_empty_when_observations_have_none():
    assert _record(with_pose=False).object_pose.shape == (STEPS, 0)


def test_nothing_recorded_is_an_error():
    with pytest.raises(ValueError, match='nothing was recorded'):
        EpisodeRecorder(CAMERAS).finish('transfer_cube', 0, False)


def test_video_has_one_tiled_frame_per_step(tmp_path):
    import cv2
    frames = _record(with_pose=False).tiled_frames()
    assert frames[1].shape == (8, 20, 3)  # two views side by side
    video = cv2.VideoCapture(str(write_video(frames, tmp_path / 'episode.mp4')))
    count, width = video.get(cv2.CAP_PROP_FRAME_COUNT), video.get(cv2.CAP_PROP_FRAME_WIDTH)
    video.release()
    assert (int(count), int(width)) == (STEPS, 20)
