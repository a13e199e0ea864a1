"""
Sharded training of the joint stage (FSDP2), activation checkpointing, sharded checkpoints.

`--strategy fsdp` shards every DiT block of the planner and the executor, then the rest of the
model, over the ranks (`torch.distributed.fsdp.fully_shard`, full shard): each rank keeps
1 / W of the weights, gradients and AdamW state and gathers one block at a time (the memory
plan: `memory_plan.py`). With bf16 on GPUs the blocks compute in bf16 and reduce gradients in
fp32. `--activation-checkpointing` recomputes each DiT block's activations in backward
(`torch.utils.checkpoint`, non-reentrant), with either strategy.

Checkpoints of a sharded run: the model is gathered to full tensors and rank 0 writes the
package's safetensors checkpoint as always; the optimiser state is written by every rank as a
distributed checkpoint (`torch.distributed.checkpoint`, directory `optimizer_dcp`), which
loads into any world size, sharded or not.
"""

import functools
from pathlib import Path
from typing import Dict, List

from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.train.distributed import DistInfo
import torch
from torch import nn
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (get_model_state_dict,
                                                     get_optimizer_state_dict,
                                                     set_optimizer_state_dict,
                                                     StateDictOptions)
from torch.distributed.fsdp import (fully_shard, MixedPrecisionPolicy,
                                    register_fsdp_forward_method)
import torch.utils.checkpoint

OPTIMIZER_DIR = 'optimizer_dcp'
EXTERNAL_METHODS = ('project_kv', 'fold')  # layer methods the model calls besides forward


def dit_blocks(model: AhaWamModel) -> List[nn.Module]:
    """Return the planner's and the executor's blocks (the units sharded and recomputed)."""
    return [*model.planner.blocks, *model.executor.blocks]


def _recomputed(forward, *args, **kwargs):
    return torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False, **kwargs)


def enable_activation_checkpointing(model: AhaWamModel) -> None:
    """Recompute each DiT block's activations in backward (the weights' names unchanged)."""
    for block in dit_blocks(model):
        block.forward = functools.partial(_recomputed, block.forward)


def shard(objective: nn.Module, model: AhaWamModel, info: DistInfo, precision: str) -> nn.Module:
    """
    Shard `objective` (holding `model`) over the ranks; return it.

    The units are each DiT block's layers (its attention projections, cross-attention, MLP):
    the model reads a block's modulation table and projects the task tokens through its
    cross-attention outside the block's forward, so the block itself cannot be one unit; what
    is left (those tables, embeddings, heads, OVCR, the frozen autoencoder) is the root's.
    """
    policy = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
              if precision == 'bf16' and info.device.type == 'cuda' else MixedPrecisionPolicy())
    for block in dit_blocks(model):
        for layer in block.children():
            if not any(p.requires_grad for p in layer.parameters()):
                continue
            external = [m for m in EXTERNAL_METHODS if hasattr(layer, m)]
            # one external method calls another: kept gathered through forward (small layers)
            fully_shard(layer, mp_policy=policy, reshard_after_forward=not external)
            for method in external:
                register_fsdp_forward_method(layer, method)
    fully_shard(objective, mp_policy=policy)
    return objective


def full_model_state(model: nn.Module) -> Dict[str, torch.Tensor]:
    """Return the full (gathered, CPU) state dict of a sharded model; every rank must call."""
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True,
                                                                cpu_offload=True))


def save_optimizer(directory: Path, module: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Write the optimiser state as a distributed checkpoint; every rank must call."""
    dcp.save({'optimizer': get_optimizer_state_dict(module, optimizer)},
             checkpoint_id=str(Path(directory) / OPTIMIZER_DIR))


def load_optimizer(directory: Path, module: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Load a distributed optimiser checkpoint into `optimizer`, resharded to this run."""
    state = {'optimizer': get_optimizer_state_dict(module, optimizer)}
    dcp.load(state, checkpoint_id=str(Path(directory) / OPTIMIZER_DIR))
    set_optimizer_state_dict(module, optimizer, state['optimizer'])


def has_sharded_optimizer(directory: Path) -> bool:
    """Return whether a checkpoint keeps its optimiser state as a distributed checkpoint."""
    return (Path(directory) / OPTIMIZER_DIR).is_dir()
