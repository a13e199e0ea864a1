"""
Camera frames as both cores take them: uint8 (V, H, W, 3), V cameras of H x W pixels.

The frame set is one source for the stamp guard (`IMAGE_SOURCE`), whichever camera topics it
was assembled from.
"""

import numpy as np

IMAGE_SOURCE = 'images'


def check_frames(images: np.ndarray) -> None:
    """Raise ValueError unless `images` has the shape (V, H, W, 3)."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f'images must be (V, H, W, 3), got {images.shape}')
