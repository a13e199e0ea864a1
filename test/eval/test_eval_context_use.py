"""The context-use diagnostics (attention mass, OVCR edit, gradient norms) on the tiny preset."""

from ahawam_ros.eval.context_use import (attention_figures, ATTENTION_KEYS, gradient_figures,
                                         ovcr_figures)
from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.layers import norm_modulate
from ahawam_ros.model.presets import get_preset
from ahawam_ros.model.testing import perturb_zero_inits, synthetic_batch
import numpy as np
import pytest
import torch
import torch.nn.functional as F


@pytest.fixture
def model():
    torch.manual_seed(0)
    built = AhaWamModel(get_preset('tiny'))
    perturb_zero_inits(built, std=0.2)
    return built.eval()


def _context(model, batch=2):
    config = model.config
    shape = (config.num_layers, batch, config.num_heads, config.tokens_per_frame,
             config.head_dim)
    generator = torch.Generator().manual_seed(1)
    return torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)


def _cache(model, keys, values, batch=2):
    config = model.config
    tasks = model.task_encoder(torch.zeros(batch, dtype=torch.long))
    proprio = torch.randn(batch, config.executor.action_dim,
                          generator=torch.Generator().manual_seed(2))
    return model.prepare_executor(keys, values, tasks, proprio)


def test_attention_mass_matches_an_attention_that_counts_the_context(model):
    keys, values = _context(model)
    cache = _cache(model, keys, values)
    config = model.config
    noise = torch.randn(2, config.executor.chunk_len, config.executor.action_dim)
    figures = attention_figures(model, cache, noise, num_steps=3)
    assert figures.shape == (3, config.num_layers, len(ATTENTION_KEYS))
    assert np.all(np.isfinite(figures))
    mass, proprio = figures[..., 0], figures[..., 4]
    assert np.all((mass > 0) & (mass < 1)) and np.all((proprio > 0) & (proprio < 1))
    # Independent check of layer 0, Euler step 0: attending to values that are 1 on the
    # context tokens and 0 on the chunk's own gives the probability put on the context.
    block, plan = model.executor.blocks[0], model.euler_plan(3)
    mod = plan.layer_mod[0][0]
    with torch.no_grad():
        h = norm_modulate(model.executor.action_embed(noise), mod[0], mod[1])
        q, k, _ = block.qk(block.qkv(h), cache.rope)
        ones = torch.cat([torch.ones_like(keys[0]), torch.zeros_like(k)], dim=2)
        counted = F.scaled_dot_product_attention(q, torch.cat([keys[0], k], dim=2), ones)
    assert figures[0, 0, 0] == pytest.approx(float(counted[..., 0].mean()), rel=1e-4)


def test_a_repeated_context_gets_more_mass_at_the_same_rate_per_token(model):
    keys, values = _context(model)
    config = model.config
    noise = torch.randn(2, config.executor.chunk_len, config.executor.action_dim)
    base = attention_figures(model, _cache(model, keys, values), noise, 2)
    # Every context token repeated four times: more mass on the context, the same per token
    # (exactly so where the layer input is unchanged: layer 0 at Euler step 0).
    wide = attention_figures(model, _cache(model, keys.repeat(1, 1, 1, 4, 1),
                                           values.repeat(1, 1, 1, 4, 1)), noise, 2)
    assert np.all(wide[..., 0] > base[..., 0])
    assert wide[0, 0, 1] == pytest.approx(base[0, 0, 1], rel=1e-4)


def test_ovcr_starts_as_the_identity_and_edits_once_its_output_is_nonzero():
    torch.manual_seed(0)
    fresh = AhaWamModel(get_preset('tiny')).eval()
    config = fresh.config
    keys, values = _context(fresh)
    images = torch.randint(0, 255, (2, config.autoencoder.num_views,
                                    config.autoencoder.view_height,
                                    config.autoencoder.view_width, 3), dtype=torch.uint8)
    latents = fresh.encode(images)
    figures = ovcr_figures(fresh, keys, values, latents)
    gate = 1.0 / (1.0 + np.exp(-config.ovcr.gate_init))
    assert figures['gate'] == pytest.approx(np.full(config.num_layers, gate))
    assert np.all(figures['key_delta'] == 0) and np.all(figures['value_delta'] == 0)
    perturb_zero_inits(fresh, std=0.2)
    edited = ovcr_figures(fresh, keys, values, latents)
    assert np.all(edited['key_delta'] > 0) and np.all(edited['value_delta'] > 0)


def test_gradients_reach_the_context_and_a_detach_is_detected(model):
    batch = synthetic_batch(model.config, 2, seed=3)
    weight = model.config.objective.video_loss_weight
    figures = gradient_figures(model, batch)
    assert model.config.objective.video_loss_weight == weight  # restored
    inputs = figures['inputs']
    for name in ('context_keys', 'context_values', 'proprio', 'proprio_token'):
        assert inputs[name]['grad_norm'] > 0, name
    assert figures['parameters']['planner (all)'] > 0  # the action loss trains the planner
    edit = model.edit_context

    def detached(keys, values, latents):
        return edit(keys.detach(), values.detach(), latents)

    model.edit_context = detached
    cut = gradient_figures(model, batch)
    assert cut['inputs']['context_keys']['requires_grad'] == 0
    assert cut['inputs']['context_keys']['grad_norm'] == 0
    assert cut['parameters']['planner (all)'] == 0
    assert cut['inputs']['proprio']['grad_norm'] > 0
