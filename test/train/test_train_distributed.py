"""Data parallelism: two gloo ranks on half batches give the single-process full-batch gradient."""

import os
from pathlib import Path
import socket
from types import SimpleNamespace

from ahawam_ros.data.dataset import DrawSampler, epoch_batches, PolicyDataset
from ahawam_ros.data.episode import from_sim_episode
from ahawam_ros.data.normalization import compute_norm_stats
from ahawam_ros.model import losses
from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.checkpoint import load_checkpoint
from ahawam_ros.model.presets import tiny
from ahawam_ros.model.sample_builder import collate_samples
from ahawam_ros.robot import JOINT_NAMES
from ahawam_ros.train.distributed import DistInfo, init_distributed, shutdown_distributed
from ahawam_ros.train.executor_stage import train_executor
from ahawam_ros.train.optim import step_generator
from ahawam_ros.train.sharding import shard
from ahawam_ros.train.state import checkpoint_dir, EXECUTOR_STAGE, load_trainer_state
from ahawam_ros.train.trainer import backward, PolicyObjective, wrap_data_parallel
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

BATCH, STEPS = 8, 80
LAST_FULL_START = 33  # s + O + Nc K <= STEPS: no sample has padded actions or clip frames


class _TorchWithoutNoise:
    """`torch` as the loss module sees it, except that `randn` gives zeros."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def randn(*size, generator=None, **kwargs):
        return torch.zeros(*size, **kwargs)


def _fix_randomness(model: AhaWamModel) -> None:
    """
    Make the loss a function of the samples alone.

    Each rank draws timesteps and noise for its own half batch, which cannot equal one draw
    for the full batch; with a fixed noise level and zero noise, the full-batch gradient is
    exactly the mean of the half-batch ones, which is what data parallelism must produce.
    """
    model.schedule.sample = lambda shape, device=None, generator=None: (
        torch.full(shape, 0.4, device=device), torch.ones(shape, device=device))
    losses.torch = _TorchWithoutNoise()


def _episodes():
    episodes = []
    for seed in range(2):
        rng = np.random.default_rng(seed)
        qpos = np.cumsum(rng.normal(0, 0.05, (STEPS, len(JOINT_NAMES))), axis=0)
        images = {c: rng.integers(0, 256, (STEPS, 16, 16, 3), dtype=np.uint8)
                  for c in ('top', 'left_wrist')}
        episodes.append(from_sim_episode(SimpleNamespace(
            task='transfer_cube', images=images, qpos=qpos, actions=qpos + 0.1,
            time=np.arange(STEPS) * 0.02, joint_names=JOINT_NAMES)))
    return episodes


def gradients(info: DistInfo, strategy: str = 'ddp'):
    """Return this rank's parameter gradients after one batch, and the draws it used."""
    config, episodes = tiny(), _episodes()
    dataset = PolicyDataset(episodes, config, seed=0)
    dataset.windows = dataset.windows[dataset.windows[:, 1] <= LAST_FULL_START]
    torch.manual_seed(0)
    model = AhaWamModel(config, compute_norm_stats(episodes))
    _fix_randomness(model)
    sampler = DrawSampler(dataset, info.world_size, info.rank, seed=0)
    draws = epoch_batches(sampler, 0, BATCH // info.world_size)[1]
    batch = collate_samples([dataset[d] for d in draws])
    if strategy == 'fsdp':
        objective = shard(PolicyObjective(model), model, info, 'fp32')
    else:
        objective = wrap_data_parallel(PolicyObjective(model), info)
    backward(objective, batch, step_generator(0, 1, 0, info.rank))
    grads = {n: (p.grad.full_tensor() if hasattr(p.grad, 'full_tensor') else p.grad).clone()
             for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}
    return grads, draws


def _worker(rank: int, port: int, out_dir: str, strategy: str = 'ddp') -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE='2', LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = init_distributed('cpu')
    try:
        grads, draws = gradients(info, strategy)
        torch.save({'grads': grads, 'draws': draws}, Path(out_dir) / f'rank{rank}.pt')
    finally:
        shutdown_distributed()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize('strategy', ['ddp', 'fsdp'])
def test_two_ranks_with_half_batches_match_the_full_batch_gradient(tmp_path, monkeypatch,
                                                                   strategy):
    # fork: the children reuse this process's imports (CPU only, no CUDA state to inherit);
    # FSDP's sharding in a forked child can crash after the suite's threads: spawn it
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path), strategy), nprocs=2,
                       join=True, start_method='spawn' if strategy == 'fsdp' else 'fork')
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in range(2)]
    monkeypatch.setattr(losses, 'torch', torch)  # restored after _fix_randomness patches it
    expected, draws = gradients(DistInfo(rank=0, world_size=1, local_rank=0,
                                         device=torch.device('cpu')))
    assert sorted(ranks[0]['draws'] + ranks[1]['draws']) == sorted(draws)
    assert not set(ranks[0]['draws']) & set(ranks[1]['draws'])
    assert sum(float(g.abs().sum()) for g in expected.values()) > 0
    for rank in ranks:
        assert rank['grads'].keys() == expected.keys()
        for name, grad in expected.items():
            torch.testing.assert_close(rank['grads'][name], grad, rtol=1e-4, atol=1e-6,
                                       msg=f'gradient of {name}')


def _executor_stage(info: DistInfo, out: Path, steps: int, state=None, model=None):
    """Run stage 3 of a seeded tiny model on the test episodes; return the model."""
    episodes = _episodes()
    if model is None:
        torch.manual_seed(0)
        model = AhaWamModel(tiny(), compute_norm_stats(episodes))
    train_executor(model, episodes, [0] * len(episodes), out, steps, batch=8, lr=3e-3, seed=0,
                   anchor_stride=8, log_every=4, checkpoint_every=4, state=state, info=info)
    return model


def _executor_stage_worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE='2', LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = init_distributed('cpu')
    try:
        model = _executor_stage(info, Path(out_dir) / 'run', steps=6)
        torch.save(model.state_dict(), Path(out_dir) / f'rank{rank}.pt')
    finally:
        shutdown_distributed()


def test_the_executor_stage_on_two_ranks_trains_as_one_process_and_resumes_on_one(tmp_path):
    mp.start_processes(_executor_stage_worker, args=(_free_port(), str(tmp_path)), nprocs=2,
                       join=True, start_method='fork')
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in range(2)]
    single = _executor_stage(DistInfo(0, 1, 0, torch.device('cpu')), tmp_path / 'one',
                             steps=6).state_dict()
    torch.manual_seed(0)
    start = AhaWamModel(tiny(), compute_norm_stats(_episodes())).state_dict()
    moved = [n for n in single if not torch.equal(single[n], start[n])]
    assert any(n.startswith('executor.') for n in moved)  # stage 3 trained something
    # The same weights on both ranks, and as one process got them, up to summation order:
    # 1e-4 absolute, which the key biases need (softmax ignores them, so their gradient is
    # rounding noise, which AdamW turns into lr-sized steps of either sign).
    for name, value in single.items():
        torch.testing.assert_close(ranks[0][name], ranks[1][name], rtol=0, atol=0)
        torch.testing.assert_close(ranks[0][name], value, rtol=1e-4, atol=1e-4,
                                   msg=f'{name} after 6 steps on 2 ranks')
    # the 2-rank run's step 4 checkpoint, resumed in one process, finishes as one process does
    state = load_trainer_state(checkpoint_dir(tmp_path / 'run', EXECUTOR_STAGE, 4))
    model, _ = load_checkpoint(checkpoint_dir(tmp_path / 'run', EXECUTOR_STAGE, 4))
    resumed = _executor_stage(DistInfo(0, 1, 0, torch.device('cpu')), tmp_path / 'resumed',
                              steps=6, state=state, model=model).state_dict()
    for name, value in single.items():
        torch.testing.assert_close(resumed[name], value, rtol=1e-3, atol=1e-4,
                                   msg=f'{name} resumed on 1 rank')
