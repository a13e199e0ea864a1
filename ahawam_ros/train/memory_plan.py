"""
A memory plan before a run: what each training strategy needs per rank, and what fits.

Per-rank bytes of weights, gradients, optimiser state and activations of the joint stage.
Strategies: 'ddp' keeps a full replica on every rank (fp32 weights, fp32 gradients, two
fp32 AdamW moments: 16 bytes a trainable parameter); 'fsdp' shards those three over the
ranks (FSDP2 full shard) and gathers one block's weights (and, in backward, its gradients) at
a time, two blocks in flight with prefetch. Each with and without activation checkpointing
per DiT block.

Activations are an estimate per sample and layer, after Korthikanti et al. (2022, "Reducing
activation recomputation in large transformer models") without dropout and with a
memory-efficient attention kernel (no s^2 term): s h (7.5 + 2 r) elements for a block of s
tokens, width h and MLP ratio r; with checkpointing, s h per layer (the block input) plus one
block's full set while it is recomputed. The planner sees S tokens a latent frame over its
memory, the current and the future frames; the executor K tokens per chunk over its chunks.
The frame autoencoder is frozen in the joint stage (weights only). A plan fits when its total
is at most `USABLE` of the device (the rest: CUDA context, allocator fragmentation).
"""

from dataclasses import dataclass
from typing import Dict, List

from ahawam_ros.model.aha_wam import AhaWamModel, parameter_counts
from ahawam_ros.model.config import ModelConfig
import torch

GIB = 2.0 ** 30
USABLE = 0.9
STRATEGIES = ('ddp', 'fsdp')
ELEMENT_BYTES = {'fp32': 4, 'bf16': 2}


def count_parameters(config: ModelConfig) -> Dict[str, int]:
    """Return the parameter counts per module of `config`, built on the meta device."""
    with torch.device('meta'):
        return parameter_counts(AhaWamModel(config))


def sequence_lengths(config: ModelConfig) -> Dict[str, int]:
    """Return the tokens per sample of the planner and the executor in the joint stage."""
    planner = config.planner
    frames = planner.memory_size + 1 + planner.num_future_frames
    return {'planner': config.tokens_per_frame * frames,
            'executor': config.executor.chunk_len * config.executor.num_chunks}


def activation_bytes(config: ModelConfig, precision: str, checkpointing: bool) -> float:
    """Return the estimated activation bytes of one sample (module docstring)."""
    element = ELEMENT_BYTES[precision]
    tokens = sequence_lengths(config)
    total, largest = 0.0, 0.0
    for name, width, ratio in (('planner', config.planner.width, config.planner.mlp_ratio),
                               ('executor', config.executor.width,
                                config.executor.mlp_ratio)):
        block = tokens[name] * width * (7.5 + 2.0 * ratio) * element  # one layer, all saved
        largest = max(largest, block)
        total += config.num_layers * (tokens[name] * width * element if checkpointing
                                      else block)
    return total + (largest if checkpointing else 0.0)


@dataclass(frozen=True)
class PlanRow:
    """Per-rank bytes of one strategy."""

    strategy: str
    checkpointing: bool
    weights: float
    gradients: float
    optimizer: float
    activations: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations

    def fits(self, device_bytes: float) -> bool:
        """Return whether the total fits `USABLE` of `device_bytes`."""
        return self.total <= USABLE * device_bytes


def plan(config: ModelConfig, counts: Dict[str, int], batch_size: int, world_size: int,
         precision: str = 'bf16') -> List[PlanRow]:
    """
    Return the rows of every strategy, with and without checkpointing.

    `counts`: `count_parameters(config)`; `batch_size`: the global batch, split over
    `world_size` ranks (at least one sample each).
    """
    if batch_size < 1 or world_size < 1:
        raise ValueError(f'batch_size and world_size must be >= 1, got {batch_size}, '
                         f'{world_size}')
    frozen = counts['autoencoder']
    trainable = counts['total'] - frozen
    local = max(1, -(-batch_size // world_size))  # samples per rank, rounded up
    block = counts['planner'] / config.num_layers  # the largest unit FSDP gathers
    rows = []
    for strategy in STRATEGIES:
        shards = world_size if strategy == 'fsdp' else 1
        gathered = 2 * block * ELEMENT_BYTES[precision] if strategy == 'fsdp' else 0.0
        for checkpointing in (False, True):
            rows.append(PlanRow(
                strategy, checkpointing,
                weights=4.0 * trainable / shards + 4.0 * frozen + gathered,
                gradients=4.0 * trainable / shards + gathered,
                optimizer=8.0 * trainable / shards,
                activations=local * activation_bytes(config, precision, checkpointing)))
    return rows


def format_plan(config: ModelConfig, counts: Dict[str, int], rows: List[PlanRow],
                batch_size: int, world_size: int, device_bytes: float,
                precision: str) -> str:
    """Return the printed table of a plan."""
    lines = [f'memory plan: preset {config.name} ({counts["total"] / 1e6:,.1f} M parameters, '
             f'{(counts["total"] - counts["autoencoder"]) / 1e6:,.1f} M trained), global batch '
             f'{batch_size} on {world_size} rank(s) of {device_bytes / GIB:.1f} GiB, '
             f'{precision} activations; per rank, GiB:',
             f'  {"strategy":<10}{"ckpt":>5}{"weights":>10}{"grads":>9}{"adam":>9}'
             f'{"activ.":>9}{"total":>9}  fits ({USABLE:.0%} usable)']
    for row in rows:
        lines.append(f'  {row.strategy:<10}{"yes" if row.checkpointing else "no":>5}'
                     f'{row.weights / GIB:>10.2f}{row.gradients / GIB:>9.2f}'
                     f'{row.optimizer / GIB:>9.2f}{row.activations / GIB:>9.2f}'
                     f'{row.total / GIB:>9.2f}  {"yes" if row.fits(device_bytes) else "no"}')
    lines.append(f'  choice: {choice_text(rows, device_bytes)}')
    return '\n'.join(lines)


def device_memory_bytes(device: str) -> float:
    """Return the memory of `device` ('cuda': the first GPU's; else available RAM)."""
    if device != 'cpu' and torch.cuda.is_available():
        return float(torch.cuda.get_device_properties(0).total_memory)
    with open('/proc/meminfo') as meminfo:
        for line in meminfo:
            if line.startswith('MemAvailable:'):
                return float(line.split()[1]) * 1024.0
    return float('inf')


def preflight(config: ModelConfig, batch_size: int, world_size: int, device: str,
              precision: str, strategy: str = 'ddp') -> None:
    """Raise MemoryError with the plan when `strategy` cannot fit this device; else pass."""
    counts = count_parameters(config)
    rows = plan(config, counts, batch_size, world_size, precision)
    memory = device_memory_bytes(device)
    if not any(row.fits(memory) for row in rows if row.strategy == strategy):
        raise MemoryError(f'the run does not fit ({strategy}):\n' + format_plan(
            config, counts, rows, batch_size, world_size, memory, precision))


def choice_text(rows: List[PlanRow], device_bytes: float) -> str:
    """Name the first row that fits (replicas before shards, no recomputation first)."""
    fitting = [row for row in rows if row.fits(device_bytes)]
    if not fitting:
        return 'none fits: more ranks, a smaller batch or a smaller preset'
    row = fitting[0]
    return row.strategy + (' with activation checkpointing' if row.checkpointing else '')
