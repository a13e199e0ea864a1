"""
The world model's imagination: the future frames the planner predicts, as pictures.

The planner is trained as a video model: given the rolling memory and the clean current frame,
it denoises the next F latent frames (`frame_stride` control steps apart; `losses.
planner_forward`). `imagine_latents` runs that prediction as at training, by Euler steps from
noise over the same clip layout (memory, frame 0 clean at t = 0, frames 1..F noisy), and
`to_pixels` decodes them with the frame autoencoder.

Shapes: B batch, F future frames, C x h x w latents, V views, H x W pixels.
"""

from typing import Optional, Tuple

from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.flow import euler_sample, T_SCALE
from ahawam_ros.model.video_dit import frame_causal_mask
import torch

KV = Tuple[torch.Tensor, torch.Tensor]


@torch.no_grad()
def imagine_latents(model: AhaWamModel, latents: torch.Tensor, steps: torch.Tensor,
                    task_tokens: torch.Tensor, memory: Optional[KV], num_steps: int,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """
    Predict the F future latent frames after the current one.

    Parameters
    ----------
    model : AhaWamModel
        The trained model (its planner and flow schedule).
    latents : torch.Tensor
        (B, C, h, w) the current frame.
    steps : torch.Tensor
        (B,) its control step; frame f is predicted for steps + f * frame_stride.
    task_tokens : torch.Tensor
        (B, Lt, Dt).
    memory : (torch.Tensor, torch.Tensor) or None
        (L, B, H, Mm, hd) the rolling memory before the current frame.
    num_steps : int
        Euler steps from noise.
    generator : torch.Generator, optional
        Source of the starting noise.

    Returns
    -------
    torch.Tensor
        (B, F, C, h, w) predicted latents.

    """
    planner = model.config.planner
    batch, frames = latents.shape[0], planner.num_future_frames + 1
    clip_steps = steps[:, None] + planner.frame_stride * torch.arange(
        frames, device=latents.device)  # (B, 1 + F)
    valid = None if memory is None else torch.ones(batch, memory[0].shape[-2], dtype=torch.bool,
                                                   device=latents.device)
    mask = frame_causal_mask(frames, model.config.tokens_per_frame, memory_valid=valid,
                             device=latents.device)
    positions = model.frame_position(clip_steps)
    sigmas = model.schedule.inference_sigmas(num_steps, latents.device)
    noise = torch.randn((batch, frames - 1, *latents.shape[1:]), generator=generator)

    def velocity(future: torch.Tensor, i: int) -> torch.Tensor:
        clip = torch.cat([latents[:, None], future], dim=1)  # (B, 1 + F, C, h, w)
        timesteps = torch.cat([torch.zeros(batch, 1, device=latents.device),
                               torch.full((batch, frames - 1), T_SCALE * float(sigmas[i]),
                                          device=latents.device)], dim=1)  # (B, 1 + F)
        predicted, _, _ = model.planner(clip, timesteps, positions, task_tokens, memory=memory,
                                        attn_mask=mask)
        return predicted[:, 1:]

    return euler_sample(velocity, noise.to(latents.device), sigmas)


@torch.no_grad()
def to_pixels(model: AhaWamModel, latents: torch.Tensor) -> torch.Tensor:
    """Decode (B, F, C, h, w) latents to (B, F, V, H, W, 3) uint8 views."""
    batch, frames = latents.shape[:2]
    views = model.autoencoder.decode(latents.flatten(0, 1))  # (B F, V, H, W, 3) in [-1, 1]
    pixels = ((views.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return pixels.unflatten(0, (batch, frames))


def psnr(predicted: torch.Tensor, actual: torch.Tensor) -> float:
    """Return the PSNR (dB) of uint8 `predicted` against uint8 `actual` (any equal shapes)."""
    error = (predicted.float() - actual.float()).pow(2).mean()
    return float(10.0 * torch.log10(255.0 ** 2 / error.clamp_min(1e-10)))
