"""The memory plan: its arithmetic against counted parameters, the table, the pre-flight stop."""

from ahawam_ros.model.presets import get_preset
from ahawam_ros.train import memory_plan
from ahawam_ros.train.cli import main
from ahawam_ros.train.memory_plan import activation_bytes, count_parameters, GIB, plan
import pytest


@pytest.fixture(scope='module')
def paper():
    config = get_preset('paper')
    return config, count_parameters(config)  # built on the meta device, counted


def test_replicas_hold_16_bytes_a_trained_parameter_and_shards_divide_them(paper):
    config, counts = paper
    trained = counts['total'] - counts['autoencoder']
    assert 7.0e9 < counts['total'] < 8.0e9  # the paper's 7.4 B
    rows = {(r.strategy, r.checkpointing): r for r in plan(config, counts, 32, 8)}
    ddp, fsdp = rows['ddp', False], rows['fsdp', False]
    assert ddp.weights == pytest.approx(4 * trained + 4 * counts['autoencoder'])
    assert ddp.gradients + ddp.optimizer == pytest.approx(12 * trained)
    block = 2 * 2 * counts['planner'] / config.num_layers  # two bf16 blocks gathered
    assert fsdp.optimizer == pytest.approx(8 * trained / 8)
    assert fsdp.gradients == pytest.approx(4 * trained / 8 + block)
    assert rows['fsdp', True].activations < fsdp.activations == ddp.activations


def test_the_activation_estimate_is_the_documented_formula():
    config = get_preset('tiny')
    frames = config.planner.memory_size + 1 + config.planner.num_future_frames
    planner_tokens = config.tokens_per_frame * frames
    executor_tokens = config.executor.chunk_len * config.executor.num_chunks
    per_layer = (planner_tokens * config.planner.width * (7.5 + 2 * config.planner.mlp_ratio)
                 + executor_tokens * config.executor.width
                 * (7.5 + 2 * config.executor.mlp_ratio)) * 4
    assert activation_bytes(config, 'fp32', False) == pytest.approx(
        config.num_layers * per_layer)
    assert activation_bytes(config, 'bf16', False) == pytest.approx(
        config.num_layers * per_layer / 2)


def test_the_paper_fits_8_x_80_gib_sharded_and_not_one_gpu(paper, capsys):
    assert main(['--plan', '--preset', 'paper', '--batch-size', '32', '--world-size', '8',
                 '--device-memory-gib', '80', '--precision', 'bf16']) == 0
    eight = capsys.readouterr().out
    assert 'choice: fsdp' in eight and 'ddp' in eight
    assert main(['--plan', '--preset', 'paper', '--batch-size', '4', '--device-memory-gib',
                 '80']) == 0
    assert 'none fits' in capsys.readouterr().out


def test_a_run_that_cannot_fit_stops_before_its_data_with_the_table(tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.setattr(memory_plan, 'device_memory_bytes', lambda device: 1.0 * GIB)
    code = main(['--data', str(tmp_path / 'no_bags_here'), '--preset', 'paper',
                 '--out', str(tmp_path / 'out')])
    error = capsys.readouterr().err
    assert code == 2 and 'does not fit' in error and 'memory plan: preset paper' in error
    assert 'no rosbag2' not in error  # stopped before looking for the data
