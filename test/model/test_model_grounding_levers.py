"""The executor's grounding levers: relative actions, the context adapter, the object head."""

import dataclasses

from ahawam_ros.model import sample_builder as sb
from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.losses import compute_losses, trainable_parameters, training_step
from ahawam_ros.model.norm_stats import NormStats
from ahawam_ros.model.presets import get_preset
from ahawam_ros.model.testing import perturb_zero_inits, synthetic_batch
import pytest
import torch


def grounded_tiny(relative=True, adapter=True, object_weight=1.0, gate_init=0.0,
                  delta_std=0.02):
    config = get_preset('tiny')
    return dataclasses.replace(
        config,
        executor=dataclasses.replace(config.executor, relative_actions=relative,
                                     context_adapter=adapter),
        objective=dataclasses.replace(config.objective, object_loss_weight=object_weight),
        ovcr=dataclasses.replace(config.ovcr, gate_init=gate_init, delta_init_std=delta_std))


def test_the_shipped_preset_uses_every_lever():
    config = get_preset('small')
    assert config.executor.relative_actions and config.executor.context_adapter
    assert config.objective.object_loss_weight > 0 and config.ovcr.delta_init_std > 0


def test_relative_actions_are_taken_from_and_returned_to_the_chunk_start_state():
    torch.manual_seed(0)
    stats = NormStats.from_arrays(torch.randn(50, 14).numpy(), torch.randn(50, 14).numpy())
    model = AhaWamModel(grounded_tiny(), stats)
    proprio = torch.randn(2, 3, 14)
    actions = proprio[:, :, None] + 0.01 * torch.randn(2, 3, 16, 14)
    normalized = model.normalize_actions(actions, proprio)
    expected = (actions - proprio[:, :, None] - model.action_mean) / model.action_std
    assert torch.allclose(normalized, expected)
    assert torch.allclose(model.denormalize_actions(normalized, proprio), actions, atol=1e-6)
    with pytest.raises(ValueError, match='needs the chunk-start proprio'):
        model.normalize_actions(actions)
    absolute = AhaWamModel(grounded_tiny(relative=False), stats)
    assert torch.allclose(absolute.normalize_actions(actions, proprio),
                          (actions - absolute.action_mean) / absolute.action_std)


def executor_output(model, keys, values):
    config = model.config
    torch.manual_seed(1)
    tasks = model.task_encoder(torch.tensor([0, 1]))
    noise = torch.randn(2, config.executor.chunk_len, config.executor.action_dim)
    with torch.no_grad():
        cache = model.prepare_executor(keys, values, tasks, torch.zeros(2, 14))
        return model.sample_actions(cache, 3, noise=noise)


@pytest.mark.parametrize('adapter', [True, False])
def test_the_adapter_reads_what_the_context_holds_not_its_keys_rotation(adapter):
    """With the adapter the planner's (time-rotated) keys do not matter; the values do."""
    torch.manual_seed(0)
    model = AhaWamModel(grounded_tiny(adapter=adapter)).eval()
    perturb_zero_inits(model, std=0.3)
    config = model.config
    shape = (config.num_layers, 2, config.num_heads, config.tokens_per_frame, config.head_dim)
    keys, values = torch.randn(shape), torch.randn(shape)
    base = executor_output(model, keys, values)
    other_keys = executor_output(model, torch.randn(shape), values)
    other_values = executor_output(model, keys, torch.randn(shape))
    assert (base - other_values).abs().max() > 1e-3
    if adapter:
        assert torch.equal(base, other_keys)
        # Where a token sits matters: the same tokens in another order give another chunk.
        shuffled = executor_output(model, keys, values.flip(3))
        assert (base - shuffled).abs().max() > 1e-3
    else:
        assert (base - other_keys).abs().max() > 1e-3


def with_objects(batch, generator):
    batch = dict(batch)
    shape = batch[sb.OBJECT_POSITION].shape
    batch[sb.OBJECT_POSITION] = 0.1 * torch.randn(shape, generator=generator)
    batch[sb.OBJECT_MASK] = torch.ones(shape[:2], dtype=torch.bool)
    return batch


def test_the_object_loss_is_masked_and_trains_the_context_path():
    torch.manual_seed(0)
    model = AhaWamModel(grounded_tiny())
    batch = synthetic_batch(model.config, 4, seed=3)
    assert not batch[sb.OBJECT_MASK].any()  # synthetic episodes have no object positions
    assert float(compute_losses(model, batch)['object_loss']) == 0.0
    batch = with_objects(batch, torch.Generator().manual_seed(0))
    losses = compute_losses(model, batch)
    assert float(losses['object_loss']) > 0
    losses['loss'].backward()
    # The object head reads the action tokens: its gradient reaches the adapter's keys
    # and the planner, and OVCR's gate learns from the first step (non-zero delta init).
    assert model.executor.context_key.grad.abs().max() > 0
    assert model.executor.context_value_pos.grad.abs().max() > 0
    assert model.planner.blocks[0].qkv.weight.grad.abs().max() > 0
    assert model.ovcr.gate.grad.abs().max() > 0
    without = AhaWamModel(grounded_tiny(object_weight=0.0))
    assert not hasattr(without.executor, 'object_head')
    assert float(compute_losses(without, batch)['object_loss']) == 0.0


def train_object_head(paint: bool) -> float:
    """Object loss after 150 steps on one batch whose object x is painted into the frames."""
    torch.manual_seed(0)
    model = AhaWamModel(grounded_tiny())
    batch = synthetic_batch(model.config, 8, seed=4)
    batch = with_objects(batch, torch.Generator().manual_seed(4))
    position = batch[sb.OBJECT_POSITION]
    position[..., 1:] = 0.0
    position[..., 0] = position[:, :1, 0]  # one x per sample, at every chunk
    batch[sb.CHUNK_PROPRIO] = batch[sb.CHUNK_PROPRIO][:1].expand_as(batch[sb.CHUNK_PROPRIO])
    batch[sb.TASK_ID] = torch.zeros_like(batch[sb.TASK_ID])
    brightness = (128 + 1000 * position[:, 0, 0]).clamp(0, 255).to(torch.uint8)
    for key in (sb.CLIP_FRAMES, sb.HISTORY_FRAMES, sb.CHUNK_FRAMES):
        frames = batch[key][:1].repeat_interleave(len(position), dim=0)  # one scene for all
        if paint:
            frames[..., :4, :4, :] = brightness[:, None, None, None, None, None]
        batch[key] = frames
    optimizer = torch.optim.AdamW(trainable_parameters(model), lr=3e-3, weight_decay=0.0)
    for _ in range(150):
        logs = training_step(model, optimizer, batch, generator=torch.Generator().manual_seed(7))
    return logs['object_loss']


def test_the_object_head_reads_what_the_frames_show():
    """Same scene, proprio and task for every sample but the painted patch: vision tells."""
    painted, hidden = train_object_head(paint=True), train_object_head(paint=False)
    assert painted < hidden / 3, (painted, hidden)
