"""
AHA-WAM-Flash: ODE distillation of the executor into a 1/2/4-step student.

A frozen teacher integrates each chunk with `teacher_steps` (16) Euler steps from noise and
records every intermediate state x_j at noise level s_j and the final clean chunk x0. The
student, initialised from the teacher, is trained per chunk from a random recorded state:
x0_hat = x_j - s_j v_student(x_j, t_j), loss = MSE(x0_hat, x0). The 16-step grid contains the
1-, 2- and 4-step grids of the shifted schedule, so at inference the student takes 1, 2 or 4
plain Euler steps. Only the executor is trained; planner, OVCR, task table and autoencoder
stay the teacher's.

Shapes: B batch, Nc chunks, K chunk length, A action dim, J = teacher_steps.
"""

import copy
from typing import Dict, Optional, Tuple

from ahawam_ros.model.action_dit import ExecutorCache
from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.flow import T_SCALE
from ahawam_ros.model.losses import encode_batch, history_memory
from ahawam_ros.model.sample_builder import (CHUNK_PROPRIO, CLIP_STEPS, HISTORY_MASK,
                                             HISTORY_STEPS, TASK_ID)
import torch

TEACHER_STEPS = 16


def make_student(teacher: AhaWamModel, num_steps: int = 1) -> AhaWamModel:
    """
    Copy the teacher into a student whose config defaults to `num_steps` Euler steps.

    Only the student's executor requires gradients.
    """
    config = copy.deepcopy(teacher.config)
    config.flow.num_inference_steps = num_steps
    config.name = f'{config.name}-flash{num_steps}'
    student = AhaWamModel(config, teacher.norm_stats).to(teacher.action_mean.device)
    student.load_state_dict(teacher.state_dict())
    student.requires_grad_(False)
    student.executor.requires_grad_(True)
    return student


@torch.no_grad()
def teacher_trajectory(teacher: AhaWamModel, cache: ExecutorCache, noise: torch.Tensor,
                       teacher_steps: int = TEACHER_STEPS) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Integrate the teacher and record its states.

    Returns
    -------
    states : torch.Tensor
        (J + 1, B, K, A): states[j] at sigmas[j]; states[J] is the clean chunk.
    sigmas : torch.Tensor
        (J + 1,) noise levels from 1 to 0.

    """
    states = []
    teacher.sample_actions(cache, teacher_steps, noise=noise, trajectory=states)
    sigmas = teacher.schedule.inference_sigmas(teacher_steps, noise.device)
    return torch.stack(states), sigmas


@torch.no_grad()
def chunk_conditions(teacher: AhaWamModel, batch: Dict[str, torch.Tensor]
                     ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Per-chunk executor conditions of a training batch, from the frozen teacher.

    Returns
    -------
    keys, values : torch.Tensor
        (L, B Nc, H, S, hd) OVCR-edited contexts (history, refresh, per-chunk edit).
    tasks : torch.Tensor
        (B Nc, Lt, Dt) task tokens.
    proprio : torch.Tensor
        (B Nc, A) normalised chunk-start proprio.

    """
    latents = encode_batch(teacher, batch)
    tasks = teacher.task_encoder(batch[TASK_ID])  # (B, Lt, Dt)
    memory = history_memory(teacher, latents['history'], batch[HISTORY_STEPS],
                            batch[HISTORY_MASK], tasks)
    tokens = teacher.config.tokens_per_frame
    keys, values = teacher.refresh(latents['clip'][:, 0], batch[CLIP_STEPS][:, 0], tasks,
                                   memory, batch[HISTORY_MASK].repeat_interleave(tokens, dim=1))
    chunks = latents['chunk'].shape[1]
    keys, values = teacher.edit_context(keys.repeat_interleave(chunks, dim=1),
                                        values.repeat_interleave(chunks, dim=1),
                                        latents['chunk'].flatten(0, 1))
    proprio = teacher.normalize_proprio(batch[CHUNK_PROPRIO]).flatten(0, 1)
    return keys, values, tasks.repeat_interleave(chunks, dim=0), proprio


def flash_loss(student: AhaWamModel, teacher: AhaWamModel, batch: Dict[str, torch.Tensor],
               teacher_steps: int = TEACHER_STEPS,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """
    ODE-distillation loss of one batch (sample_builder keys; actions are not used).

    Returns
    -------
    torch.Tensor
        Scalar MSE between the student's x0 estimate from a random recorded teacher state
        and the teacher's clean chunk.

    """
    keys, values, tasks, proprio = chunk_conditions(teacher, batch)
    config = teacher.config.executor
    shape = (keys.shape[1], config.chunk_len, config.action_dim)  # (B Nc, K, A)
    noise = torch.randn(shape, generator=generator).to(keys.device)
    teacher_cache = teacher.prepare_executor(keys, values, tasks, proprio)
    states, sigmas = teacher_trajectory(teacher, teacher_cache, noise, teacher_steps)
    index = torch.randint(0, teacher_steps, (shape[0],), generator=generator).to(keys.device)
    x_t = states[index, torch.arange(shape[0], device=keys.device)]  # (B Nc, K, A)
    sigma = sigmas[index]  # (B Nc,)
    cache = student.prepare_executor(keys, values, tasks, proprio)
    velocity = student.executor(x_t, T_SCALE * sigma, cache)
    estimate = x_t - sigma[:, None, None] * velocity  # x0 = x_s - s v
    return (estimate - states[-1]).pow(2).mean()


def flash_distill_step(student: AhaWamModel, teacher: AhaWamModel,
                       optimizer: torch.optim.Optimizer, batch: Dict[str, torch.Tensor],
                       teacher_steps: int = TEACHER_STEPS, grad_clip: float = 1.0,
                       generator: Optional[torch.Generator] = None) -> float:
    """One optimiser step of `flash_loss` on the student's executor; returns the loss."""
    student.train()
    teacher.eval()
    loss = flash_loss(student, teacher, batch, teacher_steps, generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(student.executor.parameters(), grad_clip)
    optimizer.step()
    return float(loss.detach())
