"""
Stage 3 on several ranks (torchrun): one global batch, split by rows, as one process trains it.

- The bank is built once: each rank runs the frozen planner over every W-th episode, and the
  shares are gathered so that every rank holds the whole bank (`share_banks`).
- Every rank draws the whole global batch (episodes, anchors, offsets, chunks, and the flow
  noise, with the same seeds) and builds only its rows (`rank_rows`), so the draws, and
  with them a resumed run, do not depend on the world size.
- A loss is a masked mean over the global batch: each rank weights its own masked mean by
  its share of the batch's unmasked entries (`mask_shares`) and the gradients are summed
  over ranks (`sum_gradients`): the global batch's gradient, up to summation order.

W ranks; B global batch.
"""

from typing import List, Sequence, Tuple

from ahawam_ros.data.episode import Episode
from ahawam_ros.model.losses import position_mask
from ahawam_ros.model.sample_builder import ACTION_MASK, OBJECT_MASK, OBJECT_POSITION
from ahawam_ros.train.distributed import DistInfo
import torch
import torch.distributed as dist


def rank_rows(batch: int, info: DistInfo) -> slice:
    """Return this rank's rows of a global batch of `batch` (divisible by the world size)."""
    if batch % info.world_size:
        raise ValueError(f'executor batch {batch} is not divisible by the {info.world_size} '
                         'ranks')
    share = batch // info.world_size
    return slice(info.rank * share, (info.rank + 1) * share)


def share_banks(build, episodes: Sequence[Episode], task_ids: Sequence[int],
                info: DistInfo) -> List:
    """
    Return every episode's bank, each built on one rank: `build(episodes, task_ids)`.

    Rank r builds episodes r, r + W, ...; the banks travel through the CPU (pickled by
    `all_gather_object`) and are moved to this rank's device.
    """
    mine = list(range(info.rank, len(episodes), info.world_size))
    banks = build([episodes[i] for i in mine], [task_ids[i] for i in mine])
    if not info.distributed:
        return banks
    shares: List = [None] * info.world_size
    dist.all_gather_object(shares, [(i, _to(bank, 'cpu')) for i, bank in zip(mine, banks)])
    ordered = sorted((pair for share in shares for pair in share), key=lambda pair: pair[0])
    return [_to(bank, info.device) for _, bank in ordered]


def _to(bank, device):
    """Return `bank` with its tensors on `device`."""
    fields = {name: value.to(device) if torch.is_tensor(value) else value
              for name, value in vars(bank).items()}
    return type(bank)(**fields)


def mask_shares(data, info: DistInfo) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return this rank's share of the global batch's unmasked actions and positions."""
    positions = position_mask(data[OBJECT_POSITION], data[OBJECT_MASK])
    local = torch.stack([data[ACTION_MASK].sum(), positions.sum()]).double()
    total = local.clone()
    if info.distributed:
        dist.all_reduce(total)
    return tuple((local / total.clamp_min(1.0)).float())


def sum_gradients(params: Sequence[torch.nn.Parameter], info: DistInfo) -> None:
    """
    Sum the gradients of `params` over ranks in place (one flat all-reduce).

    A parameter without a gradient keeps none (as the optimiser skips it in one process);
    every rank runs the same graph, so the same parameters have one.
    """
    if not info.distributed:
        return
    params = [p for p in params if p.grad is not None]
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        p.grad = flat[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()


def sum_logs(values, info: DistInfo):
    """Sum scalar logs over ranks (each already weighted by its share)."""
    if not info.distributed:
        return values
    names = sorted(values)
    tensor = torch.tensor([values[n] for n in names], dtype=torch.float64, device=info.device)
    dist.all_reduce(tensor)
    return dict(zip(names, tensor.tolist()))


def single_process(device: torch.device) -> DistInfo:
    """Return the DistInfo of a run without torchrun, on `device`."""
    return DistInfo(rank=0, world_size=1, local_rank=0, device=device)
