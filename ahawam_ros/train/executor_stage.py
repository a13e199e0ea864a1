"""
Stage 3 of `ahawam train` (`--executor-steps N`): the executor on a frozen planner's contexts.

Why: on 2 CPU cores the planner is the whole cost of a joint training step (its executor part
is a few percent), so the joint stage sees the demonstrations about once, while behaviour
cloning needs many passes. After the joint stage the planner (and the frozen autoencoder) are
run once over the demonstrations and their outputs kept in memory (`ContextBank`); the
executor and OVCR (and the task tokens) then train for many epochs on them at a small
fraction of the cost per chunk, with the same losses as the joint stage
(`losses.chunk_losses`: flow matching on the actions, the auxiliary object position).

The bank holds, per episode, the latents of every frame (the chunk-start frames OVCR reads)
and, at every `anchor_stride`-th step s, the planner context of frame s computed exactly as in
the joint stage: history frames at s - j * history_stride (j = N..1) through the planner
without gradients, then the current frame against them (`model.refresh`). A sample draws an
anchor s, the horizon-adaptive offset o and a chunk index n as `sample_builder` does, and
takes the chunk at c = s + o + n K.

Shapes: E episodes, T steps, C x h x w latents, L layers, H heads, S tokens per frame, hd head
dim, K chunk length, A joints, B chunks per batch.
"""

from dataclasses import dataclass
import json
import math
from pathlib import Path
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ahawam_ros.data.episode import Episode
from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.checkpoint import save_checkpoint
from ahawam_ros.model.losses import chunk_losses, history_memory, trainable_parameters
from ahawam_ros.model.sample_builder import (ACTION_MASK, ACTIONS, CHUNK_PROPRIO,
                                             OBJECT_MASK, OBJECT_POSITION, sample_offset)
from ahawam_ros.train.distributed import barrier, DistInfo
from ahawam_ros.train.executor_parallel import (mask_shares, rank_rows, share_banks,
                                                single_process, sum_gradients, sum_logs)
from ahawam_ros.train.memory_plan import device_memory_bytes, GIB, USABLE
from ahawam_ros.train.optim import build_optimizer, build_scheduler
from ahawam_ros.train.stage_losses import StageLosses
from ahawam_ros.train.state import checkpoint_dir, EXECUTOR_STAGE, write_checkpoint
import numpy as np
import torch

BANK_DTYPE = torch.float16  # what the bank stores; batches are float32


@dataclass
class EpisodeBank:
    """
    One episode's frozen planner outputs and its targets.

    Attributes
    ----------
    latents : torch.Tensor
        (T, C, h, w) latents of every frame (BANK_DTYPE).
    anchors : np.ndarray
        (N,) anchor steps s.
    keys, values : torch.Tensor
        (N, L, H, S, hd) planner context of each anchor frame (BANK_DTYPE).
    joints, actions : torch.Tensor
        (T, A) float32 joint positions and actions, robot units.
    objects : torch.Tensor or None
        (T, P) float32 positions (the auxiliary target, NaN: no object), None when none.
    task_id : int
        The episode's task index.

    """

    latents: torch.Tensor
    anchors: np.ndarray
    keys: torch.Tensor
    values: torch.Tensor
    joints: torch.Tensor
    actions: torch.Tensor
    objects: Optional[torch.Tensor]
    task_id: int


@torch.no_grad()
def encode_frames(model: AhaWamModel, images: np.ndarray, batch: int = 64) -> torch.Tensor:
    """(T, V, H, W, 3) uint8 frames -> (T, C, h, w) latents with the frozen autoencoder."""
    device = model.action_mean.device
    # np.array copies: cached episodes are read-only memory maps, which torch will not wrap
    parts = [model.encode(torch.from_numpy(np.array(images[i:i + batch])).to(device))
             .to(BANK_DTYPE) for i in range(0, len(images), batch)]
    return torch.cat(parts)


@torch.no_grad()
def anchor_contexts(model: AhaWamModel, latents: torch.Tensor, anchors: np.ndarray,
                    task_id: int, batch: int = 32) -> Dict[str, torch.Tensor]:
    """
    Planner contexts of the anchor frames, as the joint stage computes them.

    Returns 'keys' and 'values', (N, L, H, S, hd) each (BANK_DTYPE).
    """
    planner, device = model.config.planner, model.action_mean.device
    keys, values = [], []
    for i in range(0, len(anchors), batch):
        steps = torch.as_tensor(anchors[i:i + batch], device=device)  # (B,)
        history = steps[:, None] - planner.history_stride * torch.arange(
            planner.memory_size, 0, -1, device=device)  # (B, N) oldest first
        valid = history >= 0
        frames = latents[history.clamp_min(0)].float()  # (B, N, C, h, w)
        tasks = model.task_encoder(torch.full((len(steps),), task_id, device=device))
        memory = history_memory(model, frames, history, valid, tasks)
        valid_tokens = valid.repeat_interleave(model.config.tokens_per_frame, dim=1)
        k, v = model.refresh(latents[steps].float(), steps, tasks, memory, valid_tokens)
        keys.append(k.movedim(1, 0).to(BANK_DTYPE))  # (B, L, H, S, hd)
        values.append(v.movedim(1, 0).to(BANK_DTYPE))
    return {'keys': torch.cat(keys), 'values': torch.cat(values)}


def build_bank(model: AhaWamModel, episodes: Sequence[Episode], task_ids: Sequence[int],
               anchor_stride: int, total_steps: Optional[int] = None) -> List[EpisodeBank]:
    """
    Run the frozen autoencoder and planner over every episode (eval mode, no grad).

    With `total_steps` (the control steps of every episode the bank will hold, all ranks'),
    the first episode's bank sizes the whole one (`check_bank_fits`) before the rest is built.
    """
    was_training = model.training
    model.eval()
    chunk, device = model.config.executor.chunk_len, model.action_mean.device
    banks = []
    for episode, task_id in zip(episodes, task_ids):
        latents = encode_frames(model, episode.images)
        anchors = np.arange(0, max(len(episode) - chunk, 0) + 1, anchor_stride)
        context = anchor_contexts(model, latents, anchors, task_id)
        objects = episode.object_position
        banks.append(EpisodeBank(
            latents=latents, anchors=anchors, keys=context['keys'], values=context['values'],
            joints=torch.as_tensor(episode.joint_positions, dtype=torch.float32, device=device),
            actions=torch.as_tensor(episode.actions, dtype=torch.float32, device=device),
            objects=None if objects is None else torch.as_tensor(
                objects, dtype=torch.float32, device=device),
            task_id=task_id))
        if total_steps and len(banks) == 1:
            check_bank_fits(banks[0], len(episode), total_steps, anchor_stride, device)
    model.train(was_training)
    return banks


def bank_nbytes(bank: EpisodeBank) -> int:
    """Return the bytes of an episode bank's tensors."""
    return sum(value.numel() * value.element_size() for value in vars(bank).values()
               if torch.is_tensor(value))


def check_bank_fits(first: EpisodeBank, first_steps: int, total_steps: int, anchor_stride: int,
                    device: torch.device) -> None:
    """
    Print the bank's size, scaled from its first episode; raise MemoryError when it cannot fit.

    A bank past the device's available memory would end in the kernel's OOM kill (or swap)
    after many minutes of building; this stops at the first episode, naming the remedies.
    """
    estimate = bank_nbytes(first) / max(first_steps, 1) * total_steps
    available = device_memory_bytes(device.type) + bank_nbytes(first)
    print(f'stage 3: context bank of about {estimate / GIB:.1f} GiB ({total_steps} steps, '
          f'anchors every {anchor_stride}), {available / GIB:.1f} GiB available')
    if estimate > USABLE * available:
        raise MemoryError(
            f"the executor stage's context bank needs about {estimate / GIB:.1f} GiB "
            f'({total_steps} control steps, an anchor every {anchor_stride}) and '
            f'{available / GIB:.1f} GiB is available ({USABLE:.0%} usable): raise '
            '--executor-anchor-stride or give --executor-data fewer demonstrations')


@dataclass(frozen=True)
class EarlyDraws:
    """
    Oversampling of the approach: a `fraction` of the draws take an anchor below `steps`.

    At and just after the reset every seed starts from the same pose, so only the cameras
    tell where to reach; those chunks decide the grasp but are a small share of the steps.
    """

    fraction: float = 0.0
    steps: int = 64


def sample_batch(banks: Sequence[EpisodeBank], config, batch: int,
                 rng: np.random.Generator,
                 early: EarlyDraws = EarlyDraws(),
                 rows: slice = slice(None)) -> Dict[str, torch.Tensor]:
    """
    Draw B chunks: episode, anchor s, offset o ~ U{0..O} and chunk n ~ U{0..Nc-1} each.

    With `early`, that fraction of the anchors is drawn among those below `early.steps`.
    `rows`: build only these of the B drawn chunks (a rank's share; every rank draws all B,
    so the draws do not depend on how many ranks there are).

    Returns the batch keys of `losses.chunk_losses` with Nc = 1, plus 'keys' and 'values'
    (L, B, H, S, hd), 'chunk_latents' (B, 1, C, h, w) and 'task_id' (B,), B the rows kept.
    """
    chunk, num_chunks = config.executor.chunk_len, config.executor.num_chunks
    picks = rng.integers(0, len(banks), size=batch)
    out: Dict[str, list] = {name: [] for name in (
        'keys', 'values', 'chunk_latents', CHUNK_PROPRIO, ACTIONS, ACTION_MASK,
        OBJECT_POSITION, OBJECT_MASK, 'task_id')}
    kept = set(range(batch)[rows])
    for i, e in enumerate(picks):
        bank = banks[e]
        length = len(bank.actions)
        span = len(bank.anchors)
        if early.fraction > 0 and rng.random() < early.fraction:
            span = max(int(np.searchsorted(bank.anchors, early.steps)), 1)
        a = int(rng.integers(0, span))
        start = int(bank.anchors[a])
        first = (start + sample_offset(rng, config.objective.max_offset)
                 + chunk * int(rng.integers(0, num_chunks)))
        if i not in kept:
            continue
        targets = first + np.arange(chunk)
        at = min(first, length - 1)
        out['keys'].append(bank.keys[a])
        out['values'].append(bank.values[a])
        out['chunk_latents'].append(bank.latents[at][None])
        out[CHUNK_PROPRIO].append(bank.joints[at][None])
        out[ACTIONS].append(bank.actions[np.minimum(targets, length - 1)][None])
        out[ACTION_MASK].append(torch.as_tensor(targets < length)[None])
        has_objects = bank.objects is not None
        out[OBJECT_POSITION].append(bank.objects[at][None] if has_objects
                                    else torch.full((1, config.objective.position_dim),
                                                    float('nan'), device=bank.joints.device))
        out[OBJECT_MASK].append(torch.tensor([has_objects]))
        out['task_id'].append(bank.task_id)
    device = banks[0].joints.device
    batch_out = {name: torch.stack(values).to(device) for name, values in out.items()
                 if name not in ('keys', 'values', 'task_id')}
    batch_out['keys'] = torch.stack(out['keys'], dim=1).float()  # (L, B, H, S, hd)
    batch_out['values'] = torch.stack(out['values'], dim=1).float()
    batch_out['chunk_latents'] = batch_out['chunk_latents'].float()
    batch_out['task_id'] = torch.as_tensor(out['task_id'], device=device)
    return batch_out


def executor_parameters(model: AhaWamModel) -> List[torch.nn.Parameter]:
    """Return what stage 3 trains: the executor, OVCR and the task tokens (not the planner)."""
    return [p for module in (model.executor, model.ovcr, model.task_encoder)
            for p in module.parameters() if p.requires_grad]


def executor_step(model: AhaWamModel, banks: Sequence[EpisodeBank],
                  optimizer: torch.optim.Optimizer, params: List[torch.nn.Parameter],
                  batch: int, rng: np.random.Generator, generator: torch.Generator,
                  early: EarlyDraws = EarlyDraws(),
                  info: Optional[DistInfo] = None,
                  losses: Callable[..., Tuple[torch.Tensor, torch.Tensor]] = chunk_losses
                  ) -> Dict[str, float]:
    """
    One optimiser step of stage 3 on a drawn global batch; return its losses and grad norm.

    With `info` of several ranks, this rank trains its rows of the batch and the gradients
    are combined into the global batch's (`executor_parallel`). `losses` computes them
    (`chunk_losses` or the stage's compiled `StageLosses`).
    """
    info = info or single_process(model.action_mean.device)
    rows = rank_rows(batch, info)
    data = sample_batch(banks, model.config, batch, rng, early, rows)
    tasks = model.task_encoder(data['task_id'])
    action_loss, object_loss = losses(model, (data['keys'], data['values']),
                                      data['chunk_latents'], data, tasks, generator,
                                      draw_rows=(rows, batch))
    action_share, object_share = mask_shares(data, info)  # 1, 1 in a single process
    objective = model.config.objective
    action_part = action_loss * action_share
    object_part = object_loss * object_share
    loss = (objective.action_loss_weight * action_part
            + objective.position_loss_weight * object_part)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    sum_gradients(params, info)
    grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    logs = sum_logs({'loss': float(loss.detach()), 'action_loss': float(action_part.detach()),
                     'object_loss': float(object_part.detach())}, info)
    return {**logs, 'grad_norm': float(grad_norm)}


def train_executor(model: AhaWamModel, episodes: Sequence[Episode], task_ids: Sequence[int],
                   out: Path, steps: int, batch: int, lr: float, seed: int,
                   anchor_stride: int = 4, log_every: int = 50, checkpoint_every: int = 1000,
                   extra_configs: Optional[Dict[str, Any]] = None,
                   log_file: Optional[Path] = None,
                   early: EarlyDraws = EarlyDraws(),
                   train_config: Optional[Dict[str, Any]] = None,
                   state: Optional[Dict[str, Any]] = None,
                   info: Optional[DistInfo] = None) -> Dict[str, float]:
    """
    Run stage 3 on `model` in place; save checkpoints under `out`; return the last losses.

    Checkpoints go to `<out>/checkpoints/executor_step_NNNNNNN` every `checkpoint_every`
    steps, each a training checkpoint (`train/state.py`: optimiser, scheduler and the stage's
    draw states, with `train_config`) marked as the run's latest; log rows (stage 'executor',
    with samples_per_s counting chunks) are appended to `log_file`. `state`, the trainer state
    of such a checkpoint, continues the stage from its step (`model` holding its weights)
    with the uninterrupted run's draws, optimiser and schedule; the bank is rebuilt with the
    task tokens of that step (they train here), so the weights agree closely, not bit for bit.
    With `info` of several ranks (torchrun) the stage runs data-parallel
    (`executor_parallel`): the same global batch, draws and checkpoints, any world size;
    rank 0 prints, logs and writes.
    """
    info = info or single_process(model.action_mean.device)
    started = time.perf_counter()
    total = sum(len(episode) for episode in episodes)
    banks = share_banks(lambda mine, ids: build_bank(model, mine, ids, anchor_stride, total),
                        episodes, task_ids, info)
    bank_seconds = time.perf_counter() - started
    params = executor_parameters(model)
    frozen = [p for p in trainable_parameters(model) if all(p is not q for q in params)]
    for p in frozen:
        p.requires_grad_(False)
    optimizer = build_optimizer(params, lr, weight_decay=1e-2, betas=(0.9, 0.95))
    scheduler = build_scheduler(optimizer, steps, warmup_frac=0.02)
    rng = np.random.default_rng((seed, 3))
    generator = torch.Generator().manual_seed(seed + 3)
    losses = StageLosses()
    if info.is_main:
        print(f'stage 3: {losses.describe()}', flush=True)
    first = 0
    if state is not None:
        optimizer.load_state_dict(state['optimizer'])
        scheduler.load_state_dict(state['scheduler'])
        rng.bit_generator.state = state['executor_rng']
        generator.set_state(state['executor_generator'])
        first = int(state['step'])
    sums, count, tick, logs = {}, 0, time.perf_counter(), {}
    model.train()
    try:
        for step in range(first, steps):
            step_logs = executor_step(model, banks, optimizer, params, batch, rng, generator,
                                      early, info, losses)
            scheduler.step()
            for name, value in step_logs.items():
                sums[name] = sums.get(name, 0.0) + value
            count += 1
            if (step + 1) % log_every == 0 or step + 1 == steps:
                now = time.perf_counter()
                logs = {name: value / count for name, value in sums.items()}
                row = {'stage': EXECUTOR_STAGE, 'step': step + 1, **logs, 'batch': batch,
                       'lr': optimizer.param_groups[0]['lr'],
                       'samples_per_s': count * batch / max(now - tick, 1e-9)}
                if step + 1 - first <= log_every:
                    row['bank_seconds'] = bank_seconds
                if info.is_main:
                    print(f'executor step {step + 1}/{steps}: loss {logs["loss"]:.4f} '
                          f'(action {logs["action_loss"]:.4f}, object '
                          f'{logs["object_loss"]:.4f}), {row["samples_per_s"]:.0f} chunks/s',
                          flush=True)
                if log_file is not None and info.is_main:
                    with open(log_file, 'a') as handle:
                        handle.write(json.dumps(row) + '\n')
                sums, count, tick = {}, 0, now
            if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
                if info.is_main:  # every rank holds the same weights and draw states
                    _save(out, model, step + 1, optimizer, scheduler, train_config,
                          extra_configs, rng, generator)
                barrier(info)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return {name: value for name, value in logs.items() if math.isfinite(value)}


def _save(out: Path, model: AhaWamModel, step: int, optimizer, scheduler,
          train_config: Optional[Dict[str, Any]], extra_configs, rng: np.random.Generator,
          generator: torch.Generator) -> None:
    """Write a stage 3 training checkpoint of `step`, marked as the run's latest."""
    draws = {'executor_rng': rng.bit_generator.state,
             'executor_generator': generator.get_state()}
    write_checkpoint(out, checkpoint_dir(out, EXECUTOR_STAGE, step), EXECUTOR_STAGE, step,
                     optimizer, scheduler, train_config or {},
                     lambda path: save_checkpoint(path, model, step, extra_configs), draws)
