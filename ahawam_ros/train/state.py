"""
Training checkpoints: the model's checkpoint format plus what resuming needs.

A training checkpoint directory is a model checkpoint (`ahawam_ros.model.checkpoint`: weights
in safetensors, configs and normalisation statistics as JSON, the step) with one more file,
`trainer_state.pt`: the stage, the step, the optimiser and scheduler states, the RNG states
and the TrainConfig. The output directory's `latest` file names the newest checkpoint.
`trainer_state.pt` is written before the model files, whose `state.json` comes last, so a
directory with `state.json` is complete.
"""

from pathlib import Path
import random
from typing import Any, Callable, Dict, Optional, Union

import numpy as np
import torch


TRAINER_STATE_FILE = 'trainer_state.pt'
LATEST_FILE = 'latest'
CHECKPOINT_DIR = 'checkpoints'
AE_STAGE, POLICY_STAGE, EXECUTOR_STAGE = 'autoencoder', 'policy', 'executor'
PathLike = Union[str, Path]


def checkpoint_dir(out: PathLike, stage: str, step: int) -> Path:
    """Return the directory of the checkpoint of `stage` after `step` optimiser steps."""
    prefix = {AE_STAGE: 'ae', POLICY_STAGE: 'policy', EXECUTOR_STAGE: 'executor'}[stage]
    return Path(out) / CHECKPOINT_DIR / f'{prefix}_step_{step:07d}'


def rng_state() -> Dict[str, Any]:
    """Return the global RNG states (torch, CUDA, numpy, random) as tensors and lists."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {'torch': torch.get_rng_state(),
             'numpy': [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
             'python': [version, list(internal), gauss_next]}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore states saved by `rng_state`."""
    torch.set_rng_state(state['torch'])
    kind, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state['python']
    random.setstate((version, tuple(internal), gauss_next))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def save_trainer_state(directory: PathLike, stage: str, step: int,
                       optimizer: Optional[torch.optim.Optimizer], scheduler: Any,
                       train_config: Dict[str, Any],
                       extra: Optional[Dict[str, Any]] = None) -> None:
    """Write `trainer_state.pt` into `directory` (created); `extra`: a stage's own states."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # a sharded run's optimiser state is a distributed checkpoint beside it (train/sharding.py)
    state = {'stage': stage, 'step': int(step),
             'optimizer': None if optimizer is None else optimizer.state_dict(),
             'scheduler': scheduler.state_dict(), 'rng': rng_state(),
             'train_config': train_config, **(extra or {})}
    tmp = directory / (TRAINER_STATE_FILE + '.tmp')
    torch.save(state, tmp)
    tmp.replace(directory / TRAINER_STATE_FILE)


def write_checkpoint(out: PathLike, directory: PathLike, stage: str, step: int,
                     optimizer: Optional[torch.optim.Optimizer], scheduler: Any,
                     train_config: Dict[str, Any], save_model: Callable[[Path], None],
                     extra: Optional[Dict[str, Any]] = None) -> None:
    """
    Write a complete training checkpoint of the run in `out` and mark it the latest.

    The trainer state first, then the model (`save_model(directory)`, whose `state.json`
    comes last), then the `latest` mark: an interrupted write is never resumed from.
    """
    save_trainer_state(directory, stage, step, optimizer, scheduler, train_config, extra)
    save_model(Path(directory))
    mark_latest(out, directory)


def mark_latest(out: PathLike, directory: PathLike) -> None:
    """Record `directory` as the newest complete checkpoint of the run in `out`."""
    tmp = Path(out) / (LATEST_FILE + '.tmp')
    tmp.write_text(str(Path(directory).resolve()) + '\n')
    tmp.replace(Path(out) / LATEST_FILE)


def resolve_resume(path: PathLike) -> Path:
    """
    Return the checkpoint directory to resume from.

    `path` is a checkpoint directory or a run's output directory (its `latest` checkpoint).
    """
    path = Path(path)
    if (path / TRAINER_STATE_FILE).is_file():
        return path
    if (path / LATEST_FILE).is_file():
        return Path((path / LATEST_FILE).read_text().strip())
    raise FileNotFoundError(f'nothing to resume in {path}: neither {TRAINER_STATE_FILE} nor a '
                            f'{LATEST_FILE} file')


def load_trainer_state(directory: PathLike) -> Dict[str, Any]:
    """Read `trainer_state.pt` of a checkpoint directory (tensors on the CPU)."""
    path = Path(directory) / TRAINER_STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f'{path} missing: not a training checkpoint')
    state = torch.load(path, map_location='cpu', weights_only=True)
    if state.get('stage') not in (AE_STAGE, POLICY_STAGE, EXECUTOR_STAGE):
        raise ValueError(f'{path}: unknown stage {state.get("stage")!r}')
    return state
