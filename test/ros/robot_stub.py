"""A stand-in robot for node tests: publishes cameras and joint states, records commands."""

import threading
from typing import List

from ahawam_ros.msg import ActionChunk
from ahawam_ros.robot import JOINT_NAMES
from ahawam_ros.ros import conversions as conv
from ahawam_ros.ros.image_conversion import rgb_to_image_msg
from ahawam_ros.ros.qos import CAMERA_QOS, COMMAND_QOS
import numpy as np
from rclpy.node import Node
from ros_test_utils import rgb_frame
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory


class RobotStub(Node):
    """Publishes V camera streams (20 Hz) and joint states (50 Hz); records what it receives."""

    def __init__(self, views: int, height: int, width: int, publish_joints: bool = True,
                 **kwargs):
        super().__init__('robot_stub', **kwargs)
        self.views, self.hw = views, (height, width)
        self.camera_topics = [f'cameras/cam{v}/image_raw' for v in range(views)]
        self._cameras = [self.create_publisher(Image, topic, CAMERA_QOS)
                         for topic in self.camera_topics]
        self._joints = self.create_publisher(JointState, 'joint_states', 10)
        self.positions = np.linspace(-0.3, 0.3, len(JOINT_NAMES))
        self.positions[[6, 13]] = 0.5  # grippers half open
        self.joint_value = None  # override, e.g. NaN
        self.publish_joints = publish_joints
        self.publish_cameras = True
        self.commands: List[JointTrajectory] = []
        self.chunks: List[ActionChunk] = []
        self._lock = threading.Lock()
        self.create_subscription(JointTrajectory, 'joint_trajectory', self._on_command,
                                 COMMAND_QOS)
        self.create_subscription(ActionChunk, 'action_chunk', self._on_chunk, 10)
        self.create_timer(0.05, self._camera_tick)
        self.create_timer(0.02, self._publish_joints)
        self._frame = 0

    def now(self) -> float:
        """Return the node clock in seconds."""
        return self.get_clock().now().nanoseconds * 1e-9

    def _camera_tick(self) -> None:
        if self.publish_cameras:
            self.publish_frames()

    def publish_frames(self) -> None:
        """Publish one frame per camera, stamped now."""
        self._frame += 1
        stamp = conv.to_time_msg(self.now())
        for v, publisher in enumerate(self._cameras):
            publisher.publish(rgb_to_image_msg(rgb_frame(*self.hw, self._frame + v), stamp))

    def _publish_joints(self) -> None:
        if not self.publish_joints:
            return
        positions = self.positions.copy()
        if self.joint_value is not None:
            positions[:] = self.joint_value
        self._joints.publish(conv.joint_state_msg(positions, JOINT_NAMES, self.now()))

    def _on_command(self, msg: JointTrajectory) -> None:
        with self._lock:
            self.commands.append(msg)

    def _on_chunk(self, msg: ActionChunk) -> None:
        with self._lock:
            self.chunks.append(msg)

    def received(self):
        """Return copies of (commands, chunks) received so far."""
        with self._lock:
            return list(self.commands), list(self.chunks)
