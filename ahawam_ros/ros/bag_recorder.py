"""
Record topics of the running system to a rosbag2 file (mcap), without ros2bag.

Subscriptions are raw (`raw=True`): the CDR bytes from the wire are written as they arrived
(rclpy's own serializer may pad messages in a way `rosbags` rejects), with the receive time on
the node's clock. The bag has exactly the live topics and types, so it replays with
`ros2 bag play` and trains with `ahawam train` like any other robot bag.
"""

from pathlib import Path
import threading
from typing import Dict, Optional, Type

from ahawam_ros.data.typestore import ahawam_typestore
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosbags.rosbag2 import StoragePlugin, Writer


def _type_name(msg_type: Type) -> str:
    module = msg_type.__module__.split('.')  # e.g. sensor_msgs.msg._image
    return f'{module[0]}/msg/{msg_type.__name__}'


class BagRecorder:
    """
    Writes the raw messages of chosen topics into one mcap bag between `start` and `stop`.

    Parameters
    ----------
    node : Node
        Node that owns the subscriptions and whose clock stamps the records.
    topics : dict
        topic -> (message type, QoS profile or depth).

    """

    def __init__(self, node: Node, topics: Dict[str, tuple], callback_group=None):
        self._node = node
        self._lock = threading.Lock()
        self._writer: Optional[Writer] = None
        self._connections = {}
        self._topics = {}
        self.counts: Dict[str, int] = {}
        for topic, (msg_type, qos) in topics.items():
            name = node.resolve_topic_name(topic)
            self._topics[name] = _type_name(msg_type)
            node.create_subscription(msg_type, topic,
                                     lambda data, t=name: self._on_message(t, data),
                                     qos if isinstance(qos, QoSProfile) else int(qos),
                                     raw=True, callback_group=callback_group)

    def start(self, path: Path) -> None:
        """Start writing a new bag at `path` (a directory that must not exist yet)."""
        writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        store = ahawam_typestore()
        connections = {topic: writer.add_connection(topic, msgtype, typestore=store)
                       for topic, msgtype in self._topics.items()}
        with self._lock:
            self._writer, self._connections = writer, connections
            self.counts = dict.fromkeys(self._topics, 0)

    def stop(self) -> Dict[str, int]:
        """Finish the bag; return the number of messages written per topic."""
        with self._lock:
            writer, self._writer = self._writer, None
            counts = dict(self.counts)
        if writer is not None:
            writer.close()
        return counts

    def _on_message(self, topic: str, data: bytes) -> None:
        stamp = self._node.get_clock().now().nanoseconds
        with self._lock:
            if self._writer is None:
                return
            self._writer.write(self._connections[topic], stamp, bytes(data))
            self.counts[topic] += 1
