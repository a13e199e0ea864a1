"""
Building blocks shared by the two DiTs and OVCR.

Sinusoidal timestep embedding, adaLN modulation, rotary position embedding (1-D and 3-D, as
complex rotation factors), fused q/k RMSNorm + RoPE, an MLP, and cross-attention. Attention
tensors use the layout of `scaled_dot_product_attention`: (B, heads, N, head_dim).
"""

import math
from typing import Optional, Tuple

from einops import rearrange
import torch
from torch import nn
import torch.nn.functional as F


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """
    Sinusoidal embedding of diffusion timesteps.

    Parameters
    ----------
    t : torch.Tensor
        (...) float timesteps in [0, 1000].
    dim : int
        Even embedding width.
    max_period : float
        Longest sinusoid period.

    Returns
    -------
    torch.Tensor
        (..., dim) float32.

    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    angles = t.float()[..., None] * freqs  # (..., dim / 2)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class TimestepEmbedder(nn.Module):
    """Timestep -> width-D vector: sinusoid, then a two-layer MLP."""

    def __init__(self, width: int, frequency_dim: int = 256):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(
            nn.Linear(frequency_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Map (...) timesteps to (..., D)."""
        return self.mlp(timestep_embedding(t, self.frequency_dim))


def xavier_linears(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every nn.Linear inside `module`."""
    for child in module.modules():
        if isinstance(child, nn.Linear):
            nn.init.xavier_uniform_(child.weight)
            nn.init.zeros_(child.bias)


def init_dit_weights(dit: nn.Module, width: int) -> None:
    """
    Initialise a DiT (planner or executor) the same way.

    Xavier linears, a small timestep MLP, random per-block and head modulation tables, and a
    zero output head. `dit` has `time_embed`, `blocks` (each with `modulation`),
    `head_modulation` and `head`.
    """
    xavier_linears(dit)
    for linear in (dit.time_embed.mlp[0], dit.time_embed.mlp[2]):
        nn.init.normal_(linear.weight, std=0.02)
    for block in dit.blocks:
        nn.init.normal_(block.modulation, std=width ** -0.5)
    nn.init.normal_(dit.head_modulation, std=width ** -0.5)
    # Zero head: training starts from a zero velocity instead of a random field.
    nn.init.zeros_(dit.head.weight)
    nn.init.zeros_(dit.head.bias)


class Mlp(nn.Module):
    """Two-layer GELU MLP, D -> hidden -> D."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate='tanh'))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Apply adaLN modulation x * (1 + scale) + shift (shift/scale broadcast against x)."""
    return torch.addcmul(shift, x, 1.0 + scale)


def norm_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor,
                  eps: float = 1e-6) -> torch.Tensor:
    """
    Normalise the last dimension (LayerNorm, no affine), then modulate by x * scale + shift.

    `scale` already holds 1 + scale. A batch-shared modulation of shape (D,) (every Euler
    step at inference) is passed as LayerNorm's own affine, one op instead of two on the
    executor's per-step path; otherwise shift/scale broadcast against x.
    """
    width = scale.shape[-1]  # not x's: a traced graph then holds no shape arithmetic here
    if shift.dim() == 1:
        return F.layer_norm(x, (width,), scale, shift, eps)
    return torch.addcmul(shift, F.layer_norm(x, (width,), eps=eps), scale)


def _inverse_frequencies(dim: int, theta: float, device: torch.device) -> torch.Tensor:
    """(dim / 2,) RoPE inverse frequencies for an axis of `dim` channels."""
    return theta ** (-torch.arange(0, dim, 2, device=device, dtype=torch.float64) / dim)


def _polar(angles: torch.Tensor) -> torch.Tensor:
    """(..., P) float64 angles -> (..., 1, 1, P) complex64 factors (broadcast over q/k, heads)."""
    return torch.polar(torch.ones_like(angles), angles).to(torch.complex64)[..., None, None, :]


def rope_axis_dims(head_dim: int) -> Tuple[int, int, int]:
    """Split an even head_dim into (time, height, width) RoPE channels, Wan-style."""
    spatial = 2 * (head_dim // 6)
    return head_dim - 2 * spatial, spatial, spatial


def rope_factors_3d(positions: torch.Tensor, head_dim: int, theta: float) -> torch.Tensor:
    """
    Complex rotation factors of 3-D RoPE.

    Parameters
    ----------
    positions : torch.Tensor
        (..., N, 3) float positions (time, row, column) of N tokens.
    head_dim : int
        Channels per head.
    theta : float
        RoPE base.

    Returns
    -------
    torch.Tensor
        (..., N, 1, 1, head_dim / 2) complex64.

    """
    angles = [positions[..., axis, None].double() * _inverse_frequencies(dim, theta,
                                                                         positions.device)
              for axis, dim in enumerate(rope_axis_dims(head_dim))]
    return _polar(torch.cat(angles, dim=-1))  # from (..., N, head_dim / 2) angles


def rope_factors_1d(num_positions: int, head_dim: int, theta: float,
                    device: Optional[torch.device] = None) -> torch.Tensor:
    """Complex factors (N, 1, 1, head_dim / 2) of 1-D RoPE at positions 0 .. N - 1."""
    positions = torch.arange(num_positions, device=device, dtype=torch.float64)
    return _polar(positions[:, None] * _inverse_frequencies(head_dim, theta, device))


def apply_rope(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """
    Rotate channel pairs of `x` by complex `factors`.

    Parameters
    ----------
    x : torch.Tensor
        (B, N, ..., head_dim), contiguous in the last dimension (rotated in float32).
    factors : torch.Tensor
        Complex64, broadcastable to (B, N, ..., head_dim / 2).

    Returns
    -------
    torch.Tensor
        Shape of `x`.

    """
    if x.dtype != torch.float32:  # e.g. bf16 autocast: complex maths needs float32
        return apply_rope(x.float(), factors).to(x.dtype)
    pairs = torch.view_as_complex(x.unflatten(-1, (-1, 2)))  # (B, N, ..., hd / 2)
    return torch.view_as_real(pairs * factors).flatten(-2)


class QKNormRope(nn.Module):
    """
    Split a fused qkv projection; q/k RMSNorm (own scales) and RoPE; attention layout.

    q and k are normalised and rotated together, one op each, since this sits on the
    executor's per-step path. The RMSNorm is taken as sqrt(hd) x / max(||x||, eps): one norm
    kernel instead of rms_norm's five, equal to x / sqrt(mean(x^2) + eps) up to that eps
    (~1e-6 relative).
    """

    def __init__(self, num_heads: int, head_dim: int, eps: float = 1e-6):
        super().__init__()
        self.num_heads, self.head_dim, self.eps = num_heads, head_dim, eps
        self.weight = nn.Parameter(torch.ones(2, 1, head_dim))  # (q/k, heads, hd) scales

    def forward(self, qkv: torch.Tensor, rope: torch.Tensor, need_queries: bool = True
                ) -> Tuple[Optional[torch.Tensor], torch.Tensor, torch.Tensor]:
        """
        Turn (B, N, 3 H hd) projections into q (None unless needed), k, v of (B, H, N, hd).

        `rope`: complex factors broadcastable to (B, N, 1, 1, hd / 2).
        """
        qkv = qkv.unflatten(-1, (3, self.num_heads, self.head_dim))  # (B, N, 3, H, hd)
        first = 0 if need_queries else 1
        qk = F.normalize(qkv[:, :, first:2], dim=-1, eps=self.eps)  # unit rows
        scale = self.weight[first:] * self.head_dim ** 0.5  # (2 - first, 1, hd): unit -> rms 1
        qk = apply_rope(qk * scale, rope)  # (B, N, 2 - first, H, hd)
        qk = qk.permute(2, 0, 3, 1, 4)  # (2 - first, B, H, N, hd)
        v = qkv[:, :, 2].transpose(1, 2)  # (B, H, N, hd)
        return (qk[0] if need_queries else None), qk[-1], v


class CrossAttention(nn.Module):
    """
    Multi-head cross-attention from D-wide queries to conditioning tokens.

    The key/value projection is separate (`project_kv`) so callers can compute it once per
    conditioning and reuse it (the executor reuses it over all Euler steps).
    """

    def __init__(self, width: int, cond_width: int, num_heads: int, inner_width: int = 0):
        super().__init__()
        inner = inner_width or width  # attention width; narrower than D saves parameters
        self.num_heads = num_heads
        self.q = nn.Linear(width, inner)
        self.kv = nn.Linear(cond_width, 2 * inner)
        self.out = nn.Linear(inner, width)

    def project_kv(self, cond: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Map (B, Lc, Dc) conditioning tokens to k, v of shape (B, heads, Lc, D / heads)."""
        kv = rearrange(self.kv(cond), 'b l (two h d) -> two b h l d', two=2, h=self.num_heads)
        return kv[0], kv[1]

    def fold(self, cond: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Fold the query and output projections into one head's conditioning (`attend_folded`).

        With k, v = `project_kv(cond)`: scores = (x Wq^T + bq) k^T / sqrt(D) = x A + a, and
        softmax(scores) v Wo^T + bo = softmax(scores) U with U = v Wo^T + bo, since the rows of
        a softmax sum to 1. Two small matmuls per call instead of two linears and an attention.

        Returns
        -------
        weight, bias, out : torch.Tensor
            A (B, D, Lc), a (B, 1, Lc) and U (B, Lc, D) of (B, Lc, Dc) conditioning tokens.

        """
        if self.num_heads != 1:
            raise ValueError(f'only a one-head cross-attention folds, not {self.num_heads}')
        keys, values = (t[:, 0] for t in self.project_kv(cond))  # (B, Lc, D) each
        scale = keys.shape[-1] ** -0.5
        weight = (keys @ self.q.weight).transpose(1, 2) * scale  # (B, D, Lc)
        bias = (keys @ self.q.bias)[:, None] * scale  # (B, 1, Lc)
        return weight, bias, self.out(values)

    @staticmethod
    def attend_folded(x: torch.Tensor, folded: Tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                      residual: torch.Tensor) -> torch.Tensor:
        """Return residual + attention of (B, N, D) queries `x`, given `fold(cond)`."""
        weight, bias, out = folded
        scores = torch.baddbmm(bias, x, weight)  # (B, N, Lc)
        return torch.baddbmm(residual, torch.softmax(scores, dim=-1), out)

    def forward(self, x: torch.Tensor, kv: Tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Attend from (B, N, D) queries to precomputed `kv`; returns (B, N, D)."""
        if self.num_heads == 1:  # no head split: two fewer ops each way
            out = F.scaled_dot_product_attention(self.q(x)[:, None], kv[0], kv[1])
            return self.out(out[:, 0])  # (B, N, D)
        q = rearrange(self.q(x), 'b n (h d) -> b h n d', h=self.num_heads)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])  # (B, heads, N, D / heads)
        return self.out(rearrange(out, 'b h n d -> b n (h d)'))
