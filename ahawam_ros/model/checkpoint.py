"""
Checkpoints: one self-describing directory per checkpoint.

    <dir>/model.safetensors   weights (state dict)
    <dir>/config.json         {'model': ModelConfig dict, ...any extra configs (trainer, data)}
    <dir>/norm_stats.json     NormStats (action/proprio mean and std)
    <dir>/state.json          {'kind': 'aha_wam' | 'autoencoder', 'step': int, 'format': 1}

Loading builds the model from the checkpoint's own config, never from code defaults. Weights
whose shape differs from the model's fail with a message naming the tensor and both shapes.
Every malformed checkpoint (a missing file, JSON that does not parse, a missing or invalid
field, unreadable or truncated weights) raises `CheckpointError`: one line naming the file and
the field, which command line tools turn into exit code 2.
"""

from dataclasses import asdict, dataclass
import json
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.autoencoder import FrameAutoencoder
from ahawam_ros.model.config import AutoencoderConfig, config_from_dict, ModelConfig
from ahawam_ros.model.norm_stats import NormStats
from safetensors import SafetensorError
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


class CheckpointError(ValueError):
    """
    A checkpoint that cannot be loaded; the message is one line naming the file and field.

    Attributes
    ----------
    path : Path
        The file (or directory) at fault.
    field : str
        The field at fault ('' when the whole file is).

    """

    def __init__(self, path: PathLike, field: str, problem: str):
        self.path, self.field = Path(path), field
        where = f"{self.path}: field '{field}'" if field else str(self.path)
        super().__init__(' '.join(f'checkpoint {where}: {problem}'.split()))


def _read_json(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(path, '', 'file missing (not a complete checkpoint directory)')
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(path, '', f'not valid JSON ({error})') from error
    if not isinstance(data, dict):
        raise CheckpointError(path, '', f'expected a JSON object, found {type(data).__name__}')
    return data


def _field(path: Path, data: Dict[str, Any], name: str, kind: type) -> Any:
    """Return `data[name]`, checked to be a `kind` (bool is no int)."""
    if name not in data:
        raise CheckpointError(path, name, f'missing (present: {sorted(data)})')
    value = data[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CheckpointError(path, name, f'expected {kind.__name__}, found {value!r:.60}')
    return value


def _save(path: PathLike, module: nn.Module, kind: str, step: int, configs: Dict[str, Any],
          norm_stats: Optional[NormStats], weights_dtype: Optional[torch.dtype] = None,
          state_dict: Optional[Dict[str, torch.Tensor]] = None) -> Path:
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    state_dict = module.state_dict() if state_dict is None else state_dict
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
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
    if not directory.is_dir():
        raise CheckpointError(directory, '', 'no such checkpoint directory')
    state_path = directory / STATE_FILE
    state = _read_json(state_path)
    found = _field(state_path, state, 'kind', str)
    if found != kind:
        raise CheckpointError(state_path, 'kind',
                              f'{directory} holds a {found!r} checkpoint, not {kind!r}')
    step = _field(state_path, state, 'step', int)
    if step < 0:
        raise CheckpointError(state_path, 'step', f'must be >= 0, found {step}')
    version = state.get('format', FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise CheckpointError(state_path, 'format', f'version {version!r}; this code reads '
                              f'version {FORMAT_VERSION}')
    stats_path = directory / NORM_STATS_FILE
    stats = None
    if stats_path.is_file():
        try:
            stats = NormStats.from_dict(_read_json(stats_path))
        except (TypeError, ValueError) as error:
            if isinstance(error, CheckpointError):
                raise
            raise CheckpointError(stats_path, '', str(error)) from error
    return CheckpointInfo(step, _read_json(directory / CONFIG_FILE), stats)


def _build(path: PathLike, info: CheckpointInfo, key: str, build: Callable[[Any], Any]) -> Any:
    """Return `build(configs[key])`; a missing or invalid config names the file and field."""
    config_path = Path(path) / CONFIG_FILE
    section = _field(config_path, info.configs, key, dict)
    try:
        return build(section)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise CheckpointError(config_path, key, f'{type(error).__name__}: {error}') from error


def _load_weights(module: nn.Module, path: PathLike, device: str = 'cpu') -> None:
    """Load the weights file of checkpoint `path` into `module`, naming the file on failure."""
    weights = Path(path) / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(weights, '', 'file missing (not a complete checkpoint directory)')
    try:
        tensors = load_file(str(weights), device=device)
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise CheckpointError(weights, '', f'unreadable safetensors file, truncated or corrupt '
                              f'({type(error).__name__}: {error})') from error
    broken = next((name for name, tensor in sorted(tensors.items())
                   if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())),
                  None)
    if broken is not None:
        raise CheckpointError(weights, '', f'tensor {broken!r} holds NaN or infinite values '
                              '(a diverged or damaged training run)')
    try:
        load_state_checked(module, tensors)
    except ValueError as error:
        raise CheckpointError(weights, '', str(error)) from error


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
                    weights_dtype: Optional[torch.dtype] = None,
                    state_dict: Optional[Dict[str, torch.Tensor]] = None) -> Path:
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
    state_dict : dict, optional
        The weights to write instead of `model.state_dict()` (a sharded model's, gathered).

    Returns
    -------
    Path
        The directory.

    """
    configs = {'model': model.config.to_dict(), **(extra_configs or {})}
    return _save(path, model, 'aha_wam', step, configs, model.norm_stats, weights_dtype,
                 state_dict)


def load_checkpoint(path: PathLike, device: Union[str, torch.device] = 'cpu'
                    ) -> Tuple[AhaWamModel, CheckpointInfo]:
    """
    Build an `AhaWamModel` from a checkpoint directory; returns (model, info).

    Raises
    ------
    CheckpointError
        A malformed checkpoint: the message names the file and the field. A policy
        checkpoint without its normalisation statistics is one (its actions would be read
        in the wrong units).

    """
    info = _read_info(path, 'aha_wam')
    if info.norm_stats is None:
        raise CheckpointError(Path(path) / NORM_STATS_FILE, '', 'file missing: a policy '
                              "checkpoint carries its normalisation statistics (the policy's "
                              'actions and proprio are in normalised units)')
    model = _build(path, info, 'model',
                   lambda section: AhaWamModel(ModelConfig.from_dict(section), info.norm_stats))
    _load_weights(model, path)
    return model.to(device), info


def save_autoencoder(path: PathLike, autoencoder: FrameAutoencoder, step: int) -> Path:
    """Save a trained frame autoencoder (weights with latent statistics, config, step)."""
    configs = {'autoencoder': asdict(autoencoder.config)}
    return _save(path, autoencoder, 'autoencoder', step, configs, None)


def load_autoencoder(path: PathLike, device: Union[str, torch.device] = 'cpu'
                     ) -> Tuple[FrameAutoencoder, CheckpointInfo]:
    """Build a `FrameAutoencoder` from a checkpoint directory; returns (autoencoder, info)."""
    info = _read_info(path, 'autoencoder')
    autoencoder = _build(path, info, 'autoencoder', lambda section: FrameAutoencoder(
        config_from_dict(AutoencoderConfig, section)))
    _load_weights(autoencoder, path)
    return autoencoder.to(device), info


def load_autoencoder_into(model: AhaWamModel, path: PathLike) -> CheckpointInfo:
    """Copy a saved autoencoder into `model` (frozen there); shapes must match."""
    info = _read_info(path, 'autoencoder')
    device = next(model.autoencoder.parameters()).device
    _load_weights(model.autoencoder, path, str(device))
    return info
