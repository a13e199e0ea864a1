"""
`TrainConfig`: every setting of `ahawam train`, typed and validated on construction.

Optimiser defaults follow the paper (AdamW betas (0.9, 0.95), weight decay 1e-2, 5 % linear
warmup then cosine decay, gradient clipping at 1.0). The learning rates differ from the
paper's 5e-5, which fine-tunes a pretrained 5B video model: here every module trains from
scratch, where a larger rate converges in the step budget of a CPU run (default).
"""

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Optional, Tuple

from ahawam_ros.data.dataset import DataConfig
from ahawam_ros.model.config import GRASP_TARGETS, ModelConfig
from ahawam_ros.model.overrides import apply_overrides
from ahawam_ros.model.presets import get_preset, PRESETS


DEVICES = ('auto', 'cpu', 'cuda')
PRECISIONS = ('fp32', 'bf16')
STRATEGIES = ('ddp', 'fsdp')  # how the joint stage spreads over ranks (train/sharding.py)


def _fail(name: str, value: Any, why: str) -> None:
    raise ValueError(f'TrainConfig.{name} = {value!r}: {why}')


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class TrainConfig:
    """
    Settings of a training run (both stages).

    Attributes
    ----------
    data : DataConfig
        Where the bags are, the cache, the features.
    preset : str
        Model preset (`ahawam_ros.model.presets`).
    out : str
        Output directory: checkpoints, logs, the final policy.
    steps, ae_steps : int
        Optimiser steps of the policy stage and of the autoencoder stage (0: skip stage 1,
        then `autoencoder` must name a trained one).
    autoencoder : str, optional
        A saved autoencoder checkpoint to use instead of training stage 1.
    batch_size : int
        Global batch (split evenly over the data-parallel ranks).
    lr, ae_lr : float
        Peak learning rates of the policy and autoencoder stages.
    weight_decay, betas, warmup_frac, grad_clip : float, (float, float), float, float
        AdamW and schedule settings (decay applies to matrices only).
    seed : int
        Seeds initialisation, data order, offsets, timesteps and noise.
    num_workers : int
        DataLoader worker processes per rank.
    strategy : str
        'ddp' (a replica per rank) or 'fsdp' (the joint stage sharded: `train/sharding.py`).
    activation_checkpointing : bool
        Recompute each DiT block's activations in backward (joint stage).
    checkpoint_every, log_every : int
        Steps between checkpoints and between log lines (rank 0 writes).
    calib_batches : int
        Batches of frames that calibrate the latent statistics after stage 1.
    device : str
        'auto' (cuda when available), 'cpu' or 'cuda'.
    precision : str
        'fp32', or 'bf16' autocast of the forward passes (the paper's; weights and optimiser
        stay float32).
    executor_steps, executor_batch_size, executor_lr, executor_anchor_stride : int, int,
            float, int
        Stage 3 (`train/executor_stage.py`; 0 steps: none): optimiser steps, chunks per
        batch, peak learning rate of the executor on the frozen planner's contexts, and the
        steps between the planner frames it keeps.
    executor_early_fraction, executor_early_steps : float, int
        Stage 3 draws that fraction of its chunks from planner frames before that step (the
        approach, where only the cameras tell where the cube is; `executor_stage.EarlyDraws`).
    executor_data : str, optional
        More demonstration bags for stage 3 only, decoded as `data` is (its own cache). Stage
        3 costs little per demonstration (the planner runs once over each), so it can see more
        of them than the joint stage; the model keeps the joint stage's normalisation.
    object_loss_weight, grasp_loss_weight : float, optional
        Override the preset's `objective.object_loss_weight` (the object's position, a
        simulator's privileged state) and `objective.grasp_loss_weight` (the grasp point in
        hindsight, from joints and commands: any robot's data); None: the preset's. At most
        one of the two may end up > 0.
    grasp_target : str, optional
        Override the preset's `objective.grasp_target` ('first': the object the first
        gripper to close picks up; 'each': every object a gripper picks up, a slot per arm).
    model_overrides : dict
        {dotted ModelConfig field: value} set on the preset (`model/overrides.py`; `ahawam
        train --model-set executor.context_adapter=false`): ablations and variants without a
        preset of their own. Saved with the run, so a resumed run builds the same model.

    """

    data: DataConfig = field(default_factory=lambda: DataConfig(bags='data'))
    preset: str = 'small'
    out: str = 'outputs/train'
    steps: int = 20000
    ae_steps: int = 2000
    autoencoder: Optional[str] = None
    batch_size: int = 32
    lr: float = 3e-4
    ae_lr: float = 1e-3
    weight_decay: float = 1e-2
    betas: Tuple[float, float] = (0.9, 0.95)
    warmup_frac: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0
    num_workers: int = 0
    checkpoint_every: int = 1000
    log_every: int = 10
    calib_batches: int = 8
    device: str = 'auto'
    precision: str = 'fp32'
    executor_steps: int = 0
    executor_batch_size: int = 64
    executor_lr: float = 5e-4
    executor_anchor_stride: int = 4
    executor_early_fraction: float = 0.0
    executor_early_steps: int = 64
    executor_data: Optional[str] = None
    object_loss_weight: Optional[float] = None
    grasp_loss_weight: Optional[float] = None
    grasp_target: Optional[str] = None
    strategy: str = 'ddp'
    activation_checkpointing: bool = False
    model_overrides: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.data, dict):
            self.data = DataConfig(**self._without_object_target(dict(self.data)))
        if not isinstance(self.data, DataConfig):
            _fail('data', self.data, 'must be a DataConfig')
        if self.preset not in PRESETS:
            _fail('preset', self.preset, f'unknown model preset; valid: {sorted(PRESETS)}')
        if not isinstance(self.out, str) or not self.out:
            _fail('out', self.out, 'must name a directory')
        for name in ('steps', 'ae_steps', 'num_workers', 'executor_steps'):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 0:
                _fail(name, getattr(self, name), 'must be an int >= 0')
        for name in ('batch_size', 'checkpoint_every', 'log_every', 'calib_batches',
                     'executor_batch_size', 'executor_anchor_stride', 'executor_early_steps'):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                _fail(name, getattr(self, name), 'must be an int >= 1')
        if not _is_int(self.seed) or self.seed < 0:
            _fail('seed', self.seed, 'must be an int >= 0')
        self._check_optimiser()
        if not _is_number(self.executor_early_fraction) or not (
                0 <= self.executor_early_fraction <= 1):
            _fail('executor_early_fraction', self.executor_early_fraction,
                  'must be a number in [0, 1]')
        if self.executor_data is not None and (not isinstance(self.executor_data, str)
                                               or not self.executor_data):
            _fail('executor_data', self.executor_data, 'must name a directory or be None')
        for name in ('object_loss_weight', 'grasp_loss_weight'):
            value = getattr(self, name)
            if value is not None and (not _is_number(value) or value < 0):
                _fail(name, value, 'must be a number >= 0 or None')
        if self.grasp_target is not None and self.grasp_target not in GRASP_TARGETS:
            _fail('grasp_target', self.grasp_target, f'must be one of {GRASP_TARGETS} or None')
        if not isinstance(self.model_overrides, dict) or not all(
                isinstance(name, str) for name in self.model_overrides):
            _fail('model_overrides', self.model_overrides, 'must map dotted field names to values')
        self.model_config()  # an override the preset cannot take fails here, by name
        if self.device not in DEVICES:
            _fail('device', self.device, f'must be one of {DEVICES}')
        if self.precision not in PRECISIONS:
            _fail('precision', self.precision, f'must be one of {PRECISIONS}')
        if self.strategy not in STRATEGIES:
            _fail('strategy', self.strategy, f'must be one of {STRATEGIES}')
        if not isinstance(self.activation_checkpointing, bool):
            _fail('activation_checkpointing', self.activation_checkpointing, 'must be a bool')
        if self.ae_steps == 0 and self.steps > 0 and not self.autoencoder:
            _fail('ae_steps', 0, 'without autoencoder stage a trained autoencoder is needed '
                  '(--autoencoder DIR)')

    def model_config(self) -> ModelConfig:
        """Return the run's model config: the preset with `model_overrides` applied."""
        return apply_overrides(get_preset(self.preset), self.model_overrides)

    def _check_optimiser(self) -> None:
        for name in ('lr', 'ae_lr', 'grad_clip', 'executor_lr'):
            if not _is_number(getattr(self, name)) or getattr(self, name) <= 0:
                _fail(name, getattr(self, name), 'must be a number > 0')
        if not _is_number(self.weight_decay) or self.weight_decay < 0:
            _fail('weight_decay', self.weight_decay, 'must be a number >= 0')
        self.betas = tuple(self.betas)
        if len(self.betas) != 2 or not all(_is_number(b) and 0 <= b < 1 for b in self.betas):
            _fail('betas', self.betas, 'must be two numbers in [0, 1)')
        if not _is_number(self.warmup_frac) or not 0 <= self.warmup_frac < 1:
            _fail('warmup_frac', self.warmup_frac, 'must be a number in [0, 1)')

    def _without_object_target(self, data: Dict[str, Any]) -> Dict[str, Any]:
        """
        Read the data settings of a run saved before `grasp_loss_weight` existed.

        Such runs chose the position target with `data.object_target`: 'recorded' is what
        the objective's weights now say by themselves; 'hindsight' was the object head's
        weight on the grasp point, which is `grasp_loss_weight` now.
        """
        if data.pop('object_target', 'recorded') == 'hindsight' and self.grasp_loss_weight is None:
            weight = self.object_loss_weight
            if weight is None:
                weight = get_preset(self.preset).objective.object_loss_weight
            self.object_loss_weight, self.grasp_loss_weight = 0.0, weight
        return data

    def to_dict(self) -> Dict[str, Any]:
        """Return a JSON-serialisable dict."""
        out = asdict(self)
        out['betas'] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> 'TrainConfig':
        """Build from `to_dict` output; unknown keys raise naming the valid ones."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f'TrainConfig: unknown keys {unknown}; valid: {sorted(names)}')
        return cls(**data)
