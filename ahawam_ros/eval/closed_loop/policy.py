"""
The policy under evaluation and the simulator set up for its inputs.

Shapes: V cameras, H x W pixels.

A policy spec is a checkpoint directory, 'fake' (the scripted stand-in) or 'random:<preset>'
(an untrained, seeded model of a preset: figures for timing, not for success). The cameras
are the checkpoint's own (its `data.cameras`), else the first V of the simulator's default
set; frames are rendered at `render_hw` and resized to the policy's input with cv2
INTER_AREA, as the training data were.
"""

import json
from pathlib import Path
from typing import Any, Optional, Tuple

from ahawam_ros.runtime.loading import load_policy
from ahawam_ros.runtime.policy_api import ChunkPolicy
from ahawam_ros.sim.aloha_env import SimConfig
import cv2
import numpy as np

RANDOM_PREFIX = 'random:'
DEFAULT_CAMERAS = SimConfig().cameras  # top, left_wrist, right_wrist
DEMO_HW = (SimConfig().image_height, SimConfig().image_width)  # the demonstrations' size


def load_eval_policy(spec: str, device: str = 'cpu', seed: int = 0) -> ChunkPolicy:
    """Return the policy of `spec`: a checkpoint directory, 'fake' or 'random:<preset>'."""
    if not spec.startswith(RANDOM_PREFIX):
        return load_policy(spec, device)
    import torch
    from ahawam_ros.model.aha_wam import AhaWamModel
    from ahawam_ros.model.policy import AhaWamPolicy
    from ahawam_ros.model.presets import get_preset
    from ahawam_ros.model.testing import perturb_zero_inits
    torch.manual_seed(seed)
    model = AhaWamModel(get_preset(spec[len(RANDOM_PREFIX):]))
    perturb_zero_inits(model, seed=seed)  # zero heads would make every chunk the same
    return AhaWamPolicy(model, device=device)


def policy_views(policy: ChunkPolicy, default: int = len(DEFAULT_CAMERAS)) -> int:
    """Return V, the number of camera views the policy takes (`default` if it does not say)."""
    model = getattr(policy, 'model', None)
    return int(model.config.autoencoder.num_views) if model is not None else default


def checkpoint_cameras(spec: str) -> Optional[Tuple[str, ...]]:
    """Return the cameras a checkpoint was trained on (its config's `data.cameras`), if any."""
    path = Path(spec) / 'config.json'
    if not path.is_file():
        return None
    cameras = json.loads(path.read_text()).get('data', {}).get('cameras')
    return tuple(cameras) if cameras else None


def policy_cameras(spec: str, policy: ChunkPolicy) -> Tuple[str, ...]:
    """Return the simulator cameras feeding the policy's V views, in view order."""
    views = policy_views(policy)
    cameras = checkpoint_cameras(spec)
    if cameras is not None and len(cameras) == views:
        return cameras
    if views > len(DEFAULT_CAMERAS):
        raise ValueError(f'the policy takes {views} views; the default cameras are '
                         f'{DEFAULT_CAMERAS}')
    return DEFAULT_CAMERAS[:views]


def sim_config_for(policy: ChunkPolicy, spec: str, task: str, episode_len: int,
                   render_hw: Optional[Tuple[int, int]] = DEMO_HW) -> SimConfig:
    """Return the simulator settings for `policy`: its cameras, rendered at `render_hw`."""
    if render_hw is None:  # native: render at the policy's input size
        render_hw = tuple(getattr(policy, 'image_size', DEMO_HW))
    return SimConfig(task=task, cameras=policy_cameras(spec, policy),
                     image_height=int(render_hw[0]), image_width=int(render_hw[1]),
                     episode_len=episode_len)


class PolicyViews:
    """
    Observation -> uint8 (V, H, W, 3) policy input: the cameras stacked, resized if needed.

    Parameters
    ----------
    cameras : tuple of str
        View order.
    image_hw : (int, int) or None
        The policy's (H, W); None keeps the rendered size.

    """

    def __init__(self, cameras: Tuple[str, ...], image_hw: Optional[Tuple[int, int]]):
        self.cameras = cameras
        self.image_hw = None if image_hw is None else (int(image_hw[0]), int(image_hw[1]))

    def __call__(self, observation: Any) -> np.ndarray:
        frames = [observation.images[camera] for camera in self.cameras]
        if self.image_hw is not None and frames[0].shape[:2] != self.image_hw:
            height, width = self.image_hw
            frames = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
                      for f in frames]
        return np.stack(frames)  # (V, H, W, 3)
