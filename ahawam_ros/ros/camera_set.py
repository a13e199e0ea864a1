"""
The newest frame of each configured camera, for the planner and executor nodes.

Cameras are subscribed with sensor-data QoS, depth 1 (only the newest frame matters). A bad
image (wrong size, unsupported encoding, empty data) is logged once per camera and reason and
ignored; the node keeps running on the other frames. A frame whose stamp the runtime refuses
(`stamp_check`: unset, ahead of the node's clock) is dropped too.
"""

import threading
from typing import Callable, Dict, Optional, Sequence, Set, Tuple

from ahawam_ros.ros.conversions import stamp_seconds
from ahawam_ros.ros.image_conversion import ImageConversionError, ImageConverter
from ahawam_ros.ros.qos import CAMERA_QOS
import cv2
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image


class CameraSet:
    """
    Subscribes to V cameras and keeps the newest RGB frame of each.

    Parameters
    ----------
    node : Node
        The owning node (subscriptions, logger).
    topics : sequence of str
        Camera topics in view order; `.../compressed` topics carry CompressedImage.
    image_hw : (int, int)
        Expected (H, W) of every frame.
    resize : bool
        Resize frames of another size instead of rejecting them.
    callback_group : optional
        Callback group of the subscriptions.
    stamp_check : Callable[[str, float], float or None], optional
        Called with (resolved topic, stamp) per frame; returns the stamp to keep, or None to
        drop the frame (the runtime counts and logs why): a core's `check_camera_stamp`.

    """

    def __init__(self, node: Node, topics: Sequence[str], image_hw: Tuple[int, int],
                 resize: bool = False, callback_group=None,
                 stamp_check: Optional[Callable[[str, float], Optional[float]]] = None):
        self._node = node
        self._topics = tuple(topics)
        self._hw = tuple(int(v) for v in image_hw)
        self._resize = resize
        self._converter = ImageConverter()
        self._frames: Dict[str, Tuple[np.ndarray, float]] = {}
        self._lock = threading.Lock()
        self._reported: Set[Tuple[str, str]] = set()
        self._stamp_check = stamp_check
        self._names: Dict[str, str] = {}  # configured topic -> resolved name (logs, stats)
        self.rejected = 0
        for topic in self._topics:
            msg_type = CompressedImage if topic.rstrip('/').endswith('compressed') else Image
            self._names[topic] = node.create_subscription(
                msg_type, topic, lambda msg, t=topic: self._on_image(t, msg), CAMERA_QOS,
                callback_group=callback_group).topic_name

    @property
    def uses_cv_bridge(self) -> bool:
        return self._converter.uses_cv_bridge

    def _on_image(self, topic: str, msg) -> None:
        try:
            rgb = self._converter.to_rgb(msg, None if self._resize else self._hw)
        except ImageConversionError as error:
            self.rejected += 1
            self._report_once(topic, str(error))
            return
        stamp = stamp_seconds(msg.header.stamp)
        if self._stamp_check is not None:
            stamp = self._stamp_check(self._names[topic], stamp)
            if stamp is None:
                return
        if rgb.shape[:2] != self._hw:
            rgb = cv2.resize(rgb, (self._hw[1], self._hw[0]), interpolation=cv2.INTER_AREA)
        with self._lock:
            self._frames[topic] = (rgb, stamp)

    def _report_once(self, topic: str, reason: str) -> None:
        key = (topic, reason.split(':')[0])
        if key not in self._reported:
            self._reported.add(key)
            self._node.get_logger().error(
                f'ignoring image on {topic}: {reason} (reported once; the node keeps running)')

    def latest(self) -> Optional[Tuple[np.ndarray, float]]:
        """Return (uint8 (V, H, W, 3), stamp of the oldest of the V frames), or None."""
        with self._lock:
            frames = [self._frames.get(topic) for topic in self._topics]
        if any(frame is None for frame in frames):
            return None
        images = np.stack([frame[0] for frame in frames])  # (V, H, W, 3)
        return images, min(frame[1] for frame in frames)

    def frame_stamps(self) -> Dict[str, Optional[float]]:
        """Return {topic: stamp (s) of its newest frame, None if none arrived}, view order."""
        with self._lock:
            return {topic: (self._frames[topic][1] if topic in self._frames else None)
                    for topic in self._topics}

    def clear(self) -> None:
        """Forget the frames (a new episode)."""
        with self._lock:
            self._frames.clear()
