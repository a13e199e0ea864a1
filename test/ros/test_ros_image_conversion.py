"""Camera messages to RGB arrays: the numpy/OpenCV path, and cv_bridge where it is installed."""

from ahawam_ros.ros.image_conversion import (compressed_to_rgb_numpy, ImageConversionError,
                                             ImageConverter, raw_to_rgb_numpy)
import cv2
import numpy as np
import pytest
from ros_test_utils import rgb_frame
from sensor_msgs.msg import CompressedImage, Image

pytestmark = pytest.mark.ros
RGB = rgb_frame(6, 5, value=3)  # (H, W, 3), odd width to exercise row padding


def _raw(encoding: str, pixels: np.ndarray, pad: int = 0) -> Image:
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = pixels.reshape(height, width * channels)
    padded = np.concatenate([rows, np.full((height, pad), 255, np.uint8)], axis=1)
    return Image(height=height, width=width, encoding=encoding, step=width * channels + pad,
                 data=padded.tobytes())


def _compressed(fmt: str) -> CompressedImage:
    ok, encoded = cv2.imencode(f'.{fmt}', cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    assert ok
    return CompressedImage(format=fmt, data=encoded.tobytes())


CASES = {
    'rgb8': (lambda: _raw('rgb8', RGB, pad=3), RGB),
    'bgr8': (lambda: _raw('bgr8', RGB[..., ::-1].copy()), RGB),
    'mono8': (lambda: _raw('mono8', RGB[..., 1].copy(), pad=1),
              np.repeat(RGB[..., 1:2], 3, axis=2)),
    'png': (lambda: _compressed('png'), RGB),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_numpy_path_gives_the_expected_rgb(name):
    make, expected = CASES[name]
    msg = make()
    rgb = compressed_to_rgb_numpy(msg) if isinstance(msg, CompressedImage) else \
        raw_to_rgb_numpy(msg)
    assert rgb.dtype == np.uint8 and rgb.shape == expected.shape
    np.testing.assert_array_equal(rgb, expected)


def test_jpeg_decodes_close_to_the_original():
    rgb = compressed_to_rgb_numpy(_compressed('jpeg'))
    assert rgb.shape == RGB.shape and np.abs(rgb.astype(int) - RGB).mean() < 40


@pytest.mark.parametrize('msg,reason', [
    (Image(height=2, width=2, encoding='16UC1', step=4, data=bytes(8)), 'unsupported encoding'),
    (Image(height=2, width=2, encoding='rgb8', step=6, data=b''), 'empty'),
    (Image(height=2, width=2, encoding='rgb8', step=6, data=bytes(7)), 'too short'),
    (CompressedImage(format='jpeg', data=b''), 'empty'),
    (CompressedImage(format='jpeg', data=b'not a jpeg'), 'could not decode'),
    (CompressedImage(format='tiff', data=b'x'), 'unsupported compressed format'),
])
def test_bad_images_raise_a_clear_error(msg, reason):
    with pytest.raises(ImageConversionError, match=reason):
        ImageConverter(prefer_cv_bridge=False).to_rgb(msg)


def test_wrong_size_is_rejected():
    with pytest.raises(ImageConversionError, match='expected 4x4'):
        ImageConverter(prefer_cv_bridge=False).to_rgb(CASES['rgb8'][0](), expected_hw=(4, 4))


@pytest.mark.parametrize('name', sorted(CASES) + ['jpeg'])
def test_cv_bridge_and_numpy_paths_agree(name):
    pytest.importorskip('cv_bridge', reason='cv_bridge (ROS 2) is not on PyPI; every ROS '
                                            'distro ships it: this test runs there')
    msg = _compressed('jpeg') if name == 'jpeg' else CASES[name][0]()
    bridged = ImageConverter(prefer_cv_bridge=True)
    assert bridged.uses_cv_bridge
    np.testing.assert_array_equal(bridged.to_rgb(msg),
                                  ImageConverter(prefer_cv_bridge=False).to_rgb(msg))
