"""Training samples from bags: windows and offsets, the episode cache, normalisation, sharding."""

import json
from pathlib import Path
from types import SimpleNamespace

from ahawam_ros.data import dataset as dataset_module
from ahawam_ros.data import normalization
from ahawam_ros.data.dataset import (DataConfig, DrawSampler, epoch_batches, FrameDataset,
                                     load_episodes, PolicyDataset)
from ahawam_ros.data.demo_bags import write_episode_bag
from ahawam_ros.data.episode import from_sim_episode
from ahawam_ros.data.features import FeatureConfig
from ahawam_ros.model import sample_builder as keys
from ahawam_ros.model.presets import tiny
from ahawam_ros.robot import JOINT_NAMES
import numpy as np
import pytest

CAMERAS = ('top', 'left_wrist')
FEATURES = FeatureConfig(cameras=CAMERAS, image_height=16, image_width=16)
JOINT_OFFSETS = np.arange(len(JOINT_NAMES)) / 100.0


def pixel(step, view):
    """Pixel value that encodes (step, view); steps < 120."""
    return 2 * np.asarray(step) + view


def synthetic_episode(steps: int, seed: int = 0, task: str = 'transfer_cube', size=(16, 16)):
    """Return a simulator-like episode whose values encode time: q_j(t) = t + j/100, a = q + .5."""
    t = np.arange(steps, dtype=np.float64)
    images = {c: np.broadcast_to(pixel(t, v).astype(np.uint8)[:, None, None, None],
                                 (steps, *size, 3)).copy() for v, c in enumerate(CAMERAS)}
    qpos = t[:, None] + JOINT_OFFSETS
    return SimpleNamespace(task=task, seed=seed, success=True, images=images, qpos=qpos,
                           qvel=np.zeros_like(qpos), actions=qpos + 0.5, reward=np.zeros(steps),
                           time=t * 0.02, joint_names=JOINT_NAMES)


def write_bags(root: Path, lengths=(60, 45), features=FEATURES, size=(16, 16)) -> Path:
    for i, steps in enumerate(lengths):
        write_episode_bag(synthetic_episode(steps, i, size=size), root / f'ep{i}', features)
    return root


def step_of(frame: np.ndarray) -> int:
    """Decode the step from a (V, H, W, 3) frame, checking every view agrees."""
    assert np.all(frame[0] == frame[0, 0, 0, 0]) and np.all(frame[1] == frame[0, 0, 0, 0] + 1)
    return int(frame[0, 0, 0, 0]) // 2


def test_samples_take_planner_clip_at_start_and_chunks_at_offset(tmp_path):
    config = tiny()
    episodes, _ = load_episodes(DataConfig(bags=str(write_bags(tmp_path / 'bags'))), config)
    data = PolicyDataset(episodes, config, seed=3)
    planner, executor = config.planner, config.executor
    chunk, n_chunks = executor.chunk_len, executor.num_chunks
    assert len(data) == (60 - chunk + 1) + (45 - chunk + 1)
    offsets = set()
    for draw in [0, 7, 29, 44, 45, 60, 74] + [len(data) + 5, 3 * len(data) + 44]:
        window = draw % len(data)  # episode 0 has starts 0..44, episode 1 starts 0..29
        start, length = (window, 60) if window < 45 else (window - 45, 45)
        sample, o = data[draw], data.offset(draw)
        offsets.add(o)
        assert 0 <= o <= config.objective.max_offset and int(sample[keys.OFFSET]) == o
        assert data.offset(draw) == o  # a draw always gets the same offset
        # The planner clip and the history stay anchored at the start step.
        clip = [start + f * planner.frame_stride for f in range(planner.num_future_frames + 1)]
        assert [step_of(f) for f in sample[keys.CLIP_FRAMES]] == [min(c, length - 1)
                                                                  for c in clip]
        np.testing.assert_array_equal(sample[keys.CLIP_MASK], np.array(clip) < length)
        history = [start - j * planner.history_stride for j in range(planner.memory_size, 0, -1)]
        assert [step_of(f) for f in sample[keys.HISTORY_FRAMES]] == [max(h, 0) for h in history]
        np.testing.assert_array_equal(sample[keys.HISTORY_MASK], np.array(history) >= 0)
        # Chunk n: frame, proprio and actions from o + nK.
        for n in range(n_chunks):
            first = start + o + n * chunk
            assert step_of(sample[keys.CHUNK_FRAMES][n]) == min(first, length - 1)
            np.testing.assert_allclose(sample[keys.CHUNK_PROPRIO][n],
                                       min(first, length - 1) + JOINT_OFFSETS, atol=1e-5)
            target = first + np.arange(chunk)
            np.testing.assert_allclose(
                sample[keys.ACTIONS][n], np.minimum(target, length - 1)[:, None] + JOINT_OFFSETS
                + 0.5, atol=1e-5)
            np.testing.assert_array_equal(sample[keys.ACTION_MASK][n], target < length)
        assert int(sample[keys.TASK_ID]) == config.task.task_names.index('transfer_cube')
    assert len(offsets) > 1  # offsets are drawn, not fixed


def test_cache_is_used_on_the_second_pass_and_invalidated_by_a_changed_bag(
        tmp_path, monkeypatch):
    config, bags = tiny(), write_bags(tmp_path / 'bags')
    data = DataConfig(bags=str(bags), cache_dir=str(tmp_path / 'cache'))
    first, keys_first = load_episodes(data, config)

    def no_decoding(*args, **kwargs):
        raise AssertionError('a bag was decoded although it is cached')

    monkeypatch.setattr(dataset_module, 'read_episode', no_decoding)
    second, keys_second = load_episodes(data, config)
    assert keys_second == keys_first
    for a, b in zip(first, second):
        assert isinstance(b.images, np.memmap)
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.actions, b.actions)
        assert (a.task, a.cameras) == (b.task, b.cameras)
    (bags / 'ep1' / 'episode.json').write_text('{}')  # the bag changed: its entry is stale
    with pytest.raises(AssertionError, match='was decoded'):
        load_episodes(data, config)


def test_norm_stats_are_computed_once_and_saved_beside_the_cache(tmp_path, monkeypatch):
    config, bags = tiny(), write_bags(tmp_path / 'bags')
    data = DataConfig(bags=str(bags))
    episodes, cache_keys = load_episodes(data, config)
    stats = normalization.dataset_norm_stats(episodes, cache_keys, data.cache_path)
    saved = list(data.cache_path.glob('norm_stats-*.json'))
    assert len(saved) == 1 and json.loads(saved[0].read_text())['num_steps'] == 105
    t = np.concatenate([np.arange(60), np.arange(45)]).astype(np.float64)
    np.testing.assert_allclose(stats.proprio_mean, t.mean() + JOINT_OFFSETS)
    np.testing.assert_allclose(stats.action_mean, t.mean() + JOINT_OFFSETS + 0.5)
    np.testing.assert_allclose(stats.action_std, np.full(14, t.std()))
    monkeypatch.setattr(normalization, 'compute_norm_stats', lambda *a: 1 / 0)
    assert normalization.dataset_norm_stats(episodes, cache_keys, data.cache_path) == stats


def test_frames_of_another_size_fail_unless_resized(tmp_path):
    config = tiny()
    big = FeatureConfig(cameras=CAMERAS, image_height=32, image_width=24)
    bags = write_bags(tmp_path / 'bags', (20,), big, size=(32, 24))
    with pytest.raises(ValueError, match=r'\(2, 32, 24, 3\).*expects \(2, 16, 16, 3\)'):
        load_episodes(DataConfig(bags=str(bags)), config)
    (episode,), _ = load_episodes(DataConfig(bags=str(bags), resize_images=True), config)
    assert episode.images.shape == (20, 2, 16, 16, 3)
    assert step_of(episode.images[7]) == 7  # uniform frames stay uniform under INTER_AREA


def test_unknown_task_and_sim_episodes(tmp_path):
    config = tiny()
    episode = from_sim_episode(synthetic_episode(30, task='stack_cups'))
    with pytest.raises(ValueError, match="task 'stack_cups' is not one of"):
        PolicyDataset([episode], config)
    frames = FrameDataset([from_sim_episode(synthetic_episode(30))])
    assert len(frames) == 30 and step_of(frames[30 + 4]['frames']) == 4


def test_ranks_split_each_global_batch_without_overlap(tmp_path):
    config = tiny()
    data = PolicyDataset([from_sim_episode(synthetic_episode(50))], config)
    whole = epoch_batches(DrawSampler(data, 1, 0, seed=1), epoch=2, batch_size=8)
    halves = [epoch_batches(DrawSampler(data, 2, r, seed=1), epoch=2, batch_size=4)
              for r in range(2)]
    assert len(halves[0]) == len(halves[1]) == len(whole)
    for j, batch in enumerate(whole):
        assert sorted(halves[0][j] + halves[1][j]) == sorted(batch)
    assert all(2 * len(data) <= d < 3 * len(data) for b in whole for d in b)
    assert epoch_batches(DrawSampler(data, 1, 0, seed=1), 2, 8, skip=3) == whole[3:]


def test_object_positions_travel_from_the_bag_metadata_to_the_samples(tmp_path):
    """Simulated demos record the object's position (aux target); other bags have none."""
    config, root = tiny(), tmp_path / 'bags'
    positions = np.stack([np.arange(60) / 100.0, np.zeros(60), np.full(60, 0.02)], axis=1)
    write_episode_bag(synthetic_episode(60), root / 'ep0', FEATURES,
                      extra_metadata={'privileged_object_position': positions.tolist()})
    write_episode_bag(synthetic_episode(45, 1), root / 'ep1', FEATURES)
    data = DataConfig(bags=str(root), cache_dir=str(tmp_path / 'cache'))
    for _ in range(2):  # decoded, then read back from the cache
        episodes, _ = load_episodes(data, config)
        np.testing.assert_allclose(episodes[0].object_position, positions)
        assert episodes[1].object_position is None
    dataset = PolicyDataset(episodes, config, seed=0)
    sample, o = dataset[10], dataset.offset(10)
    chunks = 10 + o + config.executor.chunk_len * np.arange(config.executor.num_chunks)
    np.testing.assert_allclose(sample[keys.OBJECT_POSITION], positions[chunks], atol=1e-6)
    assert sample[keys.OBJECT_MASK].all()
    other = dataset[50]  # a window of ep1
    assert not other[keys.OBJECT_MASK].any() and np.isnan(other[keys.OBJECT_POSITION]).all()
    (root / 'ep0' / 'episode.json').write_text(json.dumps(
        {'privileged_object_position': positions[:-1].tolist()}))
    with pytest.raises(ValueError, match=r'ep0: privileged_object_position has shape \(59, 3\)'):
        load_episodes(data, config)


def test_relative_norm_stats_describe_the_targets_relative_to_the_chunk_start(tmp_path):
    episodes, cache_keys = load_episodes(DataConfig(bags=str(write_bags(tmp_path / 'b'))), tiny())
    stats = normalization.compute_norm_stats(episodes, relative_chunk=16)
    # a[t + k] - q[t] = min(t + k, T - 1) - t + 0.5 for every joint.
    deltas = np.concatenate([np.minimum(np.arange(n)[:, None] + np.arange(16), n - 1)
                             - np.arange(n)[:, None] + 0.5 for n in (60, 45)]).ravel()
    np.testing.assert_allclose(stats.action_mean, np.full(14, deltas.mean()))
    np.testing.assert_allclose(stats.action_std, np.full(14, deltas.std()))
    absolute = normalization.compute_norm_stats(episodes)
    assert stats.proprio_mean == absolute.proprio_mean
    assert (normalization.stats_path('c', cache_keys, 16)
            != normalization.stats_path('c', cache_keys))
