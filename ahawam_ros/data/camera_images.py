"""
Decode a bag's camera frames without ROS: raw Image or CompressedImage, by message type.

`sensor_msgs/Image` must be rgb8 or bgr8; `sensor_msgs/CompressedImage` jpeg or png.
Compressed messages are `rosbags` objects: `format` is a string ('jpeg', 'png', or
image_transport's 'rgb8; jpeg compressed bgr8') and `data` the encoded file as a uint8
array. OpenCV tells the codec from the data itself; `format` must still name jpeg or png, as
on the live nodes (ahawam_ros.ros.image_conversion). Used by training (`bag_reader`) and by
`ahawam eval-bag` (`eval.bag_stream`), which wrap a failure into a BagError naming the bag,
the topic and the log time.

Shapes: H x W pixels, as encoded.
"""

from typing import Any

from ahawam_ros.data.features import COMPRESSED_IMAGE_MSG
import cv2
import numpy as np

COMPRESSED_FORMATS = ('jpeg', 'jpg', 'png')


def decode_camera(msg: Any, msgtype: str) -> np.ndarray:
    """Decode a camera message of type `msgtype` (a CAMERA_MSGS type) to uint8 (H, W, 3) RGB."""
    return decode_compressed(msg) if msgtype == COMPRESSED_IMAGE_MSG else decode_raw(msg)


def decode_raw(msg: Any) -> np.ndarray:
    """Decode a raw rgb8 / bgr8 `sensor_msgs/Image` of any size to uint8 (H, W, 3) RGB."""
    if msg.encoding not in ('rgb8', 'bgr8'):
        raise ValueError(f"image encoding {msg.encoding!r}, expected 'rgb8' (or 'bgr8')")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height < 1 or width < 1 or step < width * 3 or len(msg.data) < step * height:
        raise ValueError(f'image data of {len(msg.data)} bytes does not hold {height}x{width} '
                         f'with step {step}')
    rows = np.asarray(msg.data[:step * height], np.uint8).reshape(height, step)
    pixels = rows[:, :width * 3].reshape(height, width, 3)  # drops row padding
    return pixels[..., ::-1].copy() if msg.encoding == 'bgr8' else pixels.copy()


def decode_compressed(msg: Any) -> np.ndarray:
    """
    Decode a jpeg / png `sensor_msgs/CompressedImage` to uint8 (H, W, 3) RGB.

    Colour and grey images of 8 or 16 bits all come out as 8-bit RGB (OpenCV IMREAD_COLOR);
    the size is whatever was encoded (callers check or resize it).

    Raises
    ------
    ValueError
        A format that is neither jpeg nor png, no data, or data that does not decode.

    """
    fmt = str(msg.format)
    if not any(name in fmt.lower() for name in COMPRESSED_FORMATS):
        raise ValueError(f'compressed image format {fmt!r}, expected jpeg or png')
    raw = msg.data
    data = np.frombuffer(raw, np.uint8) if isinstance(raw, (bytes, bytearray)) \
        else np.asarray(raw, np.uint8).reshape(-1)
    if data.size == 0:
        raise ValueError(f'compressed image ({fmt!r}) has no data')
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)  # (H, W, 3) BGR, or None
    if bgr is None:
        raise ValueError(f'cannot decode the {data.size} bytes of the {fmt!r} compressed image '
                         '(corrupt or truncated data)')
    return np.ascontiguousarray(bgr[..., ::-1])
