"""Each custom message goes through a real rclpy graph and round-trips through a rosbag2 file."""

import time
import uuid

from ahawam_ros.data.typestore import ahawam_typestore
from ahawam_ros.msg import ActionChunk, WorldContext
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

pytestmark = pytest.mark.ros


def _world_context() -> WorldContext:
    msg = WorldContext()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 345_000_000
    msg.header.frame_id = 'world_planner'
    msg.seq, msg.episode_step = 7, 96
    msg.num_layers, msg.num_tokens, msg.num_heads, msg.head_dim = 4, 48, 4, 16
    msg.memory_fill, msg.memory_capacity = 3, 6
    msg.planner_latency = 0.125
    msg.handle = 'boot-abc:7'
    return msg


def _action_chunk() -> ActionChunk:
    msg = ActionChunk()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 3, 20_000_000
    msg.joint_names = ['left_waist', 'right_gripper']
    msg.chunk_len = 3
    msg.positions = [0.1, 0.9, -0.2, 0.8, 0.3, 0.7]
    msg.control_period.nanosec = 20_000_000
    msg.context_seq, msg.context_age = 7, 0.0625  # float32-exact values
    msg.inference_latency = 0.03125
    return msg


def _spin_until(executor, done, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)


def _exchange(context, msg_type, message):
    """Publish `message` between two nodes; return (typed copies, raw CDR copies) received."""
    topic = f'/test_msgs_{uuid.uuid4().hex[:8]}'
    pub_node = rclpy.create_node('msg_pub', context=context)
    sub_node = rclpy.create_node('msg_sub', context=context)
    typed, raw = [], []
    sub_node.create_subscription(msg_type, topic, typed.append, 10)
    sub_node.create_subscription(msg_type, topic, raw.append, 10, raw=True)
    publisher = pub_node.create_publisher(msg_type, topic, 10)
    executor = SingleThreadedExecutor(context=context)
    for node in (pub_node, sub_node):
        executor.add_node(node)
    _spin_until(executor, lambda: publisher.get_subscription_count() >= 2)
    publisher.publish(message)
    _spin_until(executor, lambda: typed and raw)
    executor.shutdown()
    pub_node.destroy_node()
    sub_node.destroy_node()
    return typed, raw


def _bag_round_trip(tmp_path, msgtype_name: str, topic: str, raw: bytes, storage: str):
    store = ahawam_typestore()
    path = tmp_path / f'bag_{storage}'
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connection = writer.add_connection(topic, msgtype_name, typestore=store)
        writer.write(connection, 42, raw)
    with Reader(path) as reader:
        records = [(c.topic, c.msgtype, t, data) for c, t, data in reader.messages()]
    return store, records


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
@pytest.mark.parametrize('msg_type,factory', [(WorldContext, _world_context),
                                              (ActionChunk, _action_chunk)])
def test_publish_receive_and_bag_round_trip(ros_context, tmp_path, msg_type, factory, storage):
    sent = factory()
    typed, raw = _exchange(ros_context, msg_type, sent)
    assert typed and raw, 'the subscriber received nothing'
    assert typed[0] == sent

    name = f'ahawam_ros/msg/{msg_type.__name__}'
    store, records = _bag_round_trip(tmp_path, name, '/ctx', bytes(raw[0]), storage)
    assert [(topic, msgtype, stamp) for topic, msgtype, stamp, _ in records] == [
        ('/ctx', name, 42)]
    from_bag = records[0][3]
    assert deserialize_message(from_bag, msg_type) == sent
    decoded = store.deserialize_cdr(from_bag, name)
    assert decoded.header.frame_id == sent.header.frame_id
    assert decoded.header.stamp.nanosec == sent.header.stamp.nanosec
    if msg_type is WorldContext:
        assert (decoded.seq, decoded.handle, decoded.memory_fill) == (7, 'boot-abc:7', 3)
    else:
        assert list(decoded.positions) == list(sent.positions)
        assert list(decoded.joint_names) == list(sent.joint_names)
