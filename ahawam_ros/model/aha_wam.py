"""
AHA-WAM: the frozen frame autoencoder, task tokens, world planner, OVCR and executor.

`AhaWamModel` composes the modules and offers the batched inference primitives that the
policy, the trainer and the benchmarks share: `encode`, `refresh` (one planner pass over the
newest frame against the rolling memory), `edit_context` (OVCR), `prepare_executor` and
`sample_actions` (Euler integration of the executor). Training lives in `losses.py`.

Shapes: B batch, V views, H x W pixels, C latent channels, h x w latent grid, L layers,
heads x hd attention, S tokens per frame, M context tokens, K chunk length, A action dim.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ahawam_ros.model.action_dit import ActionDiT, ExecutorCache
from ahawam_ros.model.autoencoder import FrameAutoencoder
from ahawam_ros.model.config import ModelConfig
from ahawam_ros.model.flow import euler_sample, FlowSchedule, T_SCALE
from ahawam_ros.model.norm_stats import NormStats
from ahawam_ros.model.ovcr import Ovcr
from ahawam_ros.model.task import TaskEncoder
from ahawam_ros.model.video_dit import frame_causal_mask, VideoDiT
import torch
from torch import nn

KV = Tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class EulerPlan:
    """
    What an N-step Euler solve needs besides the chunk: fixed given the weights.

    Attributes
    ----------
    sigmas : torch.Tensor
        (N + 1,) noise levels from 1 to 0.
    layer_mod, head_mod : torch.Tensor
        (N, L, 6, Da) and (N, 2, Da): the executor modulations of every step.

    """

    sigmas: torch.Tensor
    layer_mod: torch.Tensor
    head_mod: torch.Tensor


class AhaWamModel(nn.Module):
    """
    The whole AHA-WAM model.

    The autoencoder is frozen (no gradients, always in eval mode): it is trained beforehand
    with `autoencoder.reconstruction_loss` and loaded into `self.autoencoder`.

    Parameters
    ----------
    config : ModelConfig
        Every size of the model.
    norm_stats : NormStats, optional
        Action/proprio statistics; identity when omitted (set later with `set_norm_stats`).

    """

    def __init__(self, config: ModelConfig, norm_stats: Optional[NormStats] = None):
        super().__init__()
        self.config = config
        self.autoencoder = FrameAutoencoder(config.autoencoder)
        self.task_encoder = TaskEncoder(config.task)
        self.planner = VideoDiT(config)
        self.executor = ActionDiT(config)
        self.ovcr = Ovcr(config)
        self.schedule = FlowSchedule(config.flow)
        self.autoencoder.requires_grad_(False)
        action_dim = config.executor.action_dim
        # Statistics as buffers follow the model's device; they are saved as JSON, not weights.
        for name in ('action_mean', 'action_std', 'proprio_mean', 'proprio_std'):
            self.register_buffer(name, torch.zeros(action_dim), persistent=False)
        self.set_norm_stats(norm_stats or NormStats.identity(action_dim))

    def train(self, mode: bool = True) -> 'AhaWamModel':
        """Set training mode everywhere except the frozen autoencoder."""
        super().train(mode)
        self.autoencoder.eval()
        return self

    def set_norm_stats(self, stats: NormStats) -> None:
        """Install action/proprio normalisation statistics (length A each)."""
        if stats.action_dim != self.config.executor.action_dim:
            raise ValueError(f'NormStats has action_dim {stats.action_dim}, the model '
                             f'{self.config.executor.action_dim}')
        for name, value in stats.tensors().items():
            getattr(self, name).copy_(value)
        self.norm_stats = stats

    def _action_reference(self, proprio: Optional[torch.Tensor]) -> torch.Tensor:
        """(..., A) joint state at the chunk start -> (..., 1, A) offset of relative actions."""
        if not self.config.executor.relative_actions:
            return self.action_mean.new_zeros(())
        if proprio is None:
            raise ValueError('a model with relative actions needs the chunk-start proprio')
        return proprio[..., None, :]

    def normalize_actions(self, actions: torch.Tensor,
                          proprio: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Robot units -> model units for (..., K, A) action chunks.

        `proprio` (..., A) is the joint state at each chunk's start in robot units; a model
        with `executor.relative_actions` predicts the actions relative to it.
        """
        return (actions - self._action_reference(proprio) - self.action_mean) / self.action_std

    def denormalize_actions(self, actions: torch.Tensor,
                            proprio: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Model units -> robot units for (..., K, A) chunks (`normalize_actions` undone)."""
        return actions * self.action_std + self.action_mean + self._action_reference(proprio)

    def normalize_proprio(self, proprio: torch.Tensor) -> torch.Tensor:
        """Robot units -> model units for (..., A) joint positions."""
        return (proprio - self.proprio_mean) / self.proprio_std

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Encode (B, V, H, W, 3) uint8 views to (B, C, h, w) latents with the frozen AE."""
        return self.autoencoder.encode(images)

    def frame_position(self, steps: torch.Tensor) -> torch.Tensor:
        """Global temporal RoPE position of control steps: step / rope_steps_per_unit."""
        return steps.float() / self.config.rope_steps_per_unit

    def refresh(self, latents: torch.Tensor, steps: torch.Tensor, task_tokens: torch.Tensor,
                memory: Optional[KV] = None, memory_valid: Optional[torch.Tensor] = None) -> KV:
        """
        One planner refresh: the newest frame at t = 0 against the rolling memory.

        Parameters
        ----------
        latents : torch.Tensor
            (B, C, h, w) latents of the newest frame.
        steps : torch.Tensor
            (B,) control steps of the frame.
        task_tokens : torch.Tensor
            (B, Lt, Dt).
        memory : (torch.Tensor, torch.Tensor), optional
            (L, B, H, Mm, hd) stacked keys/values of earlier refreshes (`RollingKVMemory`).
        memory_valid : torch.Tensor, optional
            (B, Mm) bool; memory tokens to ignore are False (all are used when omitted).

        Returns
        -------
        keys, values : torch.Tensor
            (L, B, H, S, hd) the frame's layerwise context.

        """
        batch = latents.shape[0]
        timesteps = torch.zeros(batch, 1, device=latents.device)
        mask = None if memory_valid is None else frame_causal_mask(
            1, self.config.tokens_per_frame, memory_valid=memory_valid, device=latents.device)
        _, keys, values = self.planner(latents[:, None], timesteps,
                                       self.frame_position(steps)[:, None], task_tokens,
                                       memory=memory, attn_mask=mask, with_velocity=False)
        return torch.stack(keys), torch.stack(values)

    def edit_context(self, keys: torch.Tensor, values: torch.Tensor,
                     obs_latents: torch.Tensor) -> KV:
        """OVCR: edit (L, B, H, M, hd) context with (B, C, h, w) latest-frame latents."""
        return self.ovcr(keys, values, obs_latents)

    def prepare_executor(self, keys: torch.Tensor, values: torch.Tensor,
                         task_tokens: torch.Tensor, proprio: torch.Tensor) -> ExecutorCache:
        """Executor constants of one update; `proprio` is (B, A) in model units."""
        return self.executor.prepare(keys, values, task_tokens, proprio)

    def euler_plan(self, num_steps: int) -> EulerPlan:
        """Noise levels and all steps' executor modulations of an `num_steps` Euler solve."""
        sigmas = self.schedule.inference_sigmas(num_steps)
        device = self.action_mean.device
        timesteps = (T_SCALE * sigmas[:-1]).to(device)[:, None]  # (N, 1): batch broadcast
        layer_mod, head_mod = self.executor.step_modulations(timesteps)
        # The batch shares each step's timestep: drop the (B, 1) broadcast axes.
        return EulerPlan(sigmas, layer_mod[..., 0, 0, :], head_mod[..., 0, 0, :])

    def sample_actions(self, cache: ExecutorCache, num_steps: int,
                       noise: Optional[torch.Tensor] = None,
                       generator: Optional[torch.Generator] = None,
                       trajectory: Optional[List[torch.Tensor]] = None,
                       plan: Optional[EulerPlan] = None) -> torch.Tensor:
        """
        Integrate the executor with `num_steps` Euler steps of the shifted schedule.

        Parameters
        ----------
        cache : ExecutorCache
            From `prepare_executor` (batch B).
        num_steps : int
            Euler steps N.
        noise : torch.Tensor, optional
            (B, K, A) starting noise; drawn from `generator` when omitted.
        generator : torch.Generator, optional
            Source of the starting noise.
        trajectory : list, optional
            Receives every Euler state, (B, K, A) each (see `flow.euler_sample`).
        plan : EulerPlan, optional
            `euler_plan(num_steps)`, when the caller keeps one (it depends on the weights).

        Returns
        -------
        torch.Tensor
            (B, K, A) actions in model units.

        """
        if noise is None:
            batch = cache.context_keys.shape[1]
            shape = (batch, self.config.executor.chunk_len, self.config.executor.action_dim)
            noise = torch.randn(shape, generator=generator).to(cache.context_keys.device)
        plan = plan or self.euler_plan(num_steps)
        if len(plan.sigmas) != num_steps + 1:
            raise ValueError(f'EulerPlan has {len(plan.sigmas) - 1} steps, not {num_steps}')

        def velocity(x: torch.Tensor, i: int) -> torch.Tensor:
            return self.executor.velocity(x, plan.layer_mod[i], plan.head_mod[i], cache)

        return euler_sample(velocity, noise, plan.sigmas, trajectory)


def parameter_counts(model: AhaWamModel) -> Dict[str, int]:
    """Return parameters per module (autoencoder, task_encoder, planner, executor, ovcr)."""
    counts = {name: sum(p.numel() for p in child.parameters())
              for name, child in model.named_children()}
    counts['total'] = sum(counts.values())
    return counts
