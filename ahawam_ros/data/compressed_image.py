"""
Decode a bag's `sensor_msgs/CompressedImage` camera frames (jpeg or png) without ROS.

The messages are `rosbags` objects: `format` is a string ('jpeg', 'png', or image_transport's
'rgb8; jpeg compressed bgr8') and `data` the encoded file as a uint8 array. OpenCV tells the
codec from the data itself; `format` must still name jpeg or png, as on the live nodes
(ahawam_ros.ros.image_conversion). Used by training (`bag_reader`) and by `ahawam eval-bag`
(`eval.bag_stream`), which wrap a failure into a BagError naming the bag, the topic and the
log time.

Shapes: H x W pixels, as encoded.
"""

from typing import Any

import cv2
import numpy as np

COMPRESSED_FORMATS = ('jpeg', 'jpg', 'png')


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
