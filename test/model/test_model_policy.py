"""AhaWamPolicy implements the runtime's ChunkPolicy and shares contexts by reference."""

from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.kv_memory import PlannerContext
from ahawam_ros.model.norm_stats import NormStats
from ahawam_ros.model.policy import AhaWamPolicy
from ahawam_ros.model.presets import get_preset
from ahawam_ros.model.testing import perturb_zero_inits, synthetic_episode
from ahawam_ros.runtime.policy_api import ChunkPolicy
import numpy as np
import pytest
import torch


def tiny_policy(**kwargs) -> AhaWamPolicy:
    torch.manual_seed(0)
    model = AhaWamModel(get_preset('tiny'))
    perturb_zero_inits(model)
    return AhaWamPolicy(model, **kwargs)


def test_plan_and_predict_chunk_follow_the_interface():
    policy = tiny_policy()
    config = policy.model.config
    assert isinstance(policy, ChunkPolicy)
    assert (policy.chunk_len, policy.action_dim) == (16, 14)
    assert policy.control_period == pytest.approx(0.02)
    assert policy.image_size == (config.autoencoder.view_height, config.autoencoder.view_width)
    episode = synthetic_episode(config, 20)
    context = policy.plan(episode['frames'][0], step=0)
    assert isinstance(context, PlannerContext)
    assert context.keys.shape == (config.num_layers, config.num_heads, config.tokens_per_frame,
                                  config.head_dim)
    assert policy.describe_context(context)['memory_fill'] == 1
    pointers = (context.keys.data_ptr(), context.values.data_ptr())
    snapshot = (context.keys.clone(), context.values.clone())
    actions = policy.predict_chunk(episode['frames'][5], episode['joint_positions'][5], context,
                                   step=5)
    assert actions.shape == (16, 14) and actions.dtype == np.float32
    assert np.all(np.isfinite(actions))
    assert (context.keys.data_ptr(), context.values.data_ptr()) == pointers
    assert torch.equal(context.keys, snapshot[0]) and torch.equal(context.values, snapshot[1])


def test_actions_come_back_in_robot_units():
    policy = tiny_policy()
    stats = NormStats(action_mean=(3.0,) * 14, action_std=(1e-3,) * 14,
                      proprio_mean=(0.0,) * 14, proprio_std=(1.0,) * 14)
    policy.model.set_norm_stats(stats)
    episode = synthetic_episode(policy.model.config, 4)
    context = policy.plan(episode['frames'][0], 0)
    actions = policy.predict_chunk(episode['frames'][1], episode['joint_positions'][1], context,
                                   1)
    assert np.abs(actions - 3.0).max() < 0.05


def test_sync_update_reset_num_steps_and_input_checks():
    policy = tiny_policy(num_steps=2)
    episode = synthetic_episode(policy.model.config, 10)
    frame, state = episode['frames'][0], episode['joint_positions'][0]
    assert policy.sync_update(frame, state, 0).shape == (16, 14)
    assert policy.memory_size == 1
    policy.num_steps = 1
    assert policy.sync_update(frame, state, 8).shape == (16, 14)
    policy.reset()
    assert policy.memory_size == 0
    with pytest.raises(ValueError, match='images must be uint8'):
        policy.plan(frame.astype(np.float32), 0)
    with pytest.raises(ValueError, match='proprio must be'):
        policy.predict_chunk(frame, state[:3], policy.plan(frame, 0), 0)
    with pytest.raises(ValueError, match=r"unknown task name\(s\) \['fold'\]; valid"):
        policy.set_task('fold')
