"""The planner's imagination: future frames from the memory and the current frame, as trained."""

from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.imagination import psnr
from ahawam_ros.model.policy import AhaWamPolicy
from ahawam_ros.model.presets import tiny
from ahawam_ros.model.testing import perturb_zero_inits
import numpy as np
import pytest
import torch


@pytest.fixture(params=[False, True], ids=['eager', 'compiled'])
def policy(request):
    torch.manual_seed(0)
    model = AhaWamModel(tiny())
    perturb_zero_inits(model, seed=0)
    return AhaWamPolicy(model, compiled=request.param)


def _frames(policy, seed):
    views, height, width = (policy.model.config.autoencoder.num_views, *policy.image_size)
    return np.random.default_rng(seed).integers(0, 256, (views, height, width, 3), np.uint8)


def test_imagination_predicts_f_future_views_reproducibly(policy):
    with pytest.raises(RuntimeError, match='plan'):
        policy.imagine()
    for step in (0, 8, 16):  # the memory fills
        policy.plan(_frames(policy, step), step)
    config = policy.model.config
    frames = policy.imagine(num_steps=3, seed=1)
    assert frames.shape == (config.planner.num_future_frames, config.autoencoder.num_views,
                            *policy.image_size, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames, policy.imagine(num_steps=3, seed=1))
    assert not np.array_equal(frames, policy.imagine(num_steps=3, seed=2))  # noise matters
    policy.reset()
    with pytest.raises(RuntimeError):
        policy.imagine()


def test_imagination_uses_the_memory_before_the_refreshed_frame(policy):
    policy.plan(_frames(policy, 0), 16)
    alone = policy.imagine(num_steps=2)
    policy.reset()
    policy.plan(_frames(policy, 9), 0)
    policy.plan(_frames(policy, 0), 16)  # the same frame and step, now after a memory
    assert not np.array_equal(alone, policy.imagine(num_steps=2))


def test_psnr():
    a = torch.zeros(4, 4, dtype=torch.uint8)
    assert psnr(a, a) > 90.0
    assert psnr(a, a + 255) == pytest.approx(0.0)
    assert psnr(a, a + 16) == pytest.approx(10 * np.log10(255 ** 2 / 256), rel=1e-6)
