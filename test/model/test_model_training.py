"""Training objective: chunk independence, gradient paths, and overfitting one batch."""

from ahawam_ros.model import sample_builder as sb
from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.losses import (chunk_velocities, compute_losses, encode_batch,
                                     history_memory, planner_forward, trainable_parameters,
                                     training_step)
from ahawam_ros.model.presets import get_preset
from ahawam_ros.model.testing import perturb_zero_inits, synthetic_batch
import torch


def tiny_model(seed: int = 0) -> AhaWamModel:
    torch.manual_seed(seed)
    model = AhaWamModel(get_preset('tiny'))
    perturb_zero_inits(model, seed=seed)
    return model


def test_chunks_are_independent_samples_in_the_training_forward():
    model = tiny_model().eval()
    config = model.config
    batch, chunks = 2, config.executor.num_chunks
    ae, ex = config.autoencoder, config.executor
    context_shape = (config.num_layers, batch, config.num_heads, config.tokens_per_frame,
                     config.head_dim)
    context = (torch.randn(context_shape), torch.randn(context_shape))
    inputs = [torch.randn(batch, chunks, ae.latent_channels, *ae.latent_size),
              torch.randn(batch, chunks, ex.action_dim),
              torch.randn(batch, chunks, ex.chunk_len, ex.action_dim),
              torch.rand(batch, chunks)]
    tasks = model.task_encoder(torch.tensor([0, 1]))
    with torch.no_grad():
        before = chunk_velocities(model, context, *inputs, tasks)
        for tensor in inputs:  # perturb every input of chunk 1 only
            tensor[:, 1] = tensor[:, 1] + 0.5 + torch.rand_like(tensor[:, 1])
        after = chunk_velocities(model, context, *inputs, tasks)
    assert torch.allclose(before[:, 0], after[:, 0], atol=1e-6)
    assert (before[:, 1] - after[:, 1]).abs().max() > 1e-3


def test_action_loss_reaches_the_planner_through_current_frame_kv_only():
    model = tiny_model(1).train()
    batch = synthetic_batch(model.config, 2, seed=1)
    latents = encode_batch(model, batch)
    clip = latents['clip'].clone().requires_grad_(True)
    history = latents['history'].clone().requires_grad_(True)
    tasks = model.task_encoder(batch[sb.TASK_ID])
    memory = history_memory(model, history, batch[sb.HISTORY_STEPS],
                            torch.ones_like(batch[sb.HISTORY_MASK]), tasks)
    _, _, _, context = planner_forward(model, clip, batch[sb.CLIP_STEPS], memory,
                                       torch.ones_like(batch[sb.HISTORY_MASK]), tasks)
    actions = batch[sb.ACTIONS]
    sigma = torch.rand(actions.shape[:2])
    velocity = chunk_velocities(model, context, latents['chunk'], batch[sb.CHUNK_PROPRIO],
                                actions, sigma, tasks)
    velocity.pow(2).mean().backward()
    assert not memory[0].requires_grad and history.grad is None
    assert clip.grad[:, 0].abs().max() > 0  # the current frame, through its K/V
    assert clip.grad[:, 1:].abs().max() == 0  # future frames: per-frame causal
    first_layer = model.planner.blocks[0].qkv.weight.grad
    assert first_layer is not None and first_layer.abs().max() > 0
    assert model.planner.head.weight.grad is None  # the video head is not on the action path


def test_two_hundred_steps_on_one_batch_cut_both_losses_tenfold():
    model = tiny_model(2)
    batch = synthetic_batch(model.config, 4, seed=2)
    optimizer = torch.optim.AdamW(trainable_parameters(model), lr=3e-3, weight_decay=0.0)

    def losses():  # fixed noise and timesteps: one fixed regression problem
        return training_step(model, optimizer, batch, generator=torch.Generator().manual_seed(7))

    first = losses()
    for _ in range(198):
        losses()
    last = losses()
    with torch.no_grad():
        final = compute_losses(model.eval(), batch, torch.Generator().manual_seed(7))
    assert float(final['video_loss']) < first['video_loss'] / 10, (first, last)
    assert float(final['action_loss']) < first['action_loss'] / 10, (first, last)
