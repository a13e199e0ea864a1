"""Frame autoencoder: tiling, its own reconstruction training, latent calibration."""

from ahawam_ros.model.autoencoder import (autoencoder_train_step, calibrate_latent_stats,
                                          FrameAutoencoder, reconstruction_loss, tile_views,
                                          untile_views)
from ahawam_ros.model.presets import get_preset
import torch


def test_tiling_round_trips_and_places_views_row_major():
    images = torch.randint(0, 256, (2, 3, 4, 5, 3), dtype=torch.uint8)
    composite = tile_views(images, rows=2, cols=2)
    assert composite.shape == (2, 3, 8, 10)
    assert torch.equal(composite[:, :, 4:, 5:], -torch.ones(2, 3, 4, 5))  # empty 4th tile
    assert torch.equal(composite[:, :, :4, 5:], tile_views(images[:, 1:2], 1, 1))
    back = untile_views(composite, 3, 2, 2)
    assert torch.allclose((back + 1.0) * 127.5, images.float(), atol=1e-4)


def test_reconstruction_training_lowers_the_loss_and_calibration_standardises():
    torch.manual_seed(0)
    autoencoder = FrameAutoencoder(get_preset('tiny').autoencoder)
    ae = autoencoder.config
    gradient = torch.linspace(0, 255, ae.view_width).expand(ae.view_height, -1)  # (H, W)
    images = (gradient[None, None, :, :, None] * torch.rand(8, ae.num_views, 1, 1, 3)).to(
        torch.uint8)  # smooth images, learnable in a few steps
    with torch.no_grad():
        before = float(reconstruction_loss(autoencoder, images))
    optimizer = torch.optim.Adam(autoencoder.parameters(), lr=3e-3)
    for _ in range(60):
        autoencoder_train_step(autoencoder, optimizer, images)
    with torch.no_grad():
        after = float(reconstruction_loss(autoencoder, images))
    assert after < 0.5 * before, (before, after)
    calibrate_latent_stats(autoencoder, [images[:4], images[4:]])
    with torch.no_grad():
        latents = autoencoder.encode(images)
    assert latents.shape == (8, ae.latent_channels, *ae.latent_size)
    assert latents.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (latents.std(dim=(0, 2, 3), unbiased=False) - 1.0).abs().max() < 1e-3
