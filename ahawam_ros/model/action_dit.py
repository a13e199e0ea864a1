"""
Action DiT, the executor.

One token per control step of a noisy K-step action chunk (Linear A -> Da), timestep adaLN,
1-D RoPE over the action positions, and, at every layer, joint attention of the action tokens
over [planner context keys/values of that layer ; the chunk's own keys/values]. The executor
has its own norms and Q/K/V/O projections, with the planner's number of layers and
heads x head_dim. Each block also cross-attends to the task tokens plus one proprioception
token (the joint state at the chunk start) and runs an MLP; a linear head maps back to A.
With `executor.context_adapter` the executor reads the context through its own keys and
position-coded values (`ExecutorConfig`, `adapt_context`); with a position loss in the
objective (`ObjectiveConfig`: the object's recorded position or the grasp point in hindsight),
a linear `object_head` reads that position from the mean action token (training only: the
auxiliary target that makes the executor look at the scene).

The executor runs N times per update, so it is kept lean: what does not change over the Euler
steps (context keys/values, cross-attention keys/values, RoPE factors) is computed once by
`prepare`; the modulations of all steps come from one call of `step_modulations` (and a policy
keeps them: they depend only on the weights); a batch-shared modulation is applied as
LayerNorm's own affine; the cross-attention has one head, its query and output projections
folded into the per-update conditioning.

Shapes: B batch (chunks), K chunk length, A action dim, Da executor width, H heads, hd head
dim, L layers, M context tokens, Lt task tokens, Dt task width.
"""

from dataclasses import dataclass
from typing import List, Optional, Tuple

from ahawam_ros.model.config import ModelConfig
from ahawam_ros.model.layers import (CrossAttention, init_dit_weights, Mlp, norm_modulate,
                                     QKNormRope, rope_factors_1d, TimestepEmbedder,
                                     xavier_linears)
import torch
from torch import nn
import torch.nn.functional as F

KV = Tuple[torch.Tensor, torch.Tensor]
POSITION_INIT_STD = 0.5  # initial std of the adapter's per-token key and value codes


@dataclass
class ExecutorCache:
    """
    Per-update constants of the executor, reused by every Euler step.

    Attributes
    ----------
    context_keys, context_values : torch.Tensor
        (L, B, H, M, hd) planner context (possibly OVCR-edited).
    cross : list of (torch.Tensor, torch.Tensor, torch.Tensor)
        L triples (B, Da, Lt + 1), (B, 1, Lt + 1), (B, Lt + 1, Da): the one-head
        cross-attention over [task tokens ; proprio token] with its query and output
        projections folded in (`CrossAttention.fold`).
    rope : torch.Tensor
        (K, 1, 1, hd / 2) complex 1-D RoPE factors of the action positions.

    """

    context_keys: torch.Tensor
    context_values: torch.Tensor
    cross: List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    rope: torch.Tensor


class ExecutorBlock(nn.Module):
    """One executor layer: joint attention over [context ; own], cross-attention, MLP."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        width, heads, hd = config.executor.width, config.num_heads, config.head_dim
        self.qkv = nn.Linear(width, 3 * heads * hd)
        self.qk = QKNormRope(heads, hd)
        self.proj = nn.Linear(heads * hd, width)
        self.cross_norm = nn.LayerNorm(width, eps=1e-6)
        # One head over the Lt + 1 conditioning tokens, so that its projections fold into the
        # per-update conditioning (`CrossAttention.fold`): 2 small matmuls per Euler step.
        self.cross = CrossAttention(width, config.task.width, 1)
        self.mlp = Mlp(width, int(width * config.executor.mlp_ratio))
        # (shift, scale, gate) for attention then MLP; added to the timestep modulation.
        self.modulation = nn.Parameter(torch.empty(6, width))

    def forward(self, x: torch.Tensor, mod: torch.Tensor, rope: torch.Tensor, context: KV,
                cross: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        """
        Run the layer on (B, K, Da) action tokens.

        `mod` is (6, B, 1, Da), or (6, Da) when shared by the batch: shift, 1 + scale, gate
        for attention, then for the MLP (see `ActionDiT.step_modulations`); `context` holds
        this layer's (B, H, M, hd) keys and values; `rope` is (K, 1, 1, hd / 2); `cross` is
        this layer's folded cross-attention (see `ExecutorCache`).
        """
        shift1, scale1, gate1, shift2, scale2, gate2 = mod  # (B, 1, Da) or (Da,) each
        h = norm_modulate(x, shift1, scale1)  # (B, K, Da)
        q, k, v = self.qk(self.qkv(h), rope)  # (B, H, K, hd)
        keys = torch.cat([context[0], k], dim=2)  # (B, H, M + K, hd)
        values = torch.cat([context[1], v], dim=2)
        out = F.scaled_dot_product_attention(q, keys, values)  # (B, H, K, hd)
        x = torch.addcmul(x, gate1, self.proj(out.transpose(1, 2).flatten(2)))  # (B, K, H hd)
        x = self.cross.attend_folded(self.cross_norm(x), cross, x)
        return torch.addcmul(x, gate2, self.mlp(norm_modulate(x, shift2, scale2)))


class ActionDiT(nn.Module):
    """
    The executor: a flow-matching DiT over one action chunk.

    Parameters
    ----------
    config : ModelConfig
        Uses `executor`, the shared attention geometry and `task.width`.

    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        width, action_dim = config.executor.width, config.executor.action_dim
        self.action_embed = nn.Linear(action_dim, width)
        self.proprio_embed = nn.Linear(action_dim, config.task.width)
        self.time_embed = TimestepEmbedder(width)
        self.time_proj = nn.Linear(width, 6 * width)
        self.blocks = nn.ModuleList(ExecutorBlock(config) for _ in range(config.num_layers))
        self.head_time_proj = nn.Linear(width, 2 * width)
        self.head_modulation = nn.Parameter(torch.empty(2, width))
        self.head = nn.Linear(width, action_dim)
        if config.executor.context_adapter:
            layers, heads, hd = config.num_layers, config.num_heads, config.head_dim
            tokens = config.tokens_per_frame
            self.context_key = nn.Parameter(torch.empty(layers, heads, hd, hd))
            self.context_key_pos = nn.Parameter(torch.empty(layers, heads, tokens, hd))
            self.context_value_pos = nn.Parameter(torch.empty(layers, heads, tokens, hd))
        if config.objective.position_loss_weight > 0:
            self.object_head = nn.Linear(width, config.objective.position_dim)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier linears, small timestep MLP, random modulation tables, zero output head."""
        init_dit_weights(self, self.config.executor.width)
        if self.config.executor.context_adapter:
            nn.init.normal_(self.context_key, std=self.config.head_dim ** -0.5)
            nn.init.normal_(self.context_key_pos, std=POSITION_INIT_STD)
            nn.init.normal_(self.context_value_pos, std=POSITION_INIT_STD)

    def reset_position_head(self) -> None:
        """
        Give the position head a fresh Xavier init sized for `config.objective` (or remove it).

        For an executor stage that learns another position target than the joint stage
        did (the head's output size may change: `objective.position_dim`); nothing else moves.
        """
        objective = self.config.objective
        if hasattr(self, 'object_head'):
            del self.object_head
        if objective.position_loss_weight > 0:
            device = self.head.weight.device
            self.object_head = nn.Linear(self.config.executor.width, objective.position_dim,
                                         device=device)
            xavier_linears(self.object_head)

    def adapt_context(self, keys: torch.Tensor, values: torch.Tensor) -> KV:
        """
        Return the executor's view of (L, B, H, M, hd) context keys and values.

        Without `context_adapter`, the planner's own. With it, keys are RMS-normalised
        per-head projections of the values plus a learned key per token (the planner's keys,
        rotated by the frame's absolute time, are not read) and values carry a learned
        per-token code, so what is read says where it was in the frame.
        """
        if not self.config.executor.context_adapter:
            return keys, values
        hd = self.config.head_dim
        projected = torch.einsum('lbhmd,lhde->lbhme', values, self.context_key)
        keys = F.rms_norm(projected, (hd,)) + self.context_key_pos[:, None]
        return keys, values + self.context_value_pos[:, None]

    def prepare(self, context_keys: torch.Tensor, context_values: torch.Tensor,
                task_tokens: torch.Tensor, proprio: torch.Tensor) -> ExecutorCache:
        """
        Precompute what stays fixed over the Euler steps of one update.

        Parameters
        ----------
        context_keys, context_values : torch.Tensor
            (L, B, H, M, hd) planner context; referenced, not copied.
        task_tokens : torch.Tensor
            (B, Lt, Dt).
        proprio : torch.Tensor
            (B, A) normalised joint state at the chunk start.

        Returns
        -------
        ExecutorCache

        """
        cond = torch.cat([task_tokens, self.proprio_embed(proprio)[:, None]], dim=1)
        cross = [block.cross.fold(cond) for block in self.blocks]
        rope = rope_factors_1d(self.config.executor.chunk_len, self.config.head_dim,
                               self.config.rope_theta, device=proprio.device)
        keys, values = self.adapt_context(context_keys, context_values)
        return ExecutorCache(keys, values, cross, rope)

    def step_modulations(self, timesteps: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Compute the timestep modulation of a batch of timesteps (e.g. all Euler steps).

        The scale rows already hold 1 + scale, and the batch axis sits where the blocks
        broadcast it, so a block does no modulation arithmetic of its own.

        Parameters
        ----------
        timesteps : torch.Tensor
            (..., B) timesteps in [0, 1000].

        Returns
        -------
        layer_mod : torch.Tensor
            (..., L, 6, B, 1, Da): per layer (shift, 1 + scale, gate) x (attention, MLP).
        head_mod : torch.Tensor
            (..., 2, B, 1, Da): (shift, 1 + scale) of the output head.

        """
        temb = F.silu(self.time_embed(timesteps))  # (..., B, Da)
        rows = self.time_proj(temb).unflatten(-1, (6, -1)).movedim(-2, -3)  # (..., 6, B, Da)
        table = torch.stack([block.modulation for block in self.blocks])  # (L, 6, Da)
        unit = temb.new_tensor([0.0, 1.0, 0.0, 0.0, 1.0, 0.0])[:, None, None, None]  # 1 + scale
        layer_mod = rows[..., None, :, :, None, :] + (table[:, :, None, None, :] + unit)
        head = self.head_time_proj(temb).unflatten(-1, (2, -1)).movedim(-2, -3)  # (.., 2, B, Da)
        head_unit = temb.new_tensor([0.0, 1.0])[:, None, None, None]
        head_mod = head[..., None, :] + (self.head_modulation[:, None, None, :] + head_unit)
        return layer_mod, head_mod

    def hidden(self, noisy_actions: torch.Tensor, layer_mod: torch.Tensor,
               cache: ExecutorCache) -> torch.Tensor:
        """(B, K, A) noisy actions -> (B, K, Da) tokens after the last block (`velocity`)."""
        x = self.action_embed(noisy_actions)  # (B, K, Da)
        layers = zip(self.blocks, layer_mod, cache.context_keys, cache.context_values,
                     cache.cross)
        for block, mod, keys, values, cross in layers:
            x = block(x, mod, cache.rope, (keys, values), cross)
        return x

    def velocity(self, noisy_actions: torch.Tensor, layer_mod: torch.Tensor,
                 head_mod: torch.Tensor, cache: ExecutorCache) -> torch.Tensor:
        """
        Predict the flow velocity of a noisy chunk.

        Parameters
        ----------
        noisy_actions : torch.Tensor
            (B, K, A) normalised noisy actions.
        layer_mod, head_mod : torch.Tensor
            (L, 6, B, 1, Da) and (2, B, 1, Da) from `step_modulations`, or (L, 6, Da) and
            (2, Da) when the whole batch shares one timestep.
        cache : ExecutorCache
            From `prepare`.

        Returns
        -------
        torch.Tensor
            (B, K, A) velocity.

        """
        return self._output(self.hidden(noisy_actions, layer_mod, cache), head_mod)

    def _output(self, x: torch.Tensor, head_mod: torch.Tensor) -> torch.Tensor:
        """(B, K, Da) last-block tokens -> (B, K, A) velocity through the modulated head."""
        shift, scale = head_mod
        return self.head(norm_modulate(x, shift, scale))

    def forward(self, noisy_actions: torch.Tensor, timesteps: torch.Tensor,
                cache: ExecutorCache) -> torch.Tensor:
        """Velocity of (B, K, A) noisy actions at (B,) timesteps; returns (B, K, A)."""
        return self.velocity_and_object(noisy_actions, timesteps, cache)[0]

    def velocity_and_object(self, noisy_actions: torch.Tensor, timesteps: torch.Tensor,
                            cache: ExecutorCache
                            ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """
        Like `forward`, plus the (B, P) positions read by `object_head` (training).

        P is `objective.position_dim`.

        The second output is None when the model has no object head.
        """
        layer_mod, head_mod = self.step_modulations(timesteps)
        x = self.hidden(noisy_actions, layer_mod, cache)
        velocity = self._output(x, head_mod)
        if not hasattr(self, 'object_head'):
            return velocity, None
        return velocity, self.object_head(x.mean(dim=1))
