"""Data parallelism: two gloo ranks on half batches give the single-process full-batch gradient."""

import os
from pathlib import Path
import socket
from types import SimpleNamespace

from ahawam_ros.data.dataset import DataConfig, DrawSampler, epoch_batches, PolicyDataset
from ahawam_ros.data.episode import from_sim_episode
from ahawam_ros.data.normalization import compute_norm_stats
from ahawam_ros.model import losses
from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.presets import tiny
from ahawam_ros.model.sample_builder import collate_samples
from ahawam_ros.robot import JOINT_NAMES
from ahawam_ros.train.config import TrainConfig
from ahawam_ros.train.distributed import DistInfo, init_distributed, shutdown_distributed
from ahawam_ros.train.optim import step_generator
from ahawam_ros.train.trainer import backward, PolicyObjective, Trainer, wrap_data_parallel
import numpy as np
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


def gradients(info: DistInfo):
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
    objective = wrap_data_parallel(PolicyObjective(model), info)
    backward(objective, batch, step_generator(0, 1, 0, info.rank))
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return grads, draws


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE='2', LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = init_distributed('cpu')
    try:
        grads, draws = gradients(info)
        torch.save({'grads': grads, 'draws': draws}, Path(out_dir) / f'rank{rank}.pt')
    finally:
        shutdown_distributed()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_two_ranks_with_half_batches_match_the_full_batch_gradient(tmp_path, monkeypatch):
    # fork: the children reuse this process's imports (CPU only, no CUDA state to inherit).
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method='fork')
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


def _executor_stage_worker(rank: int, port: int, out_dir: str) -> None:
    """Construct a Trainer that asks for stage 3 under two ranks; record what it raised."""
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE='2', LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    config = TrainConfig(data=DataConfig(bags=str(Path(out_dir) / 'no_bags_here')),
                         preset='tiny', out=out_dir, batch_size=2, executor_steps=10,
                         device='cpu')
    message = 'constructed'
    try:
        Trainer(config)
    except ValueError as error:  # expected before any bag is read
        message = str(error)
    except Exception as error:  # e.g. the missing bags: the refusal came too late
        message = f'{type(error).__name__}: {error}'
    finally:
        shutdown_distributed()
    (Path(out_dir) / f'rank{rank}.txt').write_text(message)


def test_the_executor_stage_is_refused_under_torchrun_before_any_data_is_read(tmp_path):
    mp.start_processes(_executor_stage_worker, args=(_free_port(), str(tmp_path)), nprocs=2,
                       join=True, start_method='fork')
    for rank in range(2):
        message = (tmp_path / f'rank{rank}.txt').read_text()
        assert message.startswith('the executor stage runs in one process'), message
