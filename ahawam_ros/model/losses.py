"""
The AHA-WAM training objective: L = w_v L_video + w_a L_action (flow matching on both experts).

- Planner: history frames run under no_grad (per-frame causal among themselves) and their
  detached keys/values are prepended at every layer of the clip pass; the clip is the clean
  current frame (t = 0) plus future frames noised to one shared level per sample. L_video is
  the bump-weighted MSE of the velocity on the valid future frames.
- Executor, per chunk: chunk n is an independent sample with its own timestep, its own
  proprio token and its own OVCR edit (from the frame at the chunk start) of the current
  frame's context. L_action is the bump-weighted MSE of the velocity, masked on padding. Its
  gradients reach the planner through the current-frame keys/values only. With relative
  actions the targets are a - q at the chunk start (`AhaWamModel.normalize_actions`); the
  proprio input may be noised (`objective.proprio_noise`).
- Position (auxiliary, `objective.position_loss_weight` > 0): the executor's object head
  predicts a position at each chunk start, in decimetres, masked where a sample has none: the
  task object's (`object_loss_weight`: privileged state of simulated demos) or the grasp point
  in hindsight (`grasp_loss_weight`: from the robot's own joints and commands). It can only be
  read from the context and the chunk-start frame, so it pulls the executor's attention onto
  the scene.

Shapes: B batch, F future frames, N history frames, Nc chunks, K chunk length, A action dim,
C x h x w latents, L layers, H heads, S tokens per frame, hd head dim.
"""

from typing import Dict, Optional, Tuple

from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.flow import add_noise, T_SCALE
from ahawam_ros.model.sample_builder import (ACTION_MASK, ACTIONS, CHUNK_FRAMES, CHUNK_PROPRIO,
                                             CLIP_FRAMES, CLIP_MASK, CLIP_STEPS, HISTORY_FRAMES,
                                             HISTORY_MASK, HISTORY_STEPS, OBJECT_MASK,
                                             OBJECT_POSITION, TASK_ID)
from ahawam_ros.model.video_dit import frame_causal_mask
import torch

KV = Tuple[torch.Tensor, torch.Tensor]
OBJECT_SCALE = 10.0  # object positions enter the auxiliary loss in decimetres


def encode_batch(model: AhaWamModel, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """
    Encode every frame of a batch with the frozen autoencoder in one pass.

    Returns
    -------
    dict
        'clip' (B, 1 + F, C, h, w), 'history' (B, N, C, h, w), 'chunk' (B, Nc, C, h, w).

    """
    parts = [CLIP_FRAMES, HISTORY_FRAMES, CHUNK_FRAMES]
    counts = [batch[k].shape[1] for k in parts]
    frames = torch.cat([batch[k] for k in parts], dim=1)  # (B, 1 + F + N + Nc, V, H, W, 3)
    latents = model.encode(frames.flatten(0, 1)).unflatten(0, frames.shape[:2])
    clip, history, chunk = latents.split(counts, dim=1)
    return {'clip': clip, 'history': history, 'chunk': chunk}


def history_memory(model: AhaWamModel, latents: torch.Tensor, steps: torch.Tensor,
                   valid: torch.Tensor, task_tokens: torch.Tensor) -> KV:
    """
    Keys/values of the history frames, computed without gradients.

    Frames attend per-frame causally to earlier valid history frames, as the rolling memory
    did when they were refreshed.

    Parameters
    ----------
    model : AhaWamModel
        The model being trained.
    latents : torch.Tensor
        (B, N, C, h, w) history latents, oldest first.
    steps, valid : torch.Tensor
        (B, N) control steps and validity.
    task_tokens : torch.Tensor
        (B, Lt, Dt).

    Returns
    -------
    keys, values : torch.Tensor
        (L, B, H, N S, hd), detached.

    """
    batch, frames = latents.shape[:2]
    mask = frame_causal_mask(frames, model.config.tokens_per_frame, frame_valid=valid,
                             device=latents.device)
    with torch.no_grad():
        _, keys, values = model.planner(latents, torch.zeros(batch, frames, device=latents.device),
                                        model.frame_position(steps), task_tokens,
                                        attn_mask=mask, with_velocity=False)
    return torch.stack(keys).detach(), torch.stack(values).detach()


def planner_forward(model: AhaWamModel, clip_latents: torch.Tensor, clip_steps: torch.Tensor,
                    memory: KV, memory_valid: torch.Tensor, task_tokens: torch.Tensor,
                    generator: Optional[torch.Generator] = None
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, KV]:
    """
    Noise the future frames, run the clip pass, return velocity error and current context.

    Parameters
    ----------
    model : AhaWamModel
        The model being trained.
    clip_latents : torch.Tensor
        (B, 1 + F, C, h, w); frame 0 is the clean current frame.
    clip_steps : torch.Tensor
        (B, 1 + F) control steps.
    memory : (torch.Tensor, torch.Tensor)
        (L, B, H, N S, hd) history keys/values.
    memory_valid : torch.Tensor
        (B, N) validity of the history frames.
    task_tokens : torch.Tensor
        (B, Lt, Dt).
    generator : torch.Generator, optional
        Source of timesteps and noise.

    Returns
    -------
    error : torch.Tensor
        (B, F) per-frame MSE of the velocity on the future frames.
    weight : torch.Tensor
        (B,) loss weight of each sample's timestep.
    sigma : torch.Tensor
        (B,) noise level of the future frames.
    context : (torch.Tensor, torch.Tensor)
        (L, B, H, S, hd) keys/values of the current frame (with gradients).

    """
    batch, frames = clip_latents.shape[:2]
    sigma, weight = model.schedule.sample((batch,), clip_latents.device, generator)
    future = clip_latents[:, 1:]
    noise = torch.randn(future.shape, generator=generator).to(future.device)
    noisy = torch.cat([clip_latents[:, :1], add_noise(future, noise, sigma)], dim=1)
    timesteps = torch.cat([torch.zeros_like(sigma)[:, None],
                           (T_SCALE * sigma)[:, None].expand(-1, frames - 1)], dim=1)  # (B, T)
    tokens = model.config.tokens_per_frame
    mask = frame_causal_mask(frames, tokens, memory_valid=memory_valid.repeat_interleave(
        tokens, dim=1), device=clip_latents.device)
    velocity, keys, values = model.planner(noisy, timesteps, model.frame_position(clip_steps),
                                           task_tokens, memory=memory, attn_mask=mask)
    error = (velocity[:, 1:] - (noise - future)).pow(2).mean(dim=(2, 3, 4))  # (B, F)
    context = (torch.stack([k[:, :, :tokens] for k in keys]),  # (L, B, H, S, hd)
               torch.stack([v[:, :, :tokens] for v in values]))
    return error, weight, sigma, context


def chunk_velocities(model: AhaWamModel, context: KV, chunk_latents: torch.Tensor,
                     chunk_proprio: torch.Tensor, noisy_actions: torch.Tensor,
                     sigma: torch.Tensor, task_tokens: torch.Tensor) -> torch.Tensor:
    """(B, Nc, K, A) velocities of `chunk_predictions` (same arguments)."""
    return chunk_predictions(model, context, chunk_latents, chunk_proprio, noisy_actions,
                             sigma, task_tokens)[0]


def chunk_predictions(model: AhaWamModel, context: KV, chunk_latents: torch.Tensor,
                      chunk_proprio: torch.Tensor, noisy_actions: torch.Tensor,
                      sigma: torch.Tensor, task_tokens: torch.Tensor
                      ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """
    Per-chunk executor forward: every chunk an independent sample.

    Parameters
    ----------
    model : AhaWamModel
        The model being trained.
    context : (torch.Tensor, torch.Tensor)
        (L, B, H, S, hd) current-frame keys/values of each sample.
    chunk_latents : torch.Tensor
        (B, Nc, C, h, w) latents of the chunk-start frames (for OVCR).
    chunk_proprio : torch.Tensor
        (B, Nc, A) normalised joint positions at the chunk starts.
    noisy_actions : torch.Tensor
        (B, Nc, K, A) noisy normalised actions.
    sigma : torch.Tensor
        (B, Nc) noise levels.
    task_tokens : torch.Tensor
        (B, Lt, Dt).

    Returns
    -------
    velocity : torch.Tensor
        (B, Nc, K, A) predicted velocities.
    object_position : torch.Tensor or None
        (B, Nc, P) the object head's prediction (None without an object head).

    """
    chunks = chunk_latents.shape[1]
    keys = context[0].repeat_interleave(chunks, dim=1)  # (L, B Nc, H, S, hd)
    values = context[1].repeat_interleave(chunks, dim=1)
    keys, values = model.edit_context(keys, values, chunk_latents.flatten(0, 1))
    cache = model.prepare_executor(keys, values, task_tokens.repeat_interleave(chunks, dim=0),
                                   chunk_proprio.flatten(0, 1))
    velocity, objects = model.executor.velocity_and_object(
        noisy_actions.flatten(0, 1), T_SCALE * sigma.flatten(), cache)
    shape = noisy_actions.shape[:2]
    return velocity.unflatten(0, shape), None if objects is None else objects.unflatten(0, shape)


def _masked_mean(error: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of weight * error over mask entries / their count (0 when none)."""
    mask = mask.to(error.dtype)
    return (weight * error * mask).sum() / mask.sum().clamp_min(1.0)


def position_mask(target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Return which (..., P) numbers of a position target count: finite, in a kept chunk."""
    return torch.isfinite(target) & mask[..., None].bool()


def position_loss(prediction: torch.Tensor, target: torch.Tensor,
                  mask: torch.Tensor) -> torch.Tensor:
    """
    Mean squared error (decimetres) of the position head over the numbers that count.

    `prediction`, `target`: (..., P), the target NaN where a slot has no object; `mask`:
    (...,) False for chunks without a target. 0 when nothing counts.
    """
    valid = position_mask(target, mask)
    error = (OBJECT_SCALE * (prediction - target.nan_to_num())).pow(2)
    return torch.where(valid, error, torch.zeros_like(error)).sum() / valid.sum().clamp_min(1)


def chunk_losses(model: AhaWamModel, context: KV, chunk_latents: torch.Tensor,
                 batch: Dict[str, torch.Tensor], task_tokens: torch.Tensor,
                 generator: Optional[torch.Generator] = None,
                 draw_rows: Optional[Tuple[slice, int]] = None
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Compute the executor's losses of a batch of chunks given their planner context.

    Parameters
    ----------
    model : AhaWamModel
        The model being trained.
    context : (torch.Tensor, torch.Tensor)
        (L, B, H, S, hd) keys/values of each sample's planner frame.
    chunk_latents : torch.Tensor
        (B, Nc, C, h, w) latents of the chunk-start frames.
    batch : dict of str to torch.Tensor
        CHUNK_PROPRIO, ACTIONS, ACTION_MASK, OBJECT_POSITION, OBJECT_MASK (`sample_builder`).
    task_tokens : torch.Tensor
        (B, Lt, Dt).
    generator : torch.Generator, optional
        Source of the timesteps and noise.
    draw_rows : (slice, int), optional
        (rows, global batch): this batch is those rows of a global batch split over ranks;
        the noise is drawn for the global batch and these rows kept, so that any split
        trains on the noise one process would draw.

    Returns
    -------
    action_loss, object_loss : torch.Tensor
        Scalars with gradients (the object loss is 0 without an object head).

    """
    objective = model.config.objective
    proprio = batch[CHUNK_PROPRIO]  # (B, Nc, A) robot units
    actions = model.normalize_actions(batch[ACTIONS], proprio)  # (B, Nc, K, A)
    rows, full = draw_rows or (slice(None), actions.shape[0])
    sigma, weight = model.schedule.sample((full, actions.shape[1]), actions.device, generator)
    sigma, weight = sigma[rows], weight[rows]
    noise = torch.randn((full, *actions.shape[1:]), generator=generator)[rows].to(actions.device)
    proprio_input = model.normalize_proprio(proprio)
    if objective.proprio_noise > 0:
        kick = torch.randn((full, *proprio_input.shape[1:]), generator=generator)[rows]
        proprio_input = proprio_input + objective.proprio_noise * kick.to(proprio_input.device)
    velocity, objects = chunk_predictions(model, context, chunk_latents, proprio_input,
                                          add_noise(actions, noise, sigma), sigma, task_tokens)
    error = (velocity - (noise - actions)).pow(2).mean(dim=-1)  # (B, Nc, K)
    action_loss = _masked_mean(error, weight[:, :, None], batch[ACTION_MASK])
    object_loss = torch.zeros((), device=actions.device)
    if objects is not None:
        object_loss = position_loss(objects, batch[OBJECT_POSITION], batch[OBJECT_MASK])
    return action_loss, object_loss


def compute_losses(model: AhaWamModel, batch: Dict[str, torch.Tensor],
                   generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
    """
    Compute the training loss of one batch (keys and shapes: `sample_builder`, leading B).

    Parameters
    ----------
    model : AhaWamModel
        In training mode; its autoencoder is frozen.
    batch : dict of str to torch.Tensor
        A collated batch on the model's device.
    generator : torch.Generator, optional
        Source of all timesteps and noise (a fixed seed makes the loss deterministic).

    Returns
    -------
    dict of str to torch.Tensor
        'loss' (weighted total, scalar with gradients), 'video_loss', 'action_loss',
        'object_loss' (0 without an object head).

    """
    latents = encode_batch(model, batch)
    tasks = model.task_encoder(batch[TASK_ID])  # (B, Lt, Dt)
    memory = history_memory(model, latents['history'], batch[HISTORY_STEPS],
                            batch[HISTORY_MASK], tasks)
    error, weight, _, context = planner_forward(model, latents['clip'], batch[CLIP_STEPS],
                                                memory, batch[HISTORY_MASK], tasks,
                                                generator)
    video_loss = _masked_mean(error, weight[:, None], batch[CLIP_MASK][:, 1:])

    action_loss, object_loss = chunk_losses(model, context, latents['chunk'], batch, tasks,
                                            generator)
    objective = model.config.objective
    loss = (objective.video_loss_weight * video_loss
            + objective.action_loss_weight * action_loss
            + objective.position_loss_weight * object_loss)
    return {'loss': loss, 'video_loss': video_loss.detach(), 'action_loss': action_loss.detach(),
            'object_loss': object_loss.detach()}


def training_step(model: AhaWamModel, optimizer: torch.optim.Optimizer,
                  batch: Dict[str, torch.Tensor], grad_clip: float = 1.0,
                  generator: Optional[torch.Generator] = None) -> Dict[str, float]:
    """Run forward, backward, gradient clipping and one optimiser step; return the losses."""
    model.train()
    losses = compute_losses(model, batch, generator)
    optimizer.zero_grad(set_to_none=True)
    losses['loss'].backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(trainable_parameters(model), grad_clip)
    optimizer.step()
    out = {name: float(value.detach()) for name, value in losses.items()}
    out['grad_norm'] = float(grad_norm)
    return out


def trainable_parameters(model: AhaWamModel):
    """Every parameter the policy training updates (all but the frozen autoencoder)."""
    return [p for p in model.parameters() if p.requires_grad]
