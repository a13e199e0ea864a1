"""The executor's grounding levers: relative actions, the context adapter, the object head."""

import dataclasses

from ahawam_ros.model import sample_builder as sb
from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.losses import (compute_losses, OBJECT_SCALE, position_loss,
                                     trainable_parameters, training_step)
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


def test_the_position_loss_counts_only_the_numbers_a_target_has():
    """Empty slots (NaN: an arm picks nothing up) and masked chunks add nothing, not even NaN."""
    generator = torch.Generator().manual_seed(0)
    prediction = torch.randn(2, 3, 6, generator=generator, requires_grad=True)
    target = torch.randn(2, 3, 6, generator=generator)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    target[1, :, :3] = float('nan')  # episode 1: the left slot is empty
    target[0, 2] = float('nan')  # a masked chunk's target may be anything
    loss = position_loss(prediction, target, mask)
    kept = torch.cat([(prediction - target)[0, :2].flatten(), (prediction - target)[1, :, 3:]
                      .flatten()])
    torch.testing.assert_close(loss, (OBJECT_SCALE * kept).pow(2).mean())
    loss.backward()
    assert torch.isfinite(prediction.grad).all()
    assert (prediction.grad[1, :, :3] == 0).all() and (prediction.grad[0, 2] == 0).all()
    assert float(position_loss(prediction, target, torch.zeros_like(mask))) == 0.0
    full = torch.randn(2, 3, 3, generator=generator)  # every number counts: the chunks' mean
    error = (OBJECT_SCALE * (prediction[..., :3] - full)).pow(2).mean(-1)
    torch.testing.assert_close(position_loss(prediction[..., :3], full, mask), error[mask].mean())


def train_object_head(paint: bool, steps: int = 150, tail: int = 20) -> float:
    """
    Object loss of a model trained on eight copies of one sample that differ in the object's x.

    Every input (scene, proprio, task, steps, actions) is the same for all samples; with
    `paint` the object's x is also painted as the brightness of the top half of every view.
    Fresh timesteps and noise each step leave nothing else that tells the samples apart, so
    without the paint no model does better than the spread of the targets (0.43 / 3 = 0.14).

    Parameters
    ----------
    paint : bool
        Whether the frames show the object's x.
    steps : int
        Training steps (AdamW, one batch).
    tail : int
        The returned object loss is the mean over this many last steps.

    Returns
    -------
    float
        Mean object loss of the last `tail` steps (decimetres squared, over x, y, z).

    """
    torch.manual_seed(0)
    model = AhaWamModel(grounded_tiny())
    # The shipped Xavier head starts metre-sized (object loss ~50): the first half of the
    # steps would go to shrinking it. From zero, training starts at the frame-blind optimum
    # and every step goes to reading the frames.
    torch.nn.init.zeros_(model.executor.object_head.weight)
    torch.nn.init.zeros_(model.executor.object_head.bias)
    batch = {key: value.repeat_interleave(8, dim=0)
             for key, value in synthetic_batch(model.config, 1, seed=4).items()}
    x = torch.linspace(-0.1, 0.1, 8)  # evenly spread: no brightness clips, fixed target spread
    position = torch.zeros_like(batch[sb.OBJECT_POSITION])
    position[..., 0] = x[:, None]  # one x per sample, at every chunk
    batch[sb.OBJECT_POSITION] = position
    batch[sb.OBJECT_MASK] = torch.ones_like(batch[sb.OBJECT_MASK])
    if paint:
        # Half of each view, not a corner: the frozen random autoencoder passes a small patch
        # on weakly (and by chance), and training then at times never finds it.
        brightness = (128 + 1000 * x).to(torch.uint8)  # 28 ... 228
        for key in (sb.CLIP_FRAMES, sb.HISTORY_FRAMES, sb.CHUNK_FRAMES):
            batch[key][..., :batch[key].shape[-3] // 2, :, :] = brightness.view(-1, 1, 1, 1, 1, 1)
    optimizer = torch.optim.AdamW(trainable_parameters(model), lr=3e-3, weight_decay=0.0)
    losses = []
    for step in range(steps):
        # A new draw each step: fixed per-sample noise would let the frame-blind model tell
        # the samples apart by their noisy actions and learn their x by heart.
        generator = torch.Generator().manual_seed(step)
        losses.append(training_step(model, optimizer, batch, generator=generator)['object_loss'])
    return sum(losses[-tail:]) / tail  # one step's loss swings with its noise draw


def test_the_object_head_reads_what_the_frames_show():
    """Same scene, proprio and task for every sample but the painted half: vision tells."""
    painted, hidden = train_object_head(paint=True), train_object_head(paint=False)
    assert painted < hidden / 3, (painted, hidden)
