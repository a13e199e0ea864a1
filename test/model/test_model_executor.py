"""Executor: the lean inference path (shared step modulations) equals the training path."""

from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.presets import get_preset
from ahawam_ros.model.testing import perturb_zero_inits
import torch


def test_euler_sampling_matches_per_sample_timestep_forward():
    torch.manual_seed(0)
    model = AhaWamModel(get_preset('tiny')).eval()
    perturb_zero_inits(model, std=0.3)
    config, batch, steps = model.config, 3, 4
    shape = (config.num_layers, batch, config.num_heads, config.tokens_per_frame,
             config.head_dim)
    tasks = model.task_encoder(torch.tensor([0, 1, 0]))
    proprio = torch.randn(batch, config.executor.action_dim)
    noise = torch.randn(batch, config.executor.chunk_len, config.executor.action_dim)
    with torch.no_grad():
        cache = model.prepare_executor(torch.randn(shape), torch.randn(shape), tasks, proprio)
        fast = model.sample_actions(cache, steps, noise=noise)
        sigmas = model.schedule.inference_sigmas(steps)
        slow = noise
        for i in range(steps):  # the training path: per-sample timesteps, (B, ...) modulation
            velocity = model.executor(slow, torch.full((batch,), 1000.0 * float(sigmas[i])),
                                      cache)
            slow = slow + (sigmas[i + 1] - sigmas[i]) * velocity
        other = model.sample_actions(cache, steps, noise=noise.flip(0))
    assert (fast - slow).abs().max() < 1e-5
    assert (fast - other.flip(0)).abs().max() > 1e-4  # per-sample conditioning matters
