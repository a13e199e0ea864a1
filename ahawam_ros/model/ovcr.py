"""
OVCR: observation-guided video-context routing.

Adapts a cached (possibly stale) planner context to the latest observation, once per chunk,
without rerunning the video DiT:

1. the latest frame's latent patches -> LayerNorm, MLP (+ learned positions) -> observation
   tokens u (B, S, Do);
2. Q learned base queries attend (single head) over u, an MLP refines them -> q (B, Q, Do);
3. per layer l with context K0, V0 (M tokens of width W = H hd): routing queries
   Q_l = Lin_l(LN(q)); read R = softmax_M(Q_l K0^T / sqrt(W)) V0 (Q, W); write back
   D = softmax_Q(K0 R^T / sqrt(W)) R (M, W); [dK, dV] = MLP_l(LN_l(D)) with a zero-initialised
   last layer; K~ = K0 + sigmoid(g_l) dK, V~ = V0 + sigmoid(g_l) dV, g_l initialised to -4.

OVCR sits on the executor's critical path, so it is computed lean but exactly as above: the
per-layer weights are stacked on a leading L axis (all layers in one batched op); scores are
taken per head and summed, so the (head-major) context is never re-laid out; the write-back D
is never materialised (`delta_hidden`); the delta MLP is low-rank, W -> `delta_rank` -> 2 W;
gate and bias are folded into its output weights.

Shapes: B batch, L layers, H heads, hd head dim, M context tokens, W = H hd, Q queries,
Do observation width, r delta rank, C latent channels, h x w latent grid.
"""

from typing import Tuple

from ahawam_ros.model.config import ModelConfig
from ahawam_ros.model.layers import Mlp, xavier_linears
from einops import rearrange, repeat
import torch
from torch import nn
import torch.nn.functional as F

LAYER_NORM_EPS = 1e-5  # of the per-layer LayerNorm LN_l


class Ovcr(nn.Module):
    """
    Observation-guided video-context routing with stacked per-layer parameters.

    Parameters
    ----------
    config : ModelConfig
        Uses `ovcr`, the latent/patch geometry and the attention geometry.

    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        cfg = config.ovcr
        layers, width, obs = config.num_layers, config.attn_width, cfg.obs_width
        patch_dim = config.autoencoder.latent_channels * config.planner.patch_size ** 2
        self.obs_norm = nn.LayerNorm(patch_dim)
        self.obs_mlp = nn.Sequential(nn.Linear(patch_dim, obs), nn.GELU(), nn.Linear(obs, obs))
        self.obs_pos = nn.Parameter(torch.empty(config.tokens_per_frame, obs))
        self.base_queries = nn.Parameter(torch.empty(cfg.num_queries, obs))
        self.query_key = nn.Linear(obs, obs)
        self.query_value = nn.Linear(obs, obs)
        self.refine_norm = nn.LayerNorm(obs)
        self.refine = Mlp(obs, 2 * obs)
        self.route_norm = nn.LayerNorm(obs)
        self.route_weight = nn.Parameter(torch.empty(layers, obs, width))
        self.route_bias = nn.Parameter(torch.empty(layers, width))
        self.delta_norm_weight = nn.Parameter(torch.empty(layers, width))
        self.delta_norm_bias = nn.Parameter(torch.empty(layers, width))
        self.delta_in = nn.Parameter(torch.empty(layers, width, cfg.delta_rank))
        self.delta_in_bias = nn.Parameter(torch.empty(layers, cfg.delta_rank))
        self.delta_out = nn.Parameter(torch.empty(layers, cfg.delta_rank, 2 * width))
        self.delta_out_bias = nn.Parameter(torch.empty(layers, 2 * width))
        self.gate = nn.Parameter(torch.empty(layers))
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Initialise all weights; with `delta_init_std` 0 OVCR starts as the identity."""
        xavier_linears(self)
        nn.init.normal_(self.obs_pos, std=0.02)
        nn.init.normal_(self.base_queries, std=1.0)
        obs, width = self.route_weight.shape[1:]
        nn.init.normal_(self.route_weight, std=obs ** -0.5)
        nn.init.zeros_(self.route_bias)
        nn.init.ones_(self.delta_norm_weight)
        nn.init.zeros_(self.delta_norm_bias)
        nn.init.normal_(self.delta_in, std=width ** -0.5)
        nn.init.zeros_(self.delta_in_bias)
        # Zero by default (the paper): at initialisation the executor sees the unedited
        # context. A small std gives the gate a gradient from the start.
        nn.init.normal_(self.delta_out, std=self.config.ovcr.delta_init_std)
        nn.init.zeros_(self.delta_out_bias)
        nn.init.constant_(self.gate, self.config.ovcr.gate_init)

    def observation_queries(self, obs_latents: torch.Tensor) -> torch.Tensor:
        """Map (B, C, h, w) latents of the latest frame to (B, Q, Do) routing queries."""
        p = self.config.planner.patch_size
        patches = rearrange(obs_latents, 'b c (y p) (x q) -> b (y x) (c p q)', p=p, q=p)
        u = self.obs_mlp(self.obs_norm(patches)) + self.obs_pos  # (B, S, Do)
        base = self.base_queries.expand(u.shape[0], -1, -1)  # (B, Q, Do)
        read = F.scaled_dot_product_attention(base, self.query_key(u), self.query_value(u))
        queries = base + read  # (B, Q, Do)
        return queries + self.refine(self.refine_norm(queries))

    def delta_hidden(self, back: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
        """
        Hidden layer of the delta MLP, GELU(LN_l(D) W_in + b_in), without materialising D.

        D = back @ read is (M, W) per layer; LayerNorm statistics and the first projection
        follow from read (Q, W) alone: mean(D_m) = back_m . mean(read), E[D_m ^ 2] =
        back_m^T (read read^T / W) back_m, and LN(D) W_in = (back (read (g * W_in)) -
        mean(D) sum_w(g * W_in)) / std(D) + beta W_in.

        Parameters
        ----------
        back : torch.Tensor
            (L, B, M, Q) write-back weights (rows sum to 1).
        read : torch.Tensor
            (L, B, Q, W) what the queries read.

        Returns
        -------
        torch.Tensor
            (L, B, M, r).

        """
        width = read.shape[-1]
        mean = back @ read.mean(dim=-1, keepdim=True)  # (L, B, M, 1)
        gram = read @ read.transpose(-1, -2) / width  # (L, B, Q, Q)
        second = ((back @ gram) * back).sum(dim=-1, keepdim=True)  # (L, B, M, 1)
        inv_std = torch.rsqrt((second - mean.pow(2)).clamp_min(0.0) + LAYER_NORM_EPS)
        scaled_in = self.delta_norm_weight[:, :, None] * self.delta_in  # (L, W, r)
        hidden = back @ (read @ scaled_in[:, None])  # (L, B, M, r)
        hidden = (hidden - mean * scaled_in.sum(dim=1)[:, None, None]) * inv_std
        bias = (self.delta_norm_bias[:, None] @ self.delta_in)[:, 0] + self.delta_in_bias  # (L, r)
        return F.gelu(hidden + bias[:, None, None], approximate='tanh')

    def forward(self, keys: torch.Tensor, values: torch.Tensor,
                obs_latents: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Edit a planner context with the latest observation.

        Parameters
        ----------
        keys, values : torch.Tensor
            (L, B, H, M, hd) cached planner context; not modified.
        obs_latents : torch.Tensor
            (B, C, h, w) normalised latents of the latest frame.

        Returns
        -------
        keys, values : torch.Tensor
            New (L, B, H, M, hd) edited context.

        """
        batch, heads, head_dim = keys.shape[1], keys.shape[2], keys.shape[4]
        scale = (heads * head_dim) ** -0.5  # full-width dot products, 1 / sqrt(W)
        q = self.route_norm(self.observation_queries(obs_latents))  # (B, Q, Do)
        routes = torch.einsum('bqo,low->lbqw', q, self.route_weight)  # (L, B, Q, W)
        routes = rearrange(routes + self.route_bias[:, None, None], 'l b q (h d) -> l b h q d',
                           h=heads)
        # Per-head dot products summed over heads = full-width products, without re-laying
        # the context out token-major.
        scores = (routes @ keys.transpose(-1, -2)).sum(dim=2) * scale  # (L, B, Q, M)
        read = torch.softmax(scores, dim=-1)[:, :, None] @ values  # (L, B, H, Q, hd)
        back = (keys @ read.transpose(-1, -2)).sum(dim=2) * scale  # (L, B, M, Q)
        read = rearrange(read, 'l b h q d -> l b q (h d)')
        hidden = self.delta_hidden(torch.softmax(back, dim=-1), read)  # (L, B, M, r)
        # Gate and bias folded into the output weights, residual fused: one op per tensor.
        out = torch.cat([self.delta_out, self.delta_out_bias[:, None]], dim=1)  # (L, r + 1, 2W)
        out = torch.sigmoid(self.gate)[:, None, None] * out
        out = repeat(out, 'l r (two h d) -> two (l b h) r d', two=2, h=heads, b=batch)
        hidden = repeat(F.pad(hidden, (0, 1), value=1.0), 'l b m r -> (l b h) m r', h=heads)
        edited = [torch.baddbmm(base.reshape(hidden.shape[0], *base.shape[3:]), hidden, weight)
                  for base, weight in ((keys, out[0]), (values, out[1]))]  # (L B H, M, hd)
        return edited[0].view_as(keys), edited[1].view_as(values)
