"""
Frame autoencoder: camera views -> one tiled composite -> latent grid, and back.

The rest of the model depends only on `FrameAutoencoder.encode` (uint8 views to normalised
latents), `decode`, and `config.latent_channels` / `config.latent_size`. It is trained first
with its own reconstruction objective (`reconstruction_loss`, `autoencoder_train_step`), its
latent statistics are calibrated (`calibrate_latent_stats`), and it stays frozen while the
policy trains. Loading a pretrained video VAE would be an adapter with the same interface.

Shapes: B batch, V views, H x W pixels per view, C latent channels, h x w latent grid.
"""

from typing import Iterable

from ahawam_ros.model.config import AutoencoderConfig
from einops import rearrange
import torch
from torch import nn
import torch.nn.functional as F


def tile_views(images: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """
    Tile camera views row-major into one composite image scaled to [-1, 1].

    Parameters
    ----------
    images : torch.Tensor
        (B, V, H, W, 3) uint8 (or float 0..255) RGB, V <= rows * cols.
    rows, cols : int
        Tile grid; missing tiles are black.

    Returns
    -------
    torch.Tensor
        (B, 3, rows * H, cols * W) float32.

    """
    missing = rows * cols - images.shape[1]
    if missing:  # black tiles: (B, r c, H, W, 3)
        images = F.pad(images, (0, 0, 0, 0, 0, 0, 0, missing), value=0)
    x = rearrange(images, 'b (r c) h w ch -> b ch (r h) (c w)', r=rows, c=cols)
    # Tile first, then scale a fresh float copy in place: two fewer passes over the pixels
    # (the executor encodes a frame every update).
    return x.to(torch.float32, copy=True).mul_(1.0 / 127.5).sub_(1.0)


def untile_views(composite: torch.Tensor, num_views: int, rows: int, cols: int) -> torch.Tensor:
    """Invert `tile_views`: (B, 3, rows H, cols W) in [-1, 1] -> (B, V, H, W, 3)."""
    views = rearrange(composite, 'b ch (r h) (c w) -> b (r c) h w ch', r=rows, c=cols)
    return views[:, :num_views]


class ResBlock(nn.Module):
    """Residual conv block: (3x3 conv, SiLU) x 2 plus the identity."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class FrameAutoencoder(nn.Module):
    """
    Convolutional autoencoder from tiled camera views to a latent grid.

    Parameters
    ----------
    config : AutoencoderConfig
        Image geometry and conv widths.

    """

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        ch = config.channels
        blocks = config.blocks_per_stage
        encoder = [nn.Conv2d(3, ch[0], config.stem_stride, stride=config.stem_stride)]
        encoder += [ResBlock(ch[0]) for _ in range(blocks)]
        for c_in, c_out in zip(ch[:-1], ch[1:]):
            encoder += [nn.SiLU(), nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)]
            encoder += [ResBlock(c_out) for _ in range(blocks)]
        encoder += [nn.SiLU(), nn.Conv2d(ch[-1], config.latent_channels, 1)]
        self.encoder = nn.Sequential(*encoder)
        decoder = [nn.Conv2d(config.latent_channels, ch[-1], 3, padding=1)]
        for c_in, c_out in zip(ch[::-1][:-1], ch[::-1][1:]):
            decoder += [ResBlock(c_in) for _ in range(max(blocks, 1))]
            decoder += [nn.Upsample(scale_factor=2.0, mode='nearest'),
                        nn.Conv2d(c_in, c_out, 3, padding=1), nn.SiLU()]
        decoder += [ResBlock(ch[0]) for _ in range(max(blocks, 1))]
        decoder += [nn.SiLU(), nn.ConvTranspose2d(ch[0], 3, config.stem_stride,
                                                  stride=config.stem_stride)]
        self.decoder = nn.Sequential(*decoder)
        # Per-channel latent statistics, set by calibrate_latent_stats: the DiTs see ~unit
        # variance latents, which the flow-matching noise scale assumes.
        self.register_buffer('latent_mean', torch.zeros(config.latent_channels))
        self.register_buffer('latent_std', torch.ones(config.latent_channels))

    def encode_raw(self, images: torch.Tensor) -> torch.Tensor:
        """Encode (B, V, H, W, 3) uint8 views to un-normalised (B, C, h, w) latents."""
        cfg = self.config
        return self.encoder(tile_views(images, cfg.tile_rows, cfg.tile_cols))

    def decode_raw(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode un-normalised (B, C, h, w) latents to (B, V, H, W, 3) views in [-1, 1]."""
        cfg = self.config
        return untile_views(self.decoder(latents), cfg.num_views, cfg.tile_rows, cfg.tile_cols)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """
        Encode camera views to normalised latents.

        Parameters
        ----------
        images : torch.Tensor
            (B, V, H, W, 3) uint8 RGB.

        Returns
        -------
        torch.Tensor
            (B, C, h, w) float32, per-channel standardised.

        """
        raw = self.encode_raw(images)
        return (raw - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode normalised (B, C, h, w) latents to (B, V, H, W, 3) views in [-1, 1]."""
        raw = latents * self.latent_std[:, None, None] + self.latent_mean[:, None, None]
        return self.decode_raw(raw)


def reconstruction_loss(autoencoder: FrameAutoencoder, images: torch.Tensor,
                        latent_penalty: float = 1e-4) -> torch.Tensor:
    """
    Reconstruction objective of the autoencoder: MSE + L1 on [-1, 1] pixels.

    A small L2 penalty on the raw latents keeps their scale bounded (the scale is later
    standardised by `calibrate_latent_stats`).

    Parameters
    ----------
    autoencoder : FrameAutoencoder
        The model being trained.
    images : torch.Tensor
        (B, V, H, W, 3) uint8 views.
    latent_penalty : float
        Weight of the latent L2 penalty.

    Returns
    -------
    torch.Tensor
        Scalar loss.

    """
    latents = autoencoder.encode_raw(images)
    recon = autoencoder.decode_raw(latents)  # (B, V, H, W, 3)
    target = images.float() / 127.5 - 1.0
    pixel = F.mse_loss(recon, target) + F.l1_loss(recon, target)
    return pixel + latent_penalty * latents.pow(2).mean()


def autoencoder_train_step(autoencoder: FrameAutoencoder, optimizer: torch.optim.Optimizer,
                           images: torch.Tensor, grad_clip: float = 1.0) -> float:
    """Run one optimiser step on `reconstruction_loss` for (B, V, H, W, 3) uint8 images."""
    autoencoder.train()
    loss = reconstruction_loss(autoencoder, images)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(autoencoder.parameters(), grad_clip)
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def calibrate_latent_stats(autoencoder: FrameAutoencoder, batches: Iterable[torch.Tensor]) -> None:
    """Set the per-channel latent mean/std from batches of (B, V, H, W, 3) uint8 images."""
    total, total_sq, count = 0.0, 0.0, 0
    for images in batches:
        raw = autoencoder.encode_raw(images).double()  # (B, C, h, w)
        total = total + raw.sum(dim=(0, 2, 3))
        total_sq = total_sq + raw.pow(2).sum(dim=(0, 2, 3))
        count += raw.shape[0] * raw.shape[2] * raw.shape[3]
    if count == 0:
        raise ValueError('calibrate_latent_stats needs at least one batch of images')
    mean = total / count
    std = (total_sq / count - mean.pow(2)).clamp_min(1e-8).sqrt()
    autoencoder.latent_mean.copy_(mean.float())
    autoencoder.latent_std.copy_(std.float())
