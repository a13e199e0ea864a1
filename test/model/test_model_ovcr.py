"""OVCR: the identity at initialisation; once its delta is trained, the gate scales the edit."""

from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.presets import get_preset
from ahawam_ros.model.testing import perturb_zero_inits
from einops import rearrange
import torch


def context_and_observation(model: AhaWamModel, batch: int = 2):
    config = model.config
    shape = (config.num_layers, batch, config.num_heads, config.tokens_per_frame,
             config.head_dim)
    ae = config.autoencoder
    obs = torch.randn(batch, ae.latent_channels, *ae.latent_size)
    return torch.randn(shape), torch.randn(shape), obs


def test_ovcr_at_initialisation_returns_the_context_unchanged():
    torch.manual_seed(0)
    model = AhaWamModel(get_preset('tiny'))
    keys, values, obs = context_and_observation(model)
    with torch.no_grad():
        new_keys, new_values = model.ovcr(keys, values, obs)
    assert torch.equal(new_keys, keys) and torch.equal(new_values, values)
    assert torch.allclose(torch.sigmoid(model.ovcr.gate), torch.sigmoid(torch.tensor(-4.0)))


def test_ovcr_edit_depends_on_observation_and_scales_with_the_gate():
    torch.manual_seed(1)
    model = AhaWamModel(get_preset('tiny'))
    perturb_zero_inits(model)  # as training would make the delta non-zero
    keys, values, obs = context_and_observation(model)
    with torch.no_grad():
        edit_k, edit_v = (t - c for t, c in zip(model.ovcr(keys, values, obs), (keys, values)))
        other_k, _ = model.ovcr(keys, values, torch.randn_like(obs))
        model.ovcr.gate.fill_(0.0)
        open_k, _ = model.ovcr(keys, values, obs)
    assert edit_k.abs().max() > 1e-4 and edit_v.abs().max() > 1e-4
    assert (other_k - keys - edit_k).abs().max() > 1e-5  # another observation, another edit
    ratio = torch.sigmoid(torch.tensor(0.0)) / torch.sigmoid(torch.tensor(-4.0))
    assert torch.allclose(open_k - keys, ratio * edit_k, atol=1e-5, rtol=1e-4)
    assert not torch.equal(open_k, keys)


def reference_ovcr(ovcr, keys, values, obs):
    """Apply the spec's formulas directly (token-major context, explicit D)."""
    heads = keys.shape[2]
    k0 = rearrange(keys, 'l b h m d -> l b m (h d)')
    v0 = rearrange(values, 'l b h m d -> l b m (h d)')
    scale = k0.shape[-1] ** -0.5
    q = ovcr.route_norm(ovcr.observation_queries(obs))  # (B, Q, Do)
    routes = torch.einsum('bqo,low->lbqw', q, ovcr.route_weight) + ovcr.route_bias[:, None, None]
    read = torch.softmax(routes @ k0.transpose(-1, -2) * scale, dim=-1) @ v0  # (L, B, Q, W)
    written = torch.softmax(k0 @ read.transpose(-1, -2) * scale, dim=-1) @ read  # (L, B, M, W)
    normed = torch.nn.functional.layer_norm(written, written.shape[-1:])
    normed = normed * ovcr.delta_norm_weight[:, None, None] + ovcr.delta_norm_bias[:, None, None]
    hidden = torch.nn.functional.gelu(
        normed @ ovcr.delta_in[:, None] + ovcr.delta_in_bias[:, None, None], approximate='tanh')
    delta = hidden @ ovcr.delta_out[:, None] + ovcr.delta_out_bias[:, None, None]
    delta = torch.sigmoid(ovcr.gate)[:, None, None, None] * delta
    dk, dv = rearrange(delta, 'l b m (two h d) -> two l b h m d', two=2, h=heads)
    return keys + dk, values + dv


def test_lean_ovcr_equals_the_direct_formulas():
    torch.manual_seed(2)
    model = AhaWamModel(get_preset('tiny'))
    perturb_zero_inits(model, std=0.3)
    with torch.no_grad():
        model.ovcr.delta_norm_weight.uniform_(0.5, 1.5)
        model.ovcr.delta_norm_bias.normal_(std=0.1)
        model.ovcr.gate.normal_()
        keys, values, obs = context_and_observation(model, batch=3)
        fast = model.ovcr(keys, values, obs)
        slow = reference_ovcr(model.ovcr, keys, values, obs)
    for edited, reference, original in zip(fast, slow, (keys, values)):
        assert (edited - reference).abs().max() < 1e-5
        assert (edited - original).abs().max() > 1e-3  # the edit is not trivially zero
