"""
Video DiT, the world planner.

Latent frames are patchified (1 x p x p) into S tokens per frame. Every frame carries its own
diffusion timestep (the clean current frame and history frames: t = 0), so adaLN modulation is
per frame. Self-attention uses q/k RMSNorm and 3-D RoPE at global temporal positions, and is
per-frame causal: a token of frame f sees optional memory tokens and frames <= f only. Each
block also cross-attends to the task tokens and runs an MLP.

Every forward returns each layer's keys (after norm and RoPE) and values of all its frames;
the current frame's slice of them is the layerwise planner context.

Shapes: B batch, T frames, C latent channels, h x w latent grid, S = tokens per frame,
D planner width, H heads, hd head dim, L layers, Mm memory tokens, Lt task tokens.
"""

import math
from typing import List, Optional, Tuple

from ahawam_ros.model.config import ModelConfig
from ahawam_ros.model.layers import (CrossAttention, init_dit_weights, Mlp, modulate,
                                     QKNormRope, rope_factors_3d, TimestepEmbedder)
from einops import rearrange
import torch
from torch import nn
import torch.nn.functional as F

KV = Tuple[torch.Tensor, torch.Tensor]


def frame_causal_mask(num_frames: int, tokens_per_frame: int,
                      memory_valid: Optional[torch.Tensor] = None,
                      frame_valid: Optional[torch.Tensor] = None,
                      device=None) -> Optional[torch.Tensor]:
    """
    Boolean attention mask (True = may attend) for per-frame causal attention.

    Query token of frame f may attend to every valid memory token and to the tokens of frames
    <= f. With `frame_valid`, keys of invalid frames are hidden except from their own frame
    (so that no query row is empty).

    Parameters
    ----------
    num_frames, tokens_per_frame : int
        T and S.
    memory_valid : torch.Tensor, optional
        (B, Mm) bool validity of prepended memory tokens.
    frame_valid : torch.Tensor, optional
        (B, T) bool validity of the frames.
    device : torch.device, optional
        Where to build the mask.

    Returns
    -------
    torch.Tensor or None
        (B or 1, 1, T S, Mm + T S) bool, or None when nothing needs masking.

    """
    if num_frames == 1 and memory_valid is None and frame_valid is None:
        return None
    frame = torch.arange(num_frames, device=device).repeat_interleave(tokens_per_frame)  # (T S,)
    allowed = (frame[None, :] <= frame[:, None])[None]  # (1, T S q, T S k)
    if frame_valid is not None:
        key_valid = frame_valid.repeat_interleave(tokens_per_frame, dim=1)  # (B, T S)
        same = frame[None, :] == frame[:, None]  # (T S, T S)
        allowed = allowed & (key_valid[:, None, :] | same[None])  # (B, T S, T S)
    if memory_valid is not None:
        batch = max(allowed.shape[0], memory_valid.shape[0])
        memory = memory_valid[:, None, :].expand(batch, frame.numel(), -1)  # (B, T S, Mm)
        allowed = torch.cat([memory, allowed.expand(batch, -1, -1)], dim=-1)
    return allowed[:, None]


class PlannerBlock(nn.Module):
    """One planner layer: adaLN self-attention, task cross-attention, adaLN MLP."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        width, heads, hd = config.planner.width, config.num_heads, config.head_dim
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * heads * hd)
        self.qk = QKNormRope(heads, hd)
        self.proj = nn.Linear(heads * hd, width)
        self.cross_norm = nn.LayerNorm(width, eps=1e-6)
        # Task cross-attention needs no shared geometry: gcd heads divide any width.
        inner = config.planner.cross_width or width
        self.cross = CrossAttention(width, config.task.width, math.gcd(inner, heads), inner)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(width, int(width * config.planner.mlp_ratio))
        # (shift, scale, gate) for attention then MLP; added to the timestep modulation.
        self.modulation = nn.Parameter(torch.empty(6, width))

    def attention_inputs(self, x: torch.Tensor, mod: torch.Tensor, rope: torch.Tensor,
                         need_queries: bool = True) -> Tuple[Optional[torch.Tensor], ...]:
        """Return q (or None), k, v of shape (B, H, T S, hd) for (B, T, S, D) tokens."""
        h = modulate(self.norm1(x), mod[:, :, None, 0], mod[:, :, None, 1])  # (B, T, S, D)
        return self.qk(self.qkv(h).flatten(1, 2), rope, need_queries)  # from (B, T S, 3 H hd)

    def forward(self, x: torch.Tensor, mod: torch.Tensor, rope: torch.Tensor,
                task_kv: Optional[KV], memory: Optional[KV] = None,
                attn_mask: Optional[torch.Tensor] = None,
                kv_only: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Run the layer.

        Parameters
        ----------
        x : torch.Tensor
            (B, T, S, D) tokens.
        mod : torch.Tensor
            (B, T, 6, D) per-frame modulation (layer table + timestep projection).
        rope : torch.Tensor
            (B, T S, 1, 1, hd / 2) complex RoPE factors.
        task_kv : (torch.Tensor, torch.Tensor) or None
            Task cross-attention k, v (B, H, Lt, D / H); unused when `kv_only`.
        memory : (torch.Tensor, torch.Tensor), optional
            Prepended keys and values (B, H, Mm, hd).
        attn_mask : torch.Tensor, optional
            (B or 1, 1, T S, Mm + T S) bool, see `frame_causal_mask`.
        kv_only : bool
            Stop after computing k and v (the last layer of a context-only refresh).

        Returns
        -------
        x, k, v : torch.Tensor
            Updated (B, T, S, D) tokens (unchanged when `kv_only`), and this layer's keys and
            values (B, H, T S, hd).

        """
        q, k, v = self.attention_inputs(x, mod, rope, need_queries=not kv_only)
        if kv_only:
            return x, k, v
        keys = k if memory is None else torch.cat([memory[0], k], dim=2)  # (B, H, Mm + T S, hd)
        values = v if memory is None else torch.cat([memory[1], v], dim=2)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=attn_mask)
        out = rearrange(out, 'b h (t s) d -> b t s (h d)', t=x.shape[1])
        x = x + mod[:, :, None, 2] * self.proj(out)
        x = x + self.cross(self.cross_norm(x).flatten(1, 2), task_kv).view_as(x)
        h = modulate(self.norm2(x), mod[:, :, None, 3], mod[:, :, None, 4])
        return x + mod[:, :, None, 5] * self.mlp(h), k, v


class VideoDiT(nn.Module):
    """
    The world planner: per-frame-timestep DiT over patchified latent frames.

    Parameters
    ----------
    config : ModelConfig
        Uses `planner`, the shared attention geometry, `task.width` and the latent geometry.

    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        width = config.planner.width
        patch_dim = config.autoencoder.latent_channels * config.planner.patch_size ** 2
        self.patch_embed = nn.Linear(patch_dim, width)
        time_width = config.planner.time_width or width
        self.time_embed = TimestepEmbedder(time_width)
        self.time_proj = nn.Linear(time_width, 6 * width)
        self.blocks = nn.ModuleList(PlannerBlock(config) for _ in range(config.num_layers))
        self.head_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.head_time_proj = nn.Linear(time_width, 2 * width)
        self.head_modulation = nn.Parameter(torch.empty(2, width))
        self.head = nn.Linear(width, patch_dim)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier linears, small timestep MLP, random modulation tables, zero output head."""
        init_dit_weights(self, self.config.planner.width)

    def patchify(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, T, C, h, w) latents -> (B, T, S, C p p) patches."""
        p = self.config.planner.patch_size
        return rearrange(latents, 'b t c (y p) (x q) -> b t (y x) (c p q)', p=p, q=p)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, T, S, C p p) patches -> (B, T, C, h, w) latents."""
        p = self.config.planner.patch_size
        rows, cols = self.config.patch_grid
        return rearrange(patches, 'b t (y x) (c p q) -> b t c (y p) (x q)', y=rows, x=cols,
                         p=p, q=p)

    def rope(self, frame_positions: torch.Tensor) -> torch.Tensor:
        """(B, T) float temporal positions -> (B, T S, 1, 1, hd / 2) complex 3-D RoPE factors."""
        rows, cols = self.config.patch_grid
        device = frame_positions.device
        grid = torch.stack(torch.meshgrid(torch.arange(rows, device=device),
                                          torch.arange(cols, device=device), indexing='ij'),
                           dim=-1).flatten(0, 1).float()  # (S, 2)
        batch, frames = frame_positions.shape
        time = frame_positions.float()[:, :, None, None].expand(-1, -1, grid.shape[0], 1)
        space = grid.expand(batch, frames, -1, -1)  # (B, T, S, 2)
        positions = torch.cat([time, space], dim=-1).flatten(1, 2)  # (B, T S, 3)
        return rope_factors_3d(positions, self.config.head_dim, self.config.rope_theta)

    def forward(self, latents: torch.Tensor, timesteps: torch.Tensor,
                frame_positions: torch.Tensor, task_tokens: torch.Tensor,
                memory: Optional[KV] = None, attn_mask: Optional[torch.Tensor] = None,
                with_velocity: bool = True
                ) -> Tuple[Optional[torch.Tensor], List[torch.Tensor], List[torch.Tensor]]:
        """
        Run the planner over T frames.

        Parameters
        ----------
        latents : torch.Tensor
            (B, T, C, h, w) latent frames (clean or noisy).
        timesteps : torch.Tensor
            (B, T) per-frame diffusion timesteps in [0, 1000] (0 for clean frames).
        frame_positions : torch.Tensor
            (B, T) global temporal RoPE positions (control step / rope_steps_per_unit).
        task_tokens : torch.Tensor
            (B, Lt, Dt).
        memory : (torch.Tensor, torch.Tensor), optional
            Keys and values (L, B, H, Mm, hd) prepended at every layer.
        attn_mask : torch.Tensor, optional
            See `frame_causal_mask`; None means every token sees all memory and all frames.
        with_velocity : bool
            False: a context-only pass; the last layer stops after its keys and values.

        Returns
        -------
        velocity : torch.Tensor or None
            (B, T, C, h, w) predicted flow velocity (None without `with_velocity`).
        keys, values : list of torch.Tensor
            L tensors (B, H, T S, hd): every layer's keys (post norm and RoPE) and values.

        """
        x = self.patch_embed(self.patchify(latents))  # (B, T, S, D)
        temb = F.silu(self.time_embed(timesteps))  # (B, T, D)
        time_mod = self.time_proj(temb).unflatten(-1, (6, -1))  # (B, T, 6, D)
        rope = self.rope(frame_positions)
        keys, values = [], []
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            kv_only = i == last and not with_velocity
            task_kv = None if kv_only else block.cross.project_kv(task_tokens)
            layer_memory = None if memory is None else (memory[0][i], memory[1][i])
            x, k, v = block(x, block.modulation + time_mod, rope, task_kv, layer_memory,
                            attn_mask, kv_only)
            keys.append(k)
            values.append(v)
        if not with_velocity:
            return None, keys, values
        head_mod = self.head_time_proj(temb).unflatten(-1, (2, -1)) + self.head_modulation
        h = modulate(self.head_norm(x), head_mod[:, :, None, 0], head_mod[:, :, None, 1])
        return self.unpatchify(self.head(h)), keys, values
