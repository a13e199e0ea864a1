"""Stamps from other clocks reach the nodes' stamp checks with their topic names (fake policy)."""

import logging
import uuid

from ahawam_ros.robot import JOINT_NAMES
from ahawam_ros.ros import conversions as conv
from ahawam_ros.ros.action_executor_node import ActionExecutorNode
from ahawam_ros.ros.image_conversion import rgb_to_image_msg
from ahawam_ros.ros.qos import CAMERA_QOS
from ahawam_ros.ros.world_planner_node import WorldPlannerNode
import numpy as np
import pytest
from rclpy.node import Node
from ros_test_utils import params, rgb_frame, spinning, wait_for
from sensor_msgs.msg import Image, JointState

pytestmark = pytest.mark.ros
HW = 8
CAMERAS = ('cameras/good/image_raw', 'cameras/unset/image_raw')


class ClockStub(Node):
    """Joint states stamped now (one of them 30 s ahead); one camera stamped now, one unset."""

    def __init__(self, **kwargs):
        super().__init__('clock_stub', **kwargs)
        self.joints = self.create_publisher(JointState, 'joint_states', 10)
        self.cameras = [self.create_publisher(Image, t, CAMERA_QOS) for t in CAMERAS]
        self.lead = 0.0  # added to the next joint state's stamp, then reset
        self.create_timer(0.02, self._publish_joints)
        self.create_timer(0.05, self._publish_frames)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _publish_joints(self) -> None:
        lead, self.lead = self.lead, 0.0
        self.joints.publish(conv.joint_state_msg(np.zeros(len(JOINT_NAMES)), JOINT_NAMES,
                                                 self.now() + lead))

    def _publish_frames(self) -> None:
        good, unset = conv.to_time_msg(self.now()), conv.to_time_msg(0.0)
        for publisher, stamp in zip(self.cameras, (good, unset)):
            publisher.publish(rgb_to_image_msg(rgb_frame(HW, HW), stamp))


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_nodes_refuse_future_and_unset_stamps_naming_the_topic(ros_context):
    namespace = f'/t{uuid.uuid4().hex[:8]}'
    common = {'checkpoint': 'fake', 'camera_topics': list(CAMERAS), 'image_height': HW,
              'image_width': HW}
    stub = ClockStub(context=ros_context, namespace=namespace)
    planner = WorldPlannerNode(context=ros_context, namespace=namespace,
                               parameter_overrides=params(refresh_rate_hz=10.0, **common))
    executor = ActionExecutorNode(context=ros_context, namespace=namespace,
                                  parameter_overrides=params(**common))
    joints, unset = f'{namespace}/joint_states', f'{namespace}/{CAMERAS[1]}'
    core_log, records = logging.getLogger('ahawam_ros'), _Records()
    core_log.addHandler(records)  # the core's logging, which a node process bridges to ROS
    try:
        with spinning(ros_context, [stub, planner, executor]):
            assert wait_for(lambda: executor.core.stamps.newest(joints) is not None)
            stub.lead = 30.0
            assert wait_for(lambda: executor.core.stats().get(
                f'stamps_refused_future[{joints}]') == 1)
            refused_at = executor.now()
            # the next good joint state is taken at once
            assert wait_for(lambda: executor.core.stamps.newest(joints) > refused_at)
            assert wait_for(lambda: planner.core.stats().get(
                f'stamps_refused_zero[{unset}]', 0) >= 3)
    finally:
        core_log.removeHandler(records)
        for node in (stub, planner, executor):
            node.destroy_node()
    assert executor.core.stats()['rejected_joint_states'] == 1
    assert planner.core.stats()['published'] == 0  # it never had a usable frame of `unset`
    messages = records.messages
    assert sum(unset in m and 'stamp is 0' in m for m in messages) == 2  # planner, executor
    assert sum(joints in m and 'ahead' in m for m in messages) == 1
