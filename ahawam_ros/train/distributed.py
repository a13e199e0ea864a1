"""
Data-parallel plumbing over `torch.distributed`: one process per rank, launched by torchrun.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them the run
is a single process and none of this initialises anything. The backend is nccl on GPUs and
gloo on CPUs. Rank 0 writes checkpoints and logs; `barrier` keeps the others from reading
what rank 0 has not finished writing.
"""

from dataclasses import dataclass
import os
from typing import Dict

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run: rank, world size and device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Return True on rank 0, the one that writes."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Return True when more than one process trains."""
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """Map 'auto' / 'cpu' / 'cuda' to a device; the local rank picks the GPU."""
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    if name == 'cuda':
        if not torch.cuda.is_available():
            raise RuntimeError('device cuda requested but torch sees no GPU')
        return torch.device('cuda', local_rank)
    return torch.device('cpu')


def init_distributed(device_name: str = 'auto') -> DistInfo:
    """Join the process group when launched by torchrun, else describe a single process."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank, local_rank = int(os.environ.get('RANK', '0')), int(os.environ.get('LOCAL_RANK', '0'))
    device = resolve_device(device_name, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == 'cuda':
            torch.cuda.set_device(device)
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo', rank=rank,
                                world_size=world)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=device)


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.distributed:
        dist.barrier()


def mean_across_ranks(values: Dict[str, float], info: DistInfo) -> Dict[str, float]:
    """Average scalar logs over ranks (what rank 0 reports is the global batch's mean)."""
    if not info.distributed or not values:
        return values
    names = sorted(values)
    tensor = torch.tensor([values[n] for n in names], dtype=torch.float64, device=info.device)
    dist.all_reduce(tensor)
    return {n: float(v) / info.world_size for n, v in zip(names, tensor.tolist())}


def shutdown_distributed() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()
