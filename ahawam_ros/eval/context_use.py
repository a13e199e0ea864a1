"""
How much the executor uses the planner context: attention, OVCR and gradient figures.

Diagnostics of issue 10 (a policy that follows its proprio and ignores the context):

- `attention_figures`: per Euler step and layer, the attention probability the K chunk tokens
  put on the M context tokens (against their own K), the same per token (uniform attention
  gives 1), the share of the attention output norm that comes from the context values, the
  attention branch's residual update against the residual, and the cross-attention's
  probability on the proprio token (against the task tokens).
- `ovcr_figures`: sigmoid of each layer's OVCR gate and the norm of its edit against the
  context's norm.
- `gradient_figures`: on a training batch, the action loss's gradient norms with respect to the
  context (as the executor's OVCR receives it), the OVCR-edited context, the normalised proprio
  and the proprio token, and per parameter group; whether the context carries gradients.

Shapes: B batch, L layers, H heads, hd head dim, M context tokens, K chunk length, A action
dim, N Euler steps, Lt task tokens.
"""

from dataclasses import replace
from typing import Dict, List

from ahawam_ros.model.action_dit import ExecutorCache
from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.flow import euler_sample
from ahawam_ros.model.layers import norm_modulate
from ahawam_ros.model.losses import compute_losses
import numpy as np
import torch

ATTENTION_KEYS = ('context_mass', 'per_token_ratio', 'context_output_share',
                  'attention_update', 'proprio_mass')


def _block_figures(block, x: torch.Tensor, mod: torch.Tensor, rope: torch.Tensor,
                   keys: torch.Tensor, values: torch.Tensor, cross) -> List[float]:
    """Return the `ATTENTION_KEYS` figures of one executor layer on (B, K, Da) tokens."""
    shift1, scale1, gate1 = mod[:3]
    q, k, v = block.qk(block.qkv(norm_modulate(x, shift1, scale1)), rope)  # (B, H, K, hd)
    scores = q @ torch.cat([keys, k], dim=2).transpose(-1, -2) * q.shape[-1] ** -0.5
    probs = torch.softmax(scores, dim=-1)  # (B, H, K, M + K)
    context = keys.shape[2]
    mass = probs[..., :context].sum(dim=-1)  # (B, H, K)
    own = (1.0 - mass).clamp_min(1e-12)
    ratio = (mass / context) / (own / k.shape[2])
    from_context = (probs[..., :context] @ values).norm(dim=-1)  # (B, H, K)
    from_own = (probs[..., context:] @ v).norm(dim=-1)
    share = from_context / (from_context + from_own).clamp_min(1e-12)
    attended = probs @ torch.cat([values, v], dim=2)  # (B, H, K, hd)
    update = gate1 * block.proj(attended.transpose(1, 2).flatten(2))  # (B, K, Da)
    relative = update.norm(dim=-1) / x.norm(dim=-1).clamp_min(1e-12)
    weight, bias, _ = cross
    cross_scores = torch.baddbmm(bias, block.cross_norm(x + update), weight)  # (B, K, Lt + 1)
    proprio = torch.softmax(cross_scores, dim=-1)[..., -1]
    return [float(t.mean()) for t in (mass, ratio, share, relative, proprio)]


@torch.no_grad()
def attention_figures(model: AhaWamModel, cache: ExecutorCache, noise: torch.Tensor,
                      num_steps: int) -> np.ndarray:
    """
    Run an N-step Euler solve and measure every layer's attention at every step.

    Parameters
    ----------
    model : AhaWamModel
        Any state; run as is.
    cache : ExecutorCache
        From `prepare_executor` (context possibly OVCR-edited), batch B.
    noise : torch.Tensor
        (B, K, A) starting noise.
    num_steps : int
        Euler steps N.

    Returns
    -------
    np.ndarray
        (N, L, 5) figures in the order of `ATTENTION_KEYS`, averaged over B, heads and K.

    """
    plan = model.euler_plan(num_steps)
    executor = model.executor
    figures: List[List[List[float]]] = []

    def velocity(actions: torch.Tensor, i: int) -> torch.Tensor:
        x = executor.action_embed(actions)
        rows = []
        layers = zip(executor.blocks, plan.layer_mod[i], cache.context_keys,
                     cache.context_values, cache.cross)
        for block, mod, keys, values, cross in layers:
            rows.append(_block_figures(block, x, mod, cache.rope, keys, values, cross))
            x = block(x, mod, cache.rope, (keys, values), cross)
        figures.append(rows)
        shift, scale = plan.head_mod[i]
        return executor.head(norm_modulate(x, shift, scale))

    euler_sample(velocity, noise, plan.sigmas)
    return np.asarray(figures)


@torch.no_grad()
def ovcr_figures(model: AhaWamModel, keys: torch.Tensor, values: torch.Tensor,
                 obs_latents: torch.Tensor) -> Dict[str, np.ndarray]:
    """
    Return the OVCR gates and edit sizes of one context.

    Parameters
    ----------
    model : AhaWamModel
        Any state; its OVCR edits the context.
    keys, values : torch.Tensor
        (L, B, H, M, hd) planner context.
    obs_latents : torch.Tensor
        (B, C, h, w) latents of the latest frame.

    Returns
    -------
    dict
        'gate_logit', 'gate' (L,); 'key_delta', 'value_delta' (L,): ||edited - context|| /
        ||context|| per layer (norms over B, H, M, hd).

    """
    edited_keys, edited_values = model.edit_context(keys, values, obs_latents)

    def relative(edited: torch.Tensor, base: torch.Tensor) -> np.ndarray:
        return ((edited - base).flatten(1).norm(dim=1) / base.flatten(1).norm(dim=1)).numpy()

    gate = model.ovcr.gate.detach()
    return {'gate_logit': gate.numpy().copy(), 'gate': torch.sigmoid(gate).numpy(),
            'key_delta': relative(edited_keys, keys),
            'value_delta': relative(edited_values, values)}


class _Captures:
    """Forward hooks that keep the context and proprio tensors of a loss pass for autograd."""

    def __init__(self, model: AhaWamModel):
        self.tensors: Dict[str, torch.Tensor] = {}
        self.handles = [model.ovcr.register_forward_hook(self._ovcr),
                        model.executor.proprio_embed.register_forward_pre_hook(self._proprio),
                        model.executor.proprio_embed.register_forward_hook(self._token)]

    def _keep(self, name: str, tensor: torch.Tensor) -> None:
        if tensor.requires_grad:
            tensor.retain_grad()
        self.tensors[name] = tensor

    def _ovcr(self, module, inputs, outputs) -> None:
        self._keep('context_keys', inputs[0])
        self._keep('context_values', inputs[1])
        self._keep('edited_keys', outputs[0])
        self._keep('edited_values', outputs[1])

    def _proprio(self, module, inputs):
        proprio = inputs[0].detach().clone().requires_grad_(True)
        self.tensors['proprio'] = proprio
        return (proprio,)

    def _token(self, module, inputs, output) -> None:
        self._keep('proprio_token', output)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


PARAMETER_GROUPS = {
    'executor.qkv (queries read the context)': lambda n: '.qkv.' in n and 'executor' in n,
    'executor.proprio_embed': lambda n: 'proprio_embed' in n,
    'executor.cross (task + proprio)': lambda n: '.cross.' in n and 'executor' in n,
    'executor (all)': lambda n: n.startswith('executor.'),
    'ovcr (all)': lambda n: n.startswith('ovcr.'),
    'ovcr.gate': lambda n: n == 'ovcr.gate',
    'planner (all)': lambda n: n.startswith('planner.'),
}


def gradient_figures(model: AhaWamModel, batch: Dict[str, torch.Tensor],
                     seed: int = 0) -> Dict[str, Dict[str, float]]:
    """
    Backpropagate the action loss alone of one training batch and measure gradient norms.

    The model is switched to training mode with a zero video-loss weight for the pass (its
    config is restored after, and it is left in eval mode), so every gradient is the action
    loss's; its gradients are cleared after.

    Parameters
    ----------
    model : AhaWamModel
        The model to probe (any weights; its autoencoder stays frozen).
    batch : dict of str to torch.Tensor
        A collated training batch (`sample_builder`), on the model's device.
    seed : int
        Seeds the timesteps and noise of the pass.

    Returns
    -------
    dict
        'inputs': per captured tensor (context_keys, context_values, edited_keys,
        edited_values, proprio, proprio_token): 'grad_norm', 'norm', 'grad_x_input' (sum of
        |grad * value|, the first-order effect) and 'requires_grad' (1 or 0);
        'parameters': per `PARAMETER_GROUPS` name, the gradient norm; 'loss': action loss.

    """
    config = model.config
    model.config = replace(config, objective=replace(config.objective, video_loss_weight=0.0))
    captures = _Captures(model)
    try:
        model.train()
        model.zero_grad(set_to_none=True)
        losses = compute_losses(model, batch, torch.Generator().manual_seed(seed))
        losses['loss'].backward()
    finally:
        captures.remove()
        model.config = config
        model.eval()
    inputs = {}
    for name, tensor in captures.tensors.items():
        grad = tensor.grad
        inputs[name] = {'requires_grad': float(tensor.requires_grad),
                        'norm': float(tensor.detach().norm()),
                        'grad_norm': float(grad.norm()) if grad is not None else 0.0,
                        'grad_x_input': float((grad * tensor.detach()).abs().sum())
                        if grad is not None else 0.0}
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    parameters = {}
    for group, member in PARAMETER_GROUPS.items():
        grads = [p.grad.flatten() for n, p in named if member(n) and p.grad is not None]
        parameters[group] = float(torch.cat(grads).norm()) if grads else 0.0
    model.zero_grad(set_to_none=True)
    return {'inputs': inputs, 'parameters': parameters,
            'loss': {'action_loss': float(losses['action_loss'])}}
