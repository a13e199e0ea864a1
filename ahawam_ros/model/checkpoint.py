"""
Checkpoints: one self-describing directory per checkpoint.

    <dir>/model.safetensors   weights (state dict)
    <dir>/config.json         {'model': ModelConfig dict, ...any extra configs (trainer, data)}
    <dir>/norm_stats.json     NormStats (action/proprio mean and std)
    <dir>/state.json          {'kind': 'aha_wam' | 'autoencoder', 'step': int, 'format': 1}

Loading builds the model from the checkpoint's own config, never from code defaults. Weights
whose shape differs from the model's fail with a message naming the tensor and both shapes.
"""

from dataclasses import asdict, dataclass
import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.autoencoder import FrameAutoencoder
from ahawam_ros.model.config import AutoencoderConfig, config_from_dict, ModelConfig
from ahawam_ros.model.norm_stats import NormStats
from safetensors.torch import load_file, save_file
import torch
from torch import nn

WEIGHTS_FILE = 'model.safetensors'
CONFIG_FILE = 'config.json'
NORM_STATS_FILE = 'norm_stats.json'
STATE_FILE = 'state.json'
FORMAT_VERSION = 1
PathLike = Union[str, Path]


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about itself besides the weights."""

    step: int
    configs: Dict[str, Any]
    norm_stats: Optional[NormStats]


def _write_json(path: Path, data: Dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')


def _read_json(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint file missing: {path}')
    return json.loads(path.read_text())


def _save(path: PathLike, module: nn.Module, kind: str, step: int, configs: Dict[str, Any],
          norm_stats: Optional[NormStats], weights_dtype: Optional[torch.dtype] = None) -> Path:
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    if weights_dtype is not None:  # storage only: loading casts back to the model's dtype
        tensors = {k: v.to(weights_dtype) if v.is_floating_point() else v
                   for k, v in tensors.items()}
    save_file(tensors, str(directory / WEIGHTS_FILE))
    _write_json(directory / CONFIG_FILE, configs)
    if norm_stats is not None:
        _write_json(directory / NORM_STATS_FILE, norm_stats.to_dict())
    # Written last: a directory with state.json is a complete checkpoint.
    _write_json(directory / STATE_FILE, {'kind': kind, 'step': int(step),
                                         'format': FORMAT_VERSION})
    return directory


def _read_info(path: PathLike, kind: str) -> CheckpointInfo:
    directory = Path(path)
    state = _read_json(directory / STATE_FILE)
    if state.get('kind') != kind:
        raise ValueError(f'{directory} holds a {state.get("kind")!r} checkpoint, not {kind!r}')
    stats_path = directory / NORM_STATS_FILE
    stats = NormStats.from_dict(_read_json(stats_path)) if stats_path.is_file() else None
    return CheckpointInfo(int(state['step']), _read_json(directory / CONFIG_FILE), stats)


def load_state_checked(module: nn.Module, tensors: Dict[str, torch.Tensor]) -> None:
    """
    Load a state dict, failing clearly on missing, unexpected or mis-shaped tensors.

    Raises
    ------
    ValueError
        Naming the first mis-shaped tensor with the checkpoint's and the model's shapes, or
        listing missing / unexpected tensor names.

    """
    own = module.state_dict()
    for name in sorted(set(own) & set(tensors)):
        if tuple(own[name].shape) != tuple(tensors[name].shape):
            raise ValueError(f'checkpoint tensor {name!r} has shape {tuple(tensors[name].shape)}'
                             f' but the model expects {tuple(own[name].shape)}')
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise ValueError(f'checkpoint does not match the model: missing {missing}, '
                         f'unexpected {unexpected}')
    module.load_state_dict(tensors, strict=True)


def save_checkpoint(path: PathLike, model: AhaWamModel, step: int,
                    extra_configs: Optional[Dict[str, Any]] = None,
                    weights_dtype: Optional[torch.dtype] = None) -> Path:
    """
    Save an AHA-WAM model with its config, normalisation statistics and step.

    Parameters
    ----------
    path : str or Path
        Checkpoint directory (created).
    model : AhaWamModel
        The model; its `config` and `norm_stats` are saved with it.
    step : int
        Training step.
    extra_configs : dict, optional
        More JSON-serialisable configs (e.g. {'train': ..., 'data': ...}).
    weights_dtype : torch.dtype, optional
        Store floating-point weights in this dtype (e.g. torch.float16 for a packaged
        checkpoint: half the size); loading casts them back to the model's dtype.

    Returns
    -------
    Path
        The directory.

    """
    configs = {'model': model.config.to_dict(), **(extra_configs or {})}
    return _save(path, model, 'aha_wam', step, configs, model.norm_stats, weights_dtype)


def load_checkpoint(path: PathLike, device: Union[str, torch.device] = 'cpu'
                    ) -> Tuple[AhaWamModel, CheckpointInfo]:
    """Build an `AhaWamModel` from a checkpoint directory; returns (model, info)."""
    info = _read_info(path, 'aha_wam')
    config = ModelConfig.from_dict(info.configs['model'])
    model = AhaWamModel(config, info.norm_stats)
    load_state_checked(model, load_file(str(Path(path) / WEIGHTS_FILE)))
    return model.to(device), info


def save_autoencoder(path: PathLike, autoencoder: FrameAutoencoder, step: int) -> Path:
    """Save a trained frame autoencoder (weights with latent statistics, config, step)."""
    configs = {'autoencoder': asdict(autoencoder.config)}
    return _save(path, autoencoder, 'autoencoder', step, configs, None)


def load_autoencoder(path: PathLike, device: Union[str, torch.device] = 'cpu'
                     ) -> Tuple[FrameAutoencoder, CheckpointInfo]:
    """Build a `FrameAutoencoder` from a checkpoint directory; returns (autoencoder, info)."""
    info = _read_info(path, 'autoencoder')
    config = config_from_dict(AutoencoderConfig, info.configs['autoencoder'])
    autoencoder = FrameAutoencoder(config)
    load_state_checked(autoencoder, load_file(str(Path(path) / WEIGHTS_FILE)))
    return autoencoder.to(device), info


def load_autoencoder_into(model: AhaWamModel, path: PathLike) -> CheckpointInfo:
    """Copy a saved autoencoder into `model` (frozen there); shapes must match."""
    info = _read_info(path, 'autoencoder')
    device = next(model.autoencoder.parameters()).device
    load_state_checked(model.autoencoder, load_file(str(Path(path) / WEIGHTS_FILE),
                                                    device=str(device)))
    return info
