"""The sample builder puts targets, chunk-start frames and proprio at start + o + n K."""

from ahawam_ros.model import sample_builder as sb
from ahawam_ros.model.presets import get_preset
import numpy as np
import pytest


def step_coded_episode(config, length: int):
    """Frames, joints and actions whose values encode their step index."""
    ae = config.autoencoder
    steps = np.arange(length)
    frames = np.broadcast_to(steps[:, None, None, None, None] % 256,
                             (length, ae.num_views, ae.view_height, ae.view_width, 3))
    joints = np.repeat(steps[:, None] + 0.25, config.executor.action_dim, axis=1)
    actions = np.repeat(steps[:, None] + 0.5, config.executor.action_dim, axis=1)
    return frames.astype(np.uint8), joints.astype(np.float32), actions.astype(np.float32)


@pytest.mark.parametrize('start,offset', [(0, 0), (20, 7), (33, 15), (90, 3), (99, 11)])
def test_offsets_place_targets_frames_and_proprio_at_o_plus_nk(start, offset):
    config = get_preset('tiny')
    length = 100
    frames, joints, actions = step_coded_episode(config, length)
    sample = sb.build_sample(frames, joints, actions, start, offset, config, task_id=1)
    chunk_len, chunks = config.executor.chunk_len, config.executor.num_chunks
    expected = start + offset + chunk_len * np.arange(chunks)  # (Nc,)
    np.testing.assert_array_equal(sample[sb.CHUNK_STEPS], expected)
    clamped = np.minimum(expected, length - 1)
    np.testing.assert_array_equal(sample[sb.CHUNK_FRAMES][:, 0, 0, 0, 0], clamped % 256)
    np.testing.assert_array_equal(sample[sb.CHUNK_PROPRIO][:, 0], clamped + 0.25)
    targets = expected[:, None] + np.arange(chunk_len)  # (Nc, K)
    np.testing.assert_array_equal(sample[sb.ACTION_MASK], targets < length)
    np.testing.assert_array_equal(sample[sb.ACTIONS][..., 0],
                                  np.minimum(targets, length - 1) + 0.5)
    # The planner clip and history stay anchored at the start step, not at the offset.
    clip = start + config.planner.frame_stride * np.arange(config.planner.num_future_frames + 1)
    np.testing.assert_array_equal(sample[sb.CLIP_STEPS], clip)
    np.testing.assert_array_equal(sample[sb.CLIP_MASK], clip < length)
    np.testing.assert_array_equal(sample[sb.CLIP_FRAMES][:, 0, 0, 0, 0],
                                  np.minimum(clip, length - 1) % 256)
    history = start - config.planner.history_stride * np.arange(
        config.planner.memory_size, 0, -1)
    np.testing.assert_array_equal(sample[sb.HISTORY_STEPS], history)
    np.testing.assert_array_equal(sample[sb.HISTORY_MASK], history >= 0)
    assert sample[sb.OFFSET] == offset and sample[sb.TASK_ID] == 1
    assert set(sample) == set(sb.BATCH_KEYS)


def test_offset_sampling_covers_zero_to_max_and_collate_stacks():
    rng = np.random.default_rng(0)
    draws = {sb.sample_offset(rng, 15) for _ in range(2000)}
    assert draws == set(range(16))
    config = get_preset('tiny')
    frames, joints, actions = step_coded_episode(config, 60)
    batch = sb.collate_samples([sb.build_sample(frames, joints, actions, s, 2, config)
                                for s in (0, 10, 20)])
    assert batch[sb.ACTIONS].shape == (3, config.executor.num_chunks,
                                       config.executor.chunk_len, config.executor.action_dim)
    with pytest.raises(ValueError, match='start 60 outside'):
        sb.build_sample(frames, joints, actions, 60, 0, config)
