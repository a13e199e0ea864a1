"""World planner: per-frame causality and the rolling K/V memory equal full recomputation."""

from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.kv_memory import RollingKVMemory
from ahawam_ros.model.losses import history_memory
from ahawam_ros.model.policy import AhaWamPolicy
from ahawam_ros.model.presets import get_preset
from ahawam_ros.model.testing import perturb_zero_inits, synthetic_episode
from ahawam_ros.model.video_dit import frame_causal_mask
import torch

TOL = 1e-5


def tiny_model(seed: int = 0) -> AhaWamModel:
    torch.manual_seed(seed)
    model = AhaWamModel(get_preset('tiny')).eval()
    perturb_zero_inits(model, seed=seed)
    return model


def random_latents(model: AhaWamModel, *lead: int) -> torch.Tensor:
    """(*lead, C, h, w) random latents."""
    ae = model.config.autoencoder
    return torch.randn(*lead, ae.latent_channels, *ae.latent_size)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def test_current_frame_context_does_not_depend_on_future_frames():
    model = tiny_model()
    frames, tokens = 1 + model.config.planner.num_future_frames, model.config.tokens_per_frame
    latents = random_latents(model, 2, frames)
    steps = torch.tensor([[24, 32, 40], [8, 16, 24]])[:, :frames]
    timesteps = torch.cat([torch.zeros(2, 1), 1000 * torch.rand(2, frames - 1)], dim=1)
    tasks = model.task_encoder(torch.tensor([0, 1]))
    with torch.no_grad():
        ref_k, ref_v = model.refresh(latents[:, 0], steps[:, 0], tasks)  # (L, B, H, S, hd)
        outs = {}
        for name, mask in (('causal', frame_causal_mask(frames, tokens)), ('full', None)):
            _, keys, values = model.planner(latents, timesteps, model.frame_position(steps),
                                            tasks, attn_mask=mask)
            outs[name] = (torch.stack([k[:, :, :tokens] for k in keys]),
                          torch.stack([v[:, :, :tokens] for v in values]))
    assert max_diff(outs['causal'][0], ref_k) < TOL
    assert max_diff(outs['causal'][1], ref_v) < TOL
    # Control: letting the current frame see the future changes its deeper-layer context.
    assert max_diff(outs['full'][0][-1], ref_k[-1]) > 1e-3


def test_rolling_memory_equals_explicit_history():
    model = tiny_model(1)
    capacity = model.config.planner.memory_size
    count, tokens = capacity + 1, model.config.tokens_per_frame
    latents = random_latents(model, 1, count)
    steps = torch.arange(count)[None] * model.config.planner.history_stride + 5  # (1, N + 1)
    tasks = model.task_encoder(torch.tensor([1]))
    memory = RollingKVMemory(capacity)
    with torch.no_grad():
        for i in range(count):
            keys, values = model.refresh(latents[:, i], steps[:, i], tasks, memory.stacked())
            memory.append(keys, values)
        # Explicit history: all frames in one per-frame-causal pass (the training path).
        _, full_k, full_v = model.planner(latents, torch.zeros(1, count),
                                          model.frame_position(steps), tasks,
                                          attn_mask=frame_causal_mask(count, tokens))
        hist_k, _ = history_memory(model, latents[:, :capacity], steps[:, :capacity],
                                   torch.ones(1, capacity, dtype=torch.bool), tasks)
    last = slice(capacity * tokens, count * tokens)
    assert max_diff(keys, torch.stack([k[:, :, last] for k in full_k])) < TOL
    assert max_diff(values, torch.stack([v[:, :, last] for v in full_v])) < TOL
    stored_k = torch.cat([k for k, _ in memory.entries()[:-1]], dim=3)  # first N - 1 refreshes
    assert max_diff(hist_k[:, :, :, tokens:], stored_k) < TOL


def test_memory_stays_bounded_and_holds_the_last_refreshes():
    model = tiny_model(2)
    config = model.config
    capacity = config.planner.memory_size
    policy = AhaWamPolicy(model, task_name=config.task.task_names[0])
    episode = synthetic_episode(config, 10 * capacity + 1, seed=3)
    contexts = []
    for i in range(10 * capacity):
        contexts.append(policy.plan(episode['frames'][i], step=8 * i))
        assert policy.memory_size == min(i + 1, capacity)
    frame, step = episode['frames'][10 * capacity], 80 * capacity
    explicit = (torch.cat([c.keys for c in contexts[-capacity:]], dim=2)[:, None],  # (L, 1, ...)
                torch.cat([c.values for c in contexts[-capacity:]], dim=2)[:, None])
    with torch.no_grad():
        latents = model.encode(torch.from_numpy(frame)[None])
        ref_k, ref_v = model.refresh(latents, torch.tensor([step]), policy._task_tokens, explicit)
    context = policy.plan(frame, step)
    assert policy.memory_size == capacity
    assert max_diff(context.keys, ref_k[:, 0]) < TOL
    assert max_diff(context.values, ref_v[:, 0]) < TOL
    policy.reset()
    assert policy.memory_size == 0
    fresh = policy.plan(frame, step)
    assert fresh.version == 1
    assert max_diff(fresh.keys, context.keys) > 1e-4  # without memory the context differs
