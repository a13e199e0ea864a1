"""
Flow matching: the shifted noise schedule, the t-bump loss weighting and Euler sampling.

Noise level s in [0, 1] (s = 1: pure noise), diffusion timestep t = 1000 s,
x_s = (1 - s) x0 + s e, velocity v = e - x0. Training draws u ~ U(0, 1) on a grid of
`num_train_timesteps` points and shifts it, s = k u / (1 + (k - 1) u); inference takes the
same shift over N Euler steps from s = 1 to s = 0.
"""

from typing import Callable, List, Optional, Tuple

from ahawam_ros.model.config import FlowConfig
import torch

T_SCALE = 1000.0  # t = T_SCALE * s


def shift_sigma(u: torch.Tensor, shift: float) -> torch.Tensor:
    """Shifted schedule s = k u / (1 + (k - 1) u); monotone, fixes 0 and 1."""
    return shift * u / (1.0 + (shift - 1.0) * u)


class FlowSchedule:
    """
    Training timestep sampler with loss weights, and the inference Euler grid.

    The weight is a bump centred at t = 500 (exp(-2 ((t - 500) / 1000) ^ 2) minus its minimum
    over the training grid, the form used by Wan-style trainers (default)), normalised to mean
    1 over the training distribution of t.

    Parameters
    ----------
    config : FlowConfig
        Shift, grid size and default number of inference steps.

    """

    def __init__(self, config: FlowConfig):
        self.config = config
        grid = (torch.arange(config.num_train_timesteps, dtype=torch.float64) + 0.5)
        self.train_sigmas = shift_sigma(grid / config.num_train_timesteps, config.shift)
        t = T_SCALE * self.train_sigmas
        bump = torch.exp(-2.0 * ((t - 0.5 * T_SCALE) / T_SCALE) ** 2)
        bump = bump - bump.min()
        self.train_weights = bump / bump.mean()

    def sample(self, shape: Tuple[int, ...], device=None,
               generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Draw training noise levels.

        Returns
        -------
        sigma, weight : torch.Tensor
            Each of `shape`, float32: noise level s and its loss weight.

        """
        index = torch.randint(0, self.config.num_train_timesteps, shape, generator=generator)
        sigma = self.train_sigmas[index].float()
        weight = self.train_weights[index].float()
        return sigma.to(device), weight.to(device)

    def inference_sigmas(self, num_steps: int, device=None) -> torch.Tensor:
        """(num_steps + 1,) float32 noise levels from 1 down to 0 for Euler sampling."""
        if num_steps < 1:
            raise ValueError(f'num_steps must be >= 1, got {num_steps}')
        u = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64)
        return shift_sigma(u, self.config.shift).float().to(device)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x_s = (1 - s) x0 + s e; `sigma` broadcasts from the left-aligned batch dims of x0."""
    s = sigma.reshape(sigma.shape + (1,) * (x0.dim() - sigma.dim()))  # (..., 1, ..., 1)
    return (1.0 - s) * x0 + s * noise


def euler_sample(velocity: Callable[[torch.Tensor, int], torch.Tensor], noise: torch.Tensor,
                 sigmas: torch.Tensor,
                 trajectory: Optional[List[torch.Tensor]] = None) -> torch.Tensor:
    """
    Integrate dx/ds = v from s = sigmas[0] (noise) to sigmas[-1] with explicit Euler.

    Parameters
    ----------
    velocity : callable
        velocity(x, i) -> v for step i at noise level sigmas[i]; v has the shape of x.
    noise : torch.Tensor
        Starting sample e, any shape.
    sigmas : torch.Tensor
        (N + 1,) decreasing noise levels.
    trajectory : list, optional
        When given, every state (the noise, then each step's result) is appended to it.

    Returns
    -------
    torch.Tensor
        The sample at sigmas[-1], shape of `noise`.

    """
    x = noise
    if trajectory is not None:
        trajectory.append(x)
    steps = (sigmas[1:] - sigmas[:-1]).tolist()
    for i, ds in enumerate(steps):
        x = torch.add(x, velocity(x, i), alpha=ds)
        if trajectory is not None:
            trajectory.append(x)
    return x
