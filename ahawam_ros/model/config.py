"""
Typed, validated configuration of the AHA-WAM model.

Every size of the model comes from these dataclasses. Each `__post_init__` validates its own
fields and raises `ValueError` naming the class, the field and the bad value. `ModelConfig`
also checks the cross-field constraints (image size divisible by the autoencoder's downsampling,
latent grid divisible by the patch size, RoPE split of the head dimension). Configs convert to
and from plain dicts (JSON) with `to_dict` / `from_dict`; unknown keys are rejected.
Named presets live in `presets.py`.
"""

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Tuple

from ahawam_ros.robot import ARMS

GRASP_TARGETS = ('first', 'each')  # ObjectiveConfig.grasp_target


def _fail(owner: Any, name: str, why: str) -> None:
    """Raise the uniform validation error for field `name` of dataclass `owner`."""
    value = getattr(owner, name)
    raise ValueError(f'{type(owner).__name__}.{name} = {value!r}: {why}')


def _check_positive(owner: Any, *names: str) -> None:
    """Fail unless every named field is a number > 0 (ints must be real ints, not bools)."""
    for name in names:
        value = getattr(owner, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            _fail(owner, name, 'must be a positive number')


def _check_int(owner: Any, *names: str) -> None:
    """Fail unless every named field is an int (not a bool)."""
    for name in names:
        value = getattr(owner, name)
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(owner, name, 'must be an int')


@dataclass
class AutoencoderConfig:
    """
    Frame autoencoder: camera views tiled into one composite image, conv encoder/decoder.

    The V views of H x W pixels are tiled row-major into a (tile_rows * H, tile_cols * W)
    composite (empty tiles are black). The encoder is a stride-`stem_stride` patchifying conv
    followed by one stride-2 stage per extra entry of `channels`, so the composite is
    downsampled by stem_stride * 2 ** (len(channels) - 1).
    """

    num_views: int = 2
    view_height: int = 16
    view_width: int = 16
    tile_rows: int = 1
    tile_cols: int = 2
    stem_stride: int = 2
    channels: Tuple[int, ...] = (8, 16)
    blocks_per_stage: int = 0
    latent_channels: int = 4

    def __post_init__(self):
        self.channels = tuple(self.channels)
        names = ('num_views', 'view_height', 'view_width', 'tile_rows', 'tile_cols',
                 'stem_stride', 'latent_channels')
        _check_int(self, *names, 'blocks_per_stage')
        _check_positive(self, *names)
        if self.blocks_per_stage < 0:
            _fail(self, 'blocks_per_stage', 'must be >= 0')
        if not self.channels or any(not isinstance(c, int) or c <= 0 for c in self.channels):
            _fail(self, 'channels', 'must be a non-empty tuple of positive ints')
        if self.tile_rows * self.tile_cols < self.num_views:
            _fail(self, 'num_views', f'more views than tiles ({self.tile_rows}x{self.tile_cols})')

    @property
    def downsample(self) -> int:
        """Spatial compression factor from composite pixels to latent cells."""
        return self.stem_stride * 2 ** (len(self.channels) - 1)

    @property
    def composite_size(self) -> Tuple[int, int]:
        """(height, width) of the tiled composite image."""
        return self.tile_rows * self.view_height, self.tile_cols * self.view_width

    @property
    def latent_size(self) -> Tuple[int, int]:
        """(h, w) of the latent grid."""
        height, width = self.composite_size
        return height // self.downsample, width // self.downsample


@dataclass
class TaskConfig:
    """Task conditioning: a learned table of `num_tokens` tokens per task name."""

    task_names: Tuple[str, ...] = ('transfer_cube',)
    num_tokens: int = 2
    width: int = 16

    def __post_init__(self):
        self.task_names = tuple(self.task_names)
        _check_int(self, 'num_tokens', 'width')
        _check_positive(self, 'num_tokens', 'width')
        if not self.task_names or any(not isinstance(n, str) or not n for n in self.task_names):
            _fail(self, 'task_names', 'must be a non-empty tuple of non-empty strings')
        if len(set(self.task_names)) != len(self.task_names):
            _fail(self, 'task_names', 'names must be unique')


@dataclass
class PlannerConfig:
    """
    Video DiT (world planner).

    `frame_stride` control steps separate consecutive frames of a training clip;
    `history_stride` separates history frames (the planner refresh period at run time).
    `cross_width` is the attention width of the task cross-attention (0 = `width`): the task
    tokens are few and narrow, so a narrow cross-attention saves parameters, not quality.
    `time_width` is the width of the timestep embedding that feeds the adaLN projections
    (0 = `width`): a scalar timestep needs no D-wide embedding, and the 6 x D projection from
    it is the planner's largest parameter block that costs no compute per token.
    """

    width: int = 32
    mlp_ratio: float = 2.0
    patch_size: int = 2
    num_future_frames: int = 2
    frame_stride: int = 8
    memory_size: int = 2
    history_stride: int = 16
    cross_width: int = 0
    time_width: int = 0

    def __post_init__(self):
        ints = ('width', 'patch_size', 'num_future_frames', 'frame_stride', 'memory_size',
                'history_stride')
        _check_int(self, *ints, 'cross_width', 'time_width')
        _check_positive(self, *ints, 'mlp_ratio')
        for name in ('cross_width', 'time_width'):
            if getattr(self, name) < 0:
                raise ValueError(f'PlannerConfig.{name} must be >= 0, got {getattr(self, name)}')


@dataclass
class ExecutorConfig:
    """
    Action DiT (executor): one token per control step of a K-step chunk.

    `relative_actions`: the executor predicts a[c + k] - q[c], the actions relative to the
    joint state at the chunk start (normalised by their own statistics), instead of absolute
    targets that copying the proprio already explains. `context_adapter`: the executor reads
    the planner context through its own keys (a per-head projection of the context values,
    free of the planner's temporal RoPE, plus a learned key per context token) and values
    with a learned per-token position code, so that where something is in the frame, not
    the frame's absolute time, decides what it reads.
    """

    width: int = 16
    mlp_ratio: float = 2.0
    chunk_len: int = 16
    num_chunks: int = 2
    action_dim: int = 14
    relative_actions: bool = False
    context_adapter: bool = False

    def __post_init__(self):
        ints = ('width', 'chunk_len', 'num_chunks', 'action_dim')
        _check_int(self, *ints)
        _check_positive(self, *ints, 'mlp_ratio')
        for name in ('relative_actions', 'context_adapter'):
            if not isinstance(getattr(self, name), bool):
                _fail(self, name, 'must be true or false')


@dataclass
class OvcrConfig:
    """
    Observation-guided video-context routing.

    `obs_width`: width of observation tokens and routing queries; `delta_rank`: hidden width of
    the per-layer delta MLP (width -> rank -> 2 width); `gate_init`: initial per-layer gate;
    `delta_init_std`: std of the delta MLP's initial output weights (0: zero-initialised, the
    paper's choice, which leaves the gate without gradient at the start).
    """

    num_queries: int = 4
    obs_width: int = 16
    delta_rank: int = 8
    gate_init: float = -4.0
    delta_init_std: float = 0.0

    def __post_init__(self):
        _check_int(self, 'num_queries', 'obs_width', 'delta_rank')
        _check_positive(self, 'num_queries', 'obs_width', 'delta_rank')
        if not isinstance(self.gate_init, (int, float)) or isinstance(self.gate_init, bool):
            _fail(self, 'gate_init', 'must be a number')
        value = self.delta_init_std
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            _fail(self, 'delta_init_std', 'must be a number >= 0')


@dataclass
class FlowConfig:
    """Flow matching: shifted schedule s = k u / (1 + (k - 1) u), t = 1000 s, Euler steps."""

    shift: float = 5.0
    num_train_timesteps: int = 1000
    num_inference_steps: int = 10

    def __post_init__(self):
        _check_int(self, 'num_train_timesteps', 'num_inference_steps')
        _check_positive(self, 'shift', 'num_train_timesteps', 'num_inference_steps')


@dataclass
class ObjectiveConfig:
    """
    Training objective: loss weights and the horizon-adaptive offset bound O.

    An auxiliary head can make the executor predict a position at the chunk start (its
    `object_head`, read from the mean action token; a training target only, samples without
    one are masked), from one of two targets:
    - `object_loss_weight`: the task object's position, a simulator's privileged state
      (`episode.json` of `record-demos`; a robot's bags and datasets have none);
    - `grasp_loss_weight`: the grasp point in hindsight, from the robot's own joints and
      commands (`data/hindsight.py`: where a gripper closed on the object, then carried);
      `grasp_target` says which: 'first', the object the first gripper to close picks up
      (3 numbers), or 'each', every object a gripper picks up, in the slot of the arm that
      picks it up (3 per arm of `robot.ARMS`; a slot whose arm picks nothing up is masked:
      TransferCube's cube is the right arm's, Insertion's socket the left's and peg the
      right's).
    At most one is > 0; both 0 turn the head off. `proprio_noise`: std, in normalised units,
    of the noise added to the executor's proprio input in training (the chunk's relative
    targets keep the true joint state).
    """

    video_loss_weight: float = 1.0
    action_loss_weight: float = 1.0
    max_offset: int = 15
    object_loss_weight: float = 0.0
    proprio_noise: float = 0.0
    grasp_loss_weight: float = 0.0
    grasp_target: str = 'first'

    def __post_init__(self):
        _check_int(self, 'max_offset')
        if self.grasp_target not in GRASP_TARGETS:
            _fail(self, 'grasp_target', f'must be one of {GRASP_TARGETS}')
        if self.max_offset < 0:
            _fail(self, 'max_offset', 'must be >= 0')
        for name in ('video_loss_weight', 'action_loss_weight', 'object_loss_weight',
                     'proprio_noise', 'grasp_loss_weight'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                _fail(self, name, 'must be a number >= 0')
        if self.object_loss_weight > 0 and self.grasp_loss_weight > 0:
            _fail(self, 'grasp_loss_weight', f'object_loss_weight is > 0 too '
                  f'({self.object_loss_weight}): the position head has one target, set the '
                  'other to 0')

    @property
    def position_loss_weight(self) -> float:
        """Return the weight of the auxiliary position loss, whichever its target."""
        return self.object_loss_weight + self.grasp_loss_weight

    @property
    def position_dim(self) -> int:
        """Return P, the numbers the position head predicts (3 per object slot)."""
        if self.grasp_loss_weight > 0 and self.grasp_target == 'each':
            return 3 * len(ARMS)
        return 3


_NESTED = {
    'autoencoder': AutoencoderConfig, 'task': TaskConfig, 'planner': PlannerConfig,
    'executor': ExecutorConfig, 'ovcr': OvcrConfig, 'flow': FlowConfig,
    'objective': ObjectiveConfig,
}


@dataclass
class ModelConfig:
    """
    The whole model: shared attention geometry plus one config per component.

    Both DiTs have `num_layers` layers and `num_heads` x `head_dim` attention so that the
    executor can attend to the planner's keys/values layer by layer. One temporal RoPE unit is
    `rope_steps_per_unit` control steps.
    """

    name: str = 'custom'
    num_layers: int = 2
    num_heads: int = 2
    head_dim: int = 16
    rope_theta: float = 10000.0
    rope_steps_per_unit: float = 8.0
    control_rate_hz: float = 50.0
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    ovcr: OvcrConfig = field(default_factory=OvcrConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)

    def __post_init__(self):
        _check_int(self, 'num_layers', 'num_heads', 'head_dim')
        _check_positive(self, 'num_layers', 'num_heads', 'head_dim', 'rope_theta',
                        'rope_steps_per_unit', 'control_rate_hz')
        for name, cls in _NESTED.items():
            if not isinstance(getattr(self, name), cls):
                _fail(self, name, f'must be a {cls.__name__}')
        if self.head_dim % 2 or (self.head_dim // 6) < 1:
            _fail(self, 'head_dim', 'must be even and >= 6 (3-D RoPE splits it in three)')
        self._check_geometry()

    def _check_geometry(self) -> None:
        ae = self.autoencoder
        for name, size in (('view_height', ae.view_height), ('view_width', ae.view_width)):
            if size % ae.downsample:
                _fail(ae, name, f'must be divisible by the downsampling {ae.downsample}')
        if any(s % self.planner.patch_size for s in ae.latent_size):
            _fail(self.planner, 'patch_size', f'must divide the latent grid {ae.latent_size}')

    @property
    def attn_width(self) -> int:
        """Width of the joint attention, num_heads * head_dim."""
        return self.num_heads * self.head_dim

    @property
    def patch_grid(self) -> Tuple[int, int]:
        """(h, w) of the token grid of one latent frame."""
        height, width = self.autoencoder.latent_size
        return height // self.planner.patch_size, width // self.planner.patch_size

    @property
    def tokens_per_frame(self) -> int:
        """S, planner tokens per latent frame (= M, tokens of the planner context)."""
        height, width = self.patch_grid
        return height * width

    @property
    def control_period(self) -> float:
        """Seconds between consecutive control steps."""
        return 1.0 / self.control_rate_hz

    def to_dict(self) -> Dict[str, Any]:
        """Return a JSON-serialisable nested dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> 'ModelConfig':
        """Build a config from `to_dict` output; unknown keys raise `ValueError`."""
        kwargs = dict(data)
        for name, sub in _NESTED.items():
            if isinstance(kwargs.get(name), dict):
                kwargs[name] = config_from_dict(sub, kwargs[name])
        return config_from_dict(cls, kwargs)


def config_from_dict(cls: type, data: Dict[str, Any]) -> Any:
    """Build dataclass `cls` from a flat dict, rejecting unknown keys by name."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f'{cls.__name__}: unknown config keys {unknown}; valid: {sorted(names)}')
    return cls(**data)
