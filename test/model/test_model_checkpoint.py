"""Checkpoints: a round trip reproduces the policy; mismatched shapes fail clearly."""

import json

from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.checkpoint import (load_autoencoder, load_checkpoint, load_state_checked,
                                         save_autoencoder, save_checkpoint)
from ahawam_ros.model.norm_stats import NormStats
from ahawam_ros.model.policy import AhaWamPolicy
from ahawam_ros.model.presets import get_preset
from ahawam_ros.model.testing import perturb_zero_inits, synthetic_episode
import numpy as np
import pytest
import torch


def trained_looking_model() -> AhaWamModel:
    torch.manual_seed(0)
    config = get_preset('tiny')
    config.planner.mlp_ratio = 3.0  # a non-preset value: loading must not need code defaults
    stats = NormStats.from_arrays(np.random.default_rng(0).normal(size=(50, 14)),
                                  np.random.default_rng(1).normal(size=(50, 14)))
    model = AhaWamModel(config, stats)
    perturb_zero_inits(model)
    model.autoencoder.latent_std.fill_(2.0)
    return model


def first_chunk(policy: AhaWamPolicy, episode) -> np.ndarray:
    context = policy.plan(episode['frames'][0], 0)
    return policy.predict_chunk(episode['frames'][3], episode['joint_positions'][3], context, 3)


def test_round_trip_restores_weights_config_stats_step_and_outputs(tmp_path):
    model = trained_looking_model()
    save_checkpoint(tmp_path / 'ckpt', model, step=123, extra_configs={'train': {'lr': 1e-4}})
    loaded, info = load_checkpoint(tmp_path / 'ckpt')
    assert info.step == 123 and info.configs['train'] == {'lr': 1e-4}
    assert loaded.config == model.config and loaded.norm_stats == model.norm_stats
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    episode = synthetic_episode(model.config, 8)
    expected = first_chunk(AhaWamPolicy(model, seed=1), episode)
    actual = first_chunk(AhaWamPolicy.from_checkpoint(tmp_path / 'ckpt', seed=1), episode)
    np.testing.assert_array_equal(actual, expected)


def test_mismatched_shapes_name_the_tensor_and_both_shapes(tmp_path):
    save_checkpoint(tmp_path / 'ckpt', trained_looking_model(), step=1)
    config_file = tmp_path / 'ckpt' / 'config.json'
    configs = json.loads(config_file.read_text())
    configs['model']['executor']['width'] = 32
    config_file.write_text(json.dumps(configs))
    with pytest.raises(ValueError, match=r"checkpoint tensor 'executor.action_embed.bias' has "
                                         r'shape \(16,\) but the model expects \(32,\)'):
        load_checkpoint(tmp_path / 'ckpt')
    other = AhaWamModel(get_preset('tiny'))
    tensors = dict(other.state_dict())
    tensors['ovcr.gate'] = torch.zeros(5)
    with pytest.raises(ValueError, match=r"'ovcr.gate' has shape \(5,\) but the model expects "
                                         r'\(2,\)'):
        load_state_checked(other, tensors)


def test_autoencoder_checkpoint_round_trip(tmp_path):
    autoencoder = trained_looking_model().autoencoder
    save_autoencoder(tmp_path / 'ae', autoencoder, step=7)
    loaded, info = load_autoencoder(tmp_path / 'ae')
    assert info.step == 7 and loaded.config == autoencoder.config
    assert torch.equal(loaded.latent_std, autoencoder.latent_std)
    with pytest.raises(ValueError, match="holds a 'autoencoder' checkpoint, not 'aha_wam'"):
        load_checkpoint(tmp_path / 'ae')


def test_half_precision_storage_halves_the_file_and_keeps_the_outputs(tmp_path):
    model = trained_looking_model()
    save_checkpoint(tmp_path / 'full', model, step=1)
    save_checkpoint(tmp_path / 'half', model, step=1, weights_dtype=torch.float16)
    full = (tmp_path / 'full' / 'model.safetensors').stat().st_size
    half = (tmp_path / 'half' / 'model.safetensors').stat().st_size
    assert half < 0.6 * full
    loaded, _ = load_checkpoint(tmp_path / 'half')
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    episode = synthetic_episode(model.config, 8)
    expected = first_chunk(AhaWamPolicy(model, seed=1), episode)
    actual = first_chunk(AhaWamPolicy.from_checkpoint(tmp_path / 'half', seed=1), episode)
    np.testing.assert_allclose(actual, expected, atol=2e-2 * np.abs(expected).max())
    assert not np.array_equal(actual, expected)  # the storage really was half precision
