"""
Camera images as every component passes them: uint8 RGB, V views in camera (view) order.

Shapes: V views of H x W pixels; one step's views stack to uint8 (V, H, W, 3).

`tile_views` puts the views of one step side by side, for videos of simulated episodes and the
planner's composite image in rviz. (The model's tiling of normalised torch tensors into a
rows x cols grid, its autoencoder input, is `ahawam_ros.model.autoencoder.tile_views`.)
"""

from typing import Optional, Sequence, Tuple, Union

import numpy as np


def tile_views(images: Union[np.ndarray, Sequence[np.ndarray]]) -> np.ndarray:
    """
    Tile V views side by side, left to right in view order.

    Parameters
    ----------
    images : numpy.ndarray or sequence of numpy.ndarray
        uint8 (V, H, W, 3), or V arrays of (H, W, 3).

    Returns
    -------
    numpy.ndarray
        uint8 (H, V * W, 3), a new array.

    """
    views = list(images)
    if not views:
        raise ValueError('tile_views: no views to tile')
    return np.concatenate(views, axis=1)  # (H, V * W, 3)


def side_by_side(frame: np.ndarray, other: Optional[np.ndarray], width: int) -> np.ndarray:
    """
    Return (H, W + width, 3): `frame` (H, W, 3), then `other` scaled to H x `width` beside it.

    `other` None (nothing to show yet) leaves its place black. Both uint8 RGB.
    """
    height = frame.shape[0]
    if other is None:
        right = np.zeros((height, width, 3), np.uint8)
    else:
        import cv2  # the frame-producing paths already have it; importing the module need not
        right = cv2.resize(other, (width, height), interpolation=cv2.INTER_AREA)
    return np.concatenate([frame, right], axis=1)


def beside_width(height: int, other_hw: Tuple[int, int]) -> int:
    """Return the width an (h, w) image takes scaled to `height`, keeping its aspect ratio."""
    return max(1, round(height * other_hw[1] / other_hw[0]))
