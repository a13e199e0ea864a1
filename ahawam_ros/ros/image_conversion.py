"""
Camera messages to RGB arrays and back, with cv_bridge where installed and numpy otherwise.

Every ROS distro ships cv_bridge; the PyPI wheels used on training machines do not. Both paths
return the same arrays (a test checks it wherever both exist): uint8 (H, W, 3) RGB.
"""

from typing import Optional, Union

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

# Raw encodings we accept -> (channels, channel order). Anything else is rejected by name.
RAW_ENCODINGS = {'rgb8': (3, 'rgb'), 'bgr8': (3, 'bgr'), 'mono8': (1, 'mono'),
                 'rgba8': (4, 'rgb'), 'bgra8': (4, 'bgr')}
COMPRESSED_FORMATS = ('jpeg', 'jpg', 'png')


class ImageConversionError(ValueError):
    """An image message that cannot be turned into an RGB array (the reason is the message)."""


def _cv_bridge():
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return None
    return CvBridge()


def raw_to_rgb_numpy(msg: Image) -> np.ndarray:
    """Convert a raw `sensor_msgs/Image` to uint8 (H, W, 3) RGB without cv_bridge."""
    if msg.encoding not in RAW_ENCODINGS:
        raise ImageConversionError(
            f"unsupported encoding '{msg.encoding}' (supported: {', '.join(RAW_ENCODINGS)})")
    channels, order = RAW_ENCODINGS[msg.encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0 or len(msg.data) == 0:
        raise ImageConversionError(f'empty image ({height}x{width}, {len(msg.data)} bytes)')
    if step < width * channels or len(msg.data) < step * height:
        raise ImageConversionError(
            f'image data too short: {len(msg.data)} bytes for {height}x{width} '
            f'{msg.encoding} with step {step}')
    flat = np.frombuffer(msg.data, np.uint8, count=step * height)
    pixels = flat.reshape(height, step)[:, :width * channels]  # (H, W*C): drops row padding
    pixels = pixels.reshape(height, width, channels)  # (H, W, C)
    if order == 'mono':
        return np.repeat(pixels, 3, axis=2)
    rgb = pixels[..., 2::-1] if order == 'bgr' else pixels[..., :3]
    return np.ascontiguousarray(rgb)


def compressed_to_rgb_numpy(msg: CompressedImage) -> np.ndarray:
    """Decode a jpeg/png `sensor_msgs/CompressedImage` to uint8 (H, W, 3) RGB with OpenCV."""
    fmt = msg.format.lower()
    if not any(name in fmt for name in COMPRESSED_FORMATS):
        raise ImageConversionError(f"unsupported compressed format '{msg.format}'")
    if len(msg.data) == 0:
        raise ImageConversionError('empty compressed image')
    bgr = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageConversionError(f"could not decode the '{msg.format}' image data")
    return np.ascontiguousarray(bgr[..., ::-1])


class ImageConverter:
    """Turns camera messages into RGB arrays; uses cv_bridge when it is importable."""

    def __init__(self, prefer_cv_bridge: bool = True):
        self._bridge = _cv_bridge() if prefer_cv_bridge else None

    @property
    def uses_cv_bridge(self) -> bool:
        return self._bridge is not None

    def to_rgb(self, msg: Union[Image, CompressedImage],
               expected_hw: Optional[tuple] = None) -> np.ndarray:
        """Return uint8 (H, W, 3) RGB; raise ImageConversionError with the reason otherwise."""
        if isinstance(msg, CompressedImage):
            rgb = self._compressed(msg)
        else:
            rgb = self._raw(msg)
        if expected_hw is not None and tuple(rgb.shape[:2]) != tuple(expected_hw):
            raise ImageConversionError(
                f'image is {rgb.shape[0]}x{rgb.shape[1]}, expected '
                f'{expected_hw[0]}x{expected_hw[1]}')
        return rgb

    def _raw(self, msg: Image) -> np.ndarray:
        if self._bridge is None:
            return raw_to_rgb_numpy(msg)
        if msg.encoding not in RAW_ENCODINGS:
            raise ImageConversionError(f"unsupported encoding '{msg.encoding}'")
        if len(msg.data) == 0:
            raise ImageConversionError('empty image')
        try:
            return np.ascontiguousarray(self._bridge.imgmsg_to_cv2(msg, 'rgb8'))
        except Exception as error:  # noqa: B902 - cv_bridge raises its own CvBridgeError
            raise ImageConversionError(str(error)) from error

    def _compressed(self, msg: CompressedImage) -> np.ndarray:
        if self._bridge is None or len(msg.data) == 0:
            return compressed_to_rgb_numpy(msg)
        try:
            return np.ascontiguousarray(self._bridge.compressed_imgmsg_to_cv2(msg, 'rgb8'))
        except Exception as error:  # noqa: B902 - cv_bridge raises its own CvBridgeError
            raise ImageConversionError(str(error)) from error


def rgb_to_image_msg(rgb: np.ndarray, stamp, frame_id: str = '') -> Image:
    """Build an rgb8 `sensor_msgs/Image` from uint8 (H, W, 3) RGB."""
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = 'rgb8'
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return msg
