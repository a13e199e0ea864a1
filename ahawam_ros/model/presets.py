"""
Named model presets: `paper`, `small` and `tiny`.

- `paper`: the paper's shapes (planner 3072 x 30 layers, executor 1024, 24 heads x 128,
  120 tokens per latent frame, OVCR ~1.2B). Build it on the meta device to check shapes and
  parameter counts; it does not fit a CPU.
- `small`: trains from scratch and runs in real time on 2 CPU cores (ALOHA TransferCube,
  the top and two wrist cameras at 120 x 160 tiled side by side); `small()` says why.
- `tiny`: about 70k parameters, for unit tests.
"""

from typing import Callable, Dict

from ahawam_ros.model.config import (AutoencoderConfig, ExecutorConfig, FlowConfig,
                                     ModelConfig, ObjectiveConfig, OvcrConfig, PlannerConfig,
                                     TaskConfig)
from ahawam_ros.robot import ACTION_DIM

TRANSFER_CUBE = 'transfer_cube'
INSERTION = 'insertion'


def paper() -> ModelConfig:
    """Return the paper's shapes; (default) marks values the sources leave open."""
    return ModelConfig(
        name='paper', num_layers=30, num_heads=24, head_dim=128, rope_steps_per_unit=8.0,
        control_rate_hz=30.0,
        # (default) 3 cameras tiled 2 x 2 at 160 x 192: 16x compression, 48 channels,
        # patch 2 -> 10 x 12 = 120 tokens per latent frame, as in the paper.
        autoencoder=AutoencoderConfig(
            num_views=3, view_height=160, view_width=192, tile_rows=2, tile_cols=2,
            stem_stride=2, channels=(128, 256, 512, 512), blocks_per_stage=2,
            latent_channels=48),
        # (default) a learned table standing in for the umT5 text encoder (4096 wide).
        task=TaskConfig(task_names=tuple(f'robotwin_{i:02d}' for i in range(50)),
                        num_tokens=16, width=4096),
        planner=PlannerConfig(width=3072, mlp_ratio=14336 / 3072, patch_size=2,
                              num_future_frames=3, frame_stride=32, memory_size=6,
                              history_stride=32),
        executor=ExecutorConfig(width=1024, mlp_ratio=4.0, chunk_len=16, num_chunks=5,
                                action_dim=ACTION_DIM),
        ovcr=OvcrConfig(num_queries=32, obs_width=3072, delta_rank=3072, gate_init=-4.0),
        flow=FlowConfig(shift=5.0, num_train_timesteps=1000, num_inference_steps=10),
        objective=ObjectiveConfig(max_offset=15),
    )


def small() -> ModelConfig:
    """
    Return a model that trains in about an hour and runs in real time on 2 CPU cores.

    Sized by what 2 cores can train, not only by what they can run: the planner
    is the training step's cost, so it sees 60 tokens a frame (3 views of 128 x 160, 8x
    compression, 4 x 4 patches) through a 256-wide, 3-layer DiT with a 2-frame memory (about
    14x the training throughput of a 640-wide planner over 240 tokens a frame, which saw half
    an epoch in 3 hours and never learned to look at the cube). The executor stays narrow
    (64 over K = 16 tokens, 4 x 64 attention; every layer costs it 10 Euler steps) and reads
    the context through its own adapter, free of the planner's absolute-time rotation; it
    predicts actions relative to the chunk-start joint state (copying the proprio explained
    87 % of the absolute targets); an auxiliary object-position head makes it read the scene.
    The frame encoder is a two-conv patchifier (the executor runs it every update); OVCR is
    light (8 queries, a rank-16 per-layer delta) and starts half open with a small random
    delta, so that its gate learns from the first step.
    """
    return ModelConfig(
        name='small', num_layers=3, num_heads=4, head_dim=64, rope_steps_per_unit=8.0,
        control_rate_hz=50.0,
        autoencoder=AutoencoderConfig(
            num_views=3, view_height=128, view_width=160, tile_rows=1, tile_cols=3,
            stem_stride=4, channels=(32, 64), blocks_per_stage=0, latent_channels=16),
        task=TaskConfig(task_names=(TRANSFER_CUBE, INSERTION), num_tokens=4, width=128),
        planner=PlannerConfig(width=256, mlp_ratio=3.0, patch_size=4, num_future_frames=2,
                              frame_stride=24, memory_size=2, history_stride=32,
                              cross_width=128, time_width=128),
        executor=ExecutorConfig(width=64, mlp_ratio=4.0, chunk_len=16, num_chunks=3,
                                action_dim=ACTION_DIM, relative_actions=True,
                                context_adapter=True),
        ovcr=OvcrConfig(num_queries=8, obs_width=64, delta_rank=16, gate_init=0.0,
                        delta_init_std=0.02),
        flow=FlowConfig(shift=5.0, num_train_timesteps=1000, num_inference_steps=10),
        objective=ObjectiveConfig(max_offset=15, object_loss_weight=1.0),
    )


def tiny() -> ModelConfig:
    """Return a ~70k-parameter model (2 views of 16 x 16, 8 tokens per frame) for tests."""
    return ModelConfig(
        name='tiny', num_layers=2, num_heads=2, head_dim=16, rope_steps_per_unit=8.0,
        control_rate_hz=50.0,
        autoencoder=AutoencoderConfig(
            num_views=2, view_height=16, view_width=16, tile_rows=1, tile_cols=2,
            stem_stride=2, channels=(8, 16), blocks_per_stage=0, latent_channels=4),
        task=TaskConfig(task_names=(TRANSFER_CUBE, INSERTION), num_tokens=2, width=16),
        planner=PlannerConfig(width=32, mlp_ratio=2.0, patch_size=2, num_future_frames=2,
                              frame_stride=8, memory_size=2, history_stride=16),
        executor=ExecutorConfig(width=16, mlp_ratio=2.0, chunk_len=16, num_chunks=2,
                                action_dim=ACTION_DIM),
        ovcr=OvcrConfig(num_queries=4, obs_width=16, delta_rank=8, gate_init=-4.0),
        flow=FlowConfig(shift=5.0, num_train_timesteps=1000, num_inference_steps=10),
        objective=ObjectiveConfig(max_offset=15),
    )


PRESETS: Dict[str, Callable[[], ModelConfig]] = {'paper': paper, 'small': small, 'tiny': tiny}


def get_preset(name: str) -> ModelConfig:
    """Return a fresh config of preset `name`; an unknown name lists the valid ones."""
    if name not in PRESETS:
        raise ValueError(f'unknown model preset {name!r}; valid presets: {sorted(PRESETS)}')
    return PRESETS[name]()
