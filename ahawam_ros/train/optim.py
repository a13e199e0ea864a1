"""
Optimiser, learning-rate schedule and per-step randomness of the trainer.

AdamW with decoupled weight decay on matrices only (biases, norms, gates and embeddings of
one dimension are not decayed), a linear warmup over `warmup_frac` of the steps, then a
cosine decay to zero.
"""

import math
from typing import Callable, Iterable, Tuple

import numpy as np
import torch
from torch import nn


def build_optimizer(params: Iterable[nn.Parameter], lr: float, weight_decay: float,
                    betas: Tuple[float, float]) -> torch.optim.AdamW:
    """Return AdamW over `params`, decaying only parameters of two or more dimensions."""
    params = [p for p in params if p.requires_grad]
    groups = [{'params': [p for p in params if p.dim() >= 2], 'weight_decay': weight_decay},
              {'params': [p for p in params if p.dim() < 2], 'weight_decay': 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))


def warmup_cosine(total_steps: int, warmup_frac: float) -> Callable[[int], float]:
    """
    Return the learning-rate multiplier of step i: linear warmup, then cosine to zero.

    The warmup lasts max(1, round(warmup_frac * total_steps)) steps and reaches 1 at its last
    step.
    """
    warmup = max(1, round(warmup_frac * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int,
                    warmup_frac: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Return the warmup + cosine scheduler, stepped once per optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, warmup_frac))


def step_generator(seed: int, stage: int, step: int, rank: int) -> torch.Generator:
    """
    Return the CPU generator of one optimiser step on one rank.

    Timesteps and noise of step `step` depend only on (seed, stage, step, rank), never on how
    many steps ran before in this process, so a resumed run draws what an uninterrupted run
    would have drawn.
    """
    state = np.random.SeedSequence([seed, stage, step, rank]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2 ** 63 - 1))
