"""Stage 3: the executor on a frozen planner's contexts, computed once."""

import dataclasses

from ahawam_ros.data.synthetic import synthetic_training_episode
from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.checkpoint import load_checkpoint
from ahawam_ros.model.losses import history_memory, planner_forward
from ahawam_ros.model.presets import get_preset
from ahawam_ros.model.testing import perturb_zero_inits
from ahawam_ros.train.executor_stage import build_bank, EarlyDraws, sample_batch, train_executor
from ahawam_ros.train.state import load_trainer_state, resolve_resume
import numpy as np
import pytest
import torch


def tiny_grounded():
    config = get_preset('tiny')
    return dataclasses.replace(
        config, executor=dataclasses.replace(config.executor, relative_actions=True,
                                             context_adapter=True),
        objective=dataclasses.replace(config.objective, object_loss_weight=1.0))


def episode(config, length, seed, objects=True):
    return synthetic_training_episode(
        config, length, seed, np.full((length, 3), 0.05 * seed) if objects else None)


@pytest.fixture()
def model():
    torch.manual_seed(0)
    model = AhaWamModel(tiny_grounded())
    perturb_zero_inits(model, std=0.2)
    return model


def test_the_bank_holds_the_contexts_the_joint_stage_computes(model):
    config = model.config
    episodes = [episode(config, 70, 0)]
    bank = build_bank(model, episodes, [0], anchor_stride=5)[0]
    assert list(bank.anchors) == list(range(0, 70 - 16 + 1, 5))
    model.eval()
    with torch.no_grad():
        latents = model.encode(torch.from_numpy(episodes[0].images))
        np.testing.assert_allclose(bank.latents.float(), latents, atol=2e-2, rtol=1e-2)
        for index in (0, 5, 9):  # no history, partial history, full history
            s = int(bank.anchors[index])
            stride, frames = config.planner.history_stride, config.planner.memory_size
            history = torch.tensor([[s - j * stride for j in range(frames, 0, -1)]])
            valid = history >= 0
            tasks = model.task_encoder(torch.tensor([0]))
            memory = history_memory(model, latents[history.clamp_min(0)], history, valid, tasks)
            clip = torch.stack([latents[s], latents[s], latents[s]])[None]  # futures unused
            _, _, _, (keys, values) = planner_forward(
                model, clip, torch.tensor([[s, s + 8, s + 16]]), memory, valid, tasks)
            assert torch.allclose(bank.keys[index].float(), keys[:, 0], atol=2e-2), index
            assert torch.allclose(bank.values[index].float(), values[:, 0], atol=2e-2), index


def test_a_bank_past_the_available_memory_stops_at_its_first_episode(model, monkeypatch,
                                                                     capsys):
    from ahawam_ros.train import executor_stage
    config = model.config
    episodes = [episode(config, 70, 0), episode(config, 70, 1)]
    one = executor_stage.bank_nbytes(build_bank(model, episodes[:1], [0], anchor_stride=5)[0])
    built = []
    original = executor_stage.anchor_contexts
    monkeypatch.setattr(executor_stage, 'anchor_contexts',
                        lambda *args, **kwargs: built.append(1) or original(*args, **kwargs))
    monkeypatch.setattr(executor_stage, 'device_memory_bytes', lambda device: 10 * one)
    assert len(build_bank(model, episodes, [0, 0], 5, total_steps=140)) == 2  # 2 of 11 fit
    assert 'context bank of about' in capsys.readouterr().out
    built.clear()
    with pytest.raises(MemoryError, match='--executor-anchor-stride'):  # 100 episodes' worth
        build_bank(model, episodes, [0, 0], anchor_stride=5, total_steps=7000)
    assert built == [1]  # stopped after the first episode


def test_batches_take_chunks_at_offsets_from_the_anchors(model):
    config = model.config
    banks = build_bank(model, [episode(config, 60, 1), episode(config, 40, 2, False)], [0, 1],
                       anchor_stride=4)
    data = sample_batch(banks, config, 32, np.random.default_rng(0))
    layers, heads, tokens, hd = (config.num_layers, config.num_heads, config.tokens_per_frame,
                                 config.head_dim)
    assert data['keys'].shape == (layers, 32, heads, tokens, hd)
    assert data['actions'].shape == (32, 1, 16, 14) and data['chunk_proprio'].shape == (32, 1, 14)
    # Every chunk's proprio is a joint state of its episode; the object mask follows it.
    for proprio, has_objects in zip(data['chunk_proprio'][:, 0], data['object_mask'][:, 0]):
        bank = banks[0] if has_objects else banks[1]
        assert (bank.joints == proprio).all(dim=1).any()
    assert data['object_mask'].any() and not data['object_mask'].all()
    # Early draws: every chunk of a batch drawn at fraction 1 starts before step 10 + 15 + 16.
    early = sample_batch(banks, config, 64, np.random.default_rng(1), EarlyDraws(1.0, 10))
    starts = [int(torch.nonzero((banks[0 if m else 1].joints == p).all(dim=1))[0])
              for p, m in zip(early['chunk_proprio'][:, 0], early['object_mask'][:, 0])]
    assert max(starts) < 10 + config.objective.max_offset + config.executor.chunk_len
    assert max(starts) > 16  # chunks still start at every offset


def test_training_moves_the_executor_and_ovcr_and_never_the_planner(model, tmp_path):
    config = model.config
    episodes = [episode(config, 60, seed) for seed in range(2)]
    planner = {k: v.clone() for k, v in model.planner.state_dict().items()}
    executor = {k: v.clone() for k, v in model.executor.state_dict().items()}
    log = tmp_path / 'log.jsonl'
    first = train_executor(model, episodes, [0, 0], tmp_path, steps=2, batch=16, lr=1e-3,
                           seed=0, log_every=2, log_file=log)
    last = train_executor(model, episodes, [0, 0], tmp_path, steps=150, batch=16, lr=1e-3,
                          seed=0, log_every=50, checkpoint_every=100, log_file=log)
    assert last['loss'] < first['loss'] / 2, (first, last)
    assert all(torch.equal(v, model.planner.state_dict()[k]) for k, v in planner.items())
    assert any(not torch.equal(v, model.executor.state_dict()[k]) for k, v in executor.items())
    assert all(p.requires_grad for p in model.planner.parameters())  # unfrozen afterwards
    assert (tmp_path / 'checkpoints' / 'executor_step_0000100' / 'model.safetensors').is_file()
    assert len(log.read_text().splitlines()) == 1 + 3


def test_a_resumed_stage_ends_where_the_uninterrupted_one_does(model, tmp_path):
    config = model.config
    episodes = [episode(config, 60, seed) for seed in range(2)]
    run = tmp_path / 'run'
    train_executor(model, episodes, [0, 0], run, steps=6, batch=8, lr=1e-3, seed=0,
                   log_every=1, checkpoint_every=3, train_config={'seed': 0})
    middle = run / 'checkpoints' / 'executor_step_0000003'
    assert resolve_resume(run) == middle.resolve()  # the newest checkpoint is marked
    state = load_trainer_state(middle)
    assert (state['stage'], state['step']) == ('executor', 3)
    resumed = load_checkpoint(middle)[0]
    assert any(not torch.equal(v, resumed.state_dict()[k])
               for k, v in model.state_dict().items())  # three steps still to go
    middle_weights = torch.cat([p.detach().flatten() for p in resumed.parameters()])
    train_executor(resumed, episodes, [0, 0], tmp_path / 'resumed', steps=6, batch=8,
                   lr=1e-3, seed=0, log_every=1, checkpoint_every=3, state=state)
    full = torch.cat([p.detach().flatten() for p in model.parameters()])
    after = torch.cat([p.detach().flatten() for p in resumed.parameters()])
    # Not bit-equal: the resumed bank is computed with the task tokens of step 3 (they train
    # in this stage), the uninterrupted one with those of step 0. The same draws, optimiser
    # and schedule leave the two runs five times closer than the three steps that were left.
    assert (after - full).abs().max() < 0.2 * (middle_weights - full).abs().max()


def test_the_compiled_losses_equal_the_eager_ones_values_draws_and_gradients(model):
    from ahawam_ros.model.losses import chunk_losses
    from ahawam_ros.train.executor_stage import executor_parameters
    from ahawam_ros.train.stage_losses import StageLosses

    config = model.config
    banks = build_bank(model, [episode(config, 60, 0), episode(config, 60, 1)], [0, 1], 4)
    data = sample_batch(banks, config, 8, np.random.default_rng(0))
    params = executor_parameters(model)
    results = {}
    for name, losses in (('eager', chunk_losses), ('compiled', StageLosses(enabled=True))):
        generator = torch.Generator().manual_seed(3)
        model.zero_grad(set_to_none=True)
        action, objects = losses(model, (data['keys'], data['values']), data['chunk_latents'],
                                 data, model.task_encoder(data['task_id']), generator)
        (action + objects).backward()
        results[name] = (action.detach(), objects.detach(), generator.get_state(),
                         [p.grad.clone() for p in params])
        if name == 'compiled':
            assert losses.backend == 'inductor'
    eager, compiled = results['eager'], results['compiled']
    assert float(eager[0]) > 0 and float(eager[1]) > 0
    torch.testing.assert_close(compiled[0], eager[0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(compiled[1], eager[1], rtol=1e-4, atol=1e-6)
    assert torch.equal(compiled[2], eager[2])  # the same noise was drawn
    for got, want in zip(compiled[3], eager[3]):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-5)


def test_the_stage_losses_stay_eager_when_compiling_is_off(monkeypatch):
    from ahawam_ros.model.compiled import COMPILE_ENV
    from ahawam_ros.model.losses import chunk_losses
    from ahawam_ros.train.stage_losses import StageLosses

    monkeypatch.setenv(COMPILE_ENV, '0')
    losses = StageLosses()
    assert losses.backend == 'eager' and COMPILE_ENV in StageLosses(True).describe()
    assert losses._losses is chunk_losses
