"""Checkpoints: a round trip reproduces the policy; mismatched shapes fail clearly."""

import json
import shutil
import subprocess
import sys

from ahawam_ros import cli
from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.checkpoint import (CheckpointError, load_autoencoder, load_checkpoint,
                                         load_state_checked, save_autoencoder, save_checkpoint)
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


# ---- malformed checkpoints: one CheckpointError naming the file and the field ----------------

def _write(path, text):
    path.write_text(text)


def _truncate(path):
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def _poison_weights(directory):
    """Make one weight NaN, as a diverged run saves it."""
    from safetensors.torch import load_file, save_file
    tensors = load_file(str(directory / 'model.safetensors'))
    name = sorted(n for n, t in tensors.items() if t.is_floating_point())[-1]
    tensors[name] = torch.full_like(tensors[name], float('nan'))
    save_file(tensors, str(directory / 'model.safetensors'))


def _edit_json(name, edit):
    def apply(directory):
        data = json.loads((directory / name).read_text())
        edit(data)
        (directory / name).write_text(json.dumps(data))
    return apply


MALFORMED = {
    # case: (damage(directory), file at fault, field named ('' for the whole file), words)
    'config {}': (lambda d: _write(d / 'config.json', '{}'), 'config.json', 'model', 'missing'),
    'config without model': (_edit_json('config.json', lambda c: c.pop('model')),
                             'config.json', 'model', 'missing'),
    'config model not a dict': (_edit_json('config.json', lambda c: c.update(model=[1, 2])),
                                'config.json', 'model', 'expected dict'),
    'config model unknown key': (_edit_json('config.json',
                                            lambda c: c['model'].update(warp_drive=1)),
                                 'config.json', 'model', 'warp_drive'),
    'config garbage': (lambda d: _write(d / 'config.json', '{"model": [oops'), 'config.json', '',
                       'not valid JSON'),
    'config a list': (lambda d: _write(d / 'config.json', '[]'), 'config.json', '',
                      'expected a JSON object'),
    'state without step': (_edit_json('state.json', lambda s: s.pop('step')), 'state.json',
                           'step', 'missing'),
    'state step a string': (_edit_json('state.json', lambda s: s.update(step='ten')),
                            'state.json', 'step', 'expected int'),
    'state without kind': (_edit_json('state.json', lambda s: s.pop('kind')), 'state.json',
                           'kind', 'missing'),
    'state garbage': (lambda d: _write(d / 'state.json', '\x00\x01 not json'), 'state.json', '',
                      'not valid JSON'),
    'state missing': (lambda d: (d / 'state.json').unlink(), 'state.json', '', 'file missing'),
    'norm stats garbage': (lambda d: _write(d / 'norm_stats.json', '{'), 'norm_stats.json', '',
                           'not valid JSON'),
    'norm stats missing key': (_edit_json('norm_stats.json', lambda s: s.pop(sorted(s)[0])),
                               'norm_stats.json', '', 'missing keys'),
    'norm stats missing': (lambda d: (d / 'norm_stats.json').unlink(), 'norm_stats.json', '',
                           'file missing: a policy checkpoint carries its normalisation'),
    'weights truncated': (lambda d: _truncate(d / 'model.safetensors'), 'model.safetensors', '',
                          'truncated or corrupt'),
    'weights empty': (lambda d: _write(d / 'model.safetensors', ''), 'model.safetensors', '',
                      'truncated or corrupt'),
    'weights missing': (lambda d: (d / 'model.safetensors').unlink(), 'model.safetensors', '',
                        'file missing'),
    'weights NaN': (_poison_weights, 'model.safetensors', '', 'holds NaN or infinite values'),
}


@pytest.fixture(scope='module')
def good_checkpoint(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp('good') / 'ckpt', trained_looking_model(),
                           step=3)


def damaged(good, tmp_path, case):
    directory = tmp_path / 'ckpt'
    shutil.copytree(good, directory)
    MALFORMED[case][0](directory)
    return directory


@pytest.mark.parametrize('case', sorted(MALFORMED))
def test_a_malformed_checkpoint_is_one_error_naming_file_and_field(good_checkpoint, tmp_path,
                                                                   case):
    _, name, field, words = MALFORMED[case]
    directory = damaged(good_checkpoint, tmp_path, case)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(directory)
    error = caught.value
    message = str(error)
    assert error.path == directory / name and error.field == field
    assert str(directory / name) in message and words in message, message
    assert (f"field '{field}'" in message) == bool(field), message
    assert '\n' not in message and isinstance(error, ValueError)


def test_a_missing_directory_and_the_wrong_kind_are_checkpoint_errors(good_checkpoint,
                                                                      tmp_path):
    with pytest.raises(CheckpointError, match='no such checkpoint directory'):
        load_checkpoint(tmp_path / 'nowhere')
    with pytest.raises(CheckpointError, match="field 'kind'.*not 'autoencoder'"):
        load_autoencoder(good_checkpoint)


def test_a_malformed_autoencoder_checkpoint_names_its_file(tmp_path):
    save_autoencoder(tmp_path / 'ae', trained_looking_model().autoencoder, step=7)
    (tmp_path / 'ae' / 'config.json').write_text('{"autoencoder": {"latent_channels": "x"}}')
    with pytest.raises(CheckpointError, match=r"config.json: field 'autoencoder'"):
        load_autoencoder(tmp_path / 'ae')


def test_export_of_a_truncated_checkpoint_exits_2_with_one_line(good_checkpoint, tmp_path):
    """Through the real `ahawam` entry point, in a process of its own."""
    case = 'weights truncated'
    directory = damaged(good_checkpoint, tmp_path, case)
    result = subprocess.run([sys.executable, '-m', 'ahawam_ros.cli', 'export', str(directory),
                             str(tmp_path / 'out')], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('ahawam export: error: checkpoint '), lines
    assert str(directory / MALFORMED[case][1]) in lines[0]
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('command', [['eval-sim', '--episodes', '1'],
                                     ['eval-bag', 'BAG'], ['export', 'CKPT', 'OUT']])
def test_every_command_that_loads_a_checkpoint_exits_2(good_checkpoint, tmp_path, capsys,
                                                       command):
    directory = damaged(good_checkpoint, tmp_path, 'state without step')
    (tmp_path / 'bag').mkdir()
    (tmp_path / 'bag' / 'metadata.yaml').write_text('')  # never opened: the policy loads first
    argv = [{'BAG': str(tmp_path / 'bag'), 'CKPT': str(directory),
             'OUT': str(tmp_path / 'out')}.get(word, word) for word in command]
    if 'CKPT' not in command:
        argv += ['--checkpoint', str(directory), '--out', str(tmp_path / 'out')]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert f"{directory / 'state.json'}: field 'step'" in error, error
    assert len(error.strip().splitlines()) == 1, error
