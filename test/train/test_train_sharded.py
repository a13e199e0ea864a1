"""The joint stage sharded (FSDP2) over two gloo ranks: checkpoints resume on two ranks and one."""

import os
from pathlib import Path

from ahawam_ros.data.dataset import DataConfig
from ahawam_ros.model.checkpoint import load_checkpoint
from ahawam_ros.train.config import TrainConfig
from ahawam_ros.train.distributed import init_distributed, shutdown_distributed
from ahawam_ros.train.optim import build_optimizer
from ahawam_ros.train.sharding import has_sharded_optimizer, load_optimizer
from ahawam_ros.train.state import checkpoint_dir, load_trainer_state, POLICY_STAGE
from ahawam_ros.train.trainer import PolicyObjective, Trainer
from test_train_distributed import _episodes, _free_port
import torch
import torch.multiprocessing as mp


def _train(out: Path, steps: int, resume=None, strategy: str = 'fsdp') -> Path:
    config = TrainConfig(data=DataConfig(bags=str(out / 'unused')), preset='tiny', out=str(out),
                         steps=steps, ae_steps=2, batch_size=4, checkpoint_every=2,
                         log_every=1, device='cpu', strategy=strategy, seed=0,
                         activation_checkpointing=True)
    return Trainer(config, episodes=_episodes()).run(resume)


def _worker(rank: int, port: int, root: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE='2', LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    init_distributed('cpu')
    try:
        root = Path(root)
        _train(root / 'full', 4)
        _train(root / 'resumed', 4, resume=checkpoint_dir(root / 'full', POLICY_STAGE, 2))
    finally:
        shutdown_distributed()


def test_a_sharded_run_checkpoints_and_resumes_on_two_ranks_and_on_one(tmp_path):
    # spawn, not fork: FSDP's sharding crashed (SIGSEGV) in children forked from a process that
    # had run the rest of the suite (its threads); a fresh interpreter has none
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method='spawn')
    middle = checkpoint_dir(tmp_path / 'full', POLICY_STAGE, 2)
    assert has_sharded_optimizer(middle) and load_trainer_state(middle)['optimizer'] is None
    full = load_checkpoint(tmp_path / 'full' / POLICY_STAGE)[0].state_dict()
    resumed = load_checkpoint(tmp_path / 'resumed' / POLICY_STAGE)[0].state_dict()
    start = load_checkpoint(middle)[0].state_dict()
    assert any(not torch.equal(full[n], start[n]) for n in full)  # steps 3-4 trained
    for name, value in full.items():  # resumed on two ranks: the uninterrupted run
        torch.testing.assert_close(resumed[name], value, rtol=1e-5, atol=1e-6, msg=name)
    # one process: the sharded optimiser state loads whole (AdamW after 2 steps) and trains on
    model = load_checkpoint(middle)[0]
    objective = PolicyObjective(model)
    optimizer = build_optimizer([p for p in objective.parameters() if p.requires_grad],
                                1e-3, 1e-2, (0.9, 0.95))
    load_optimizer(middle, objective, optimizer)
    states = list(optimizer.state.values())
    assert states and all(float(s['step']) == 2.0 for s in states)
    assert all(s['exp_avg_sq'].shape == p.shape for p, s in optimizer.state.items())
    assert any(float(s['exp_avg_sq'].abs().sum()) > 0 for s in states)
    final = _train(tmp_path / 'one', 4, resume=middle, strategy='ddp')
    trained = load_checkpoint(final)[0].state_dict()
    assert all(torch.isfinite(v).all() for v in trained.values() if v.is_floating_point())
    assert any(not torch.equal(trained[n], start[n]) for n in trained)
