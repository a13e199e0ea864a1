"""The bimanual_sim node: real MuJoCo simulator behind the robot's topics."""

import math
import threading
import time
import uuid

from ahawam_ros.robot import JOINT_NAMES
from ahawam_ros.ros import conversions as conv
from ahawam_ros.ros.bimanual_sim_node import (BimanualSimNode, DIAGNOSTICS_NAME,
                                              DIAGNOSTICS_TOPIC, RESET_JUMP_GUARD)
from ahawam_ros.ros.image_conversion import ImageConverter
from ahawam_ros.ros.qos import CAMERA_QOS
from ahawam_ros.srv import ResetEpisode
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from rclpy.node import Node
from ros_test_utils import params, spinning, wait_for
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, Header
from trajectory_msgs.msg import JointTrajectory

pytestmark = [pytest.mark.ros, pytest.mark.sim]
CAMERAS = ('top', 'left_wrist')


class Listener(Node):
    """Records joint states, images and rewards from the simulator; sends commands."""

    def __init__(self, **kwargs):
        super().__init__('sim_listener', **kwargs)
        self.lock = threading.Lock()
        self.joints, self.images, self.rewards = [], {c: [] for c in CAMERAS}, []
        self.create_subscription(JointState, 'joint_states', self._keep(self.joints), 50)
        for camera in CAMERAS:
            self.create_subscription(Image, f'cameras/{camera}/image_raw',
                                     self._keep(self.images[camera]), CAMERA_QOS)
        self.create_subscription(Float64, 'sim/reward', self._keep(self.rewards), 50)
        self.diagnostics = []
        self.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC,
                                 self._keep(self.diagnostics), 10)
        self.command_pub = self.create_publisher(JointTrajectory, 'joint_trajectory', 10)
        self.reset_client = self.create_client(ResetEpisode, 'sim/reset')

    def _keep(self, store):
        def callback(msg):
            with self.lock:
                store.append((time.monotonic(), msg))
        return callback

    def reset(self, seed: int):
        """Call the reset service and wait for its answer."""
        future = self.reset_client.call_async(ResetEpisode.Request(seed=seed))
        assert wait_for(future.done, timeout=10)
        return future.result()


def _system(context):
    namespace = f'/s{uuid.uuid4().hex[:8]}'
    sim = BimanualSimNode(context=context, namespace=namespace, parameter_overrides=params(
        cameras=list(CAMERAS), image_height=48, image_width=64, camera_every=2))
    return sim, Listener(context=context, namespace=namespace)


def test_sim_publishes_every_step_and_a_command_moves_the_arms(ros_context):
    sim, listener = _system(ros_context)
    with spinning(ros_context, [sim, listener]):
        assert wait_for(lambda: len(listener.joints) >= 60, timeout=60)
        with listener.lock:
            joints = list(listener.joints)
            images = {c: list(v) for c, v in listener.images.items()}
        target = conv.joint_positions(joints[-1][1], JOINT_NAMES).copy()
        start = target.copy()
        target[0] += 0.3  # left waist
        target[7] -= 0.3  # right waist

        def arrived() -> bool:
            listener.command_pub.publish(
                conv.trajectory_command_msg(target, JOINT_NAMES, sim.now(), 0.02))
            with listener.lock:
                now = conv.joint_positions(listener.joints[-1][1], JOINT_NAMES)
            return (np.allclose(now[[0, 7]], target[[0, 7]], atol=0.1)
                    and np.allclose(now[1:7], start[1:7], atol=0.1))

        # until the arms got there and settled, however slowly a loaded machine simulates
        assert wait_for(arrived, timeout=60, period=0.02)
        with listener.lock:
            final = conv.joint_positions(listener.joints[-1][1], JOINT_NAMES)
    # The rate itself is a figure (the demo reports the real-time factor), not asserted: the
    # simulator may fall behind on a loaded machine, but it never runs ahead of real time.
    stamps = np.array([conv.stamp_seconds(msg.header.stamp) for _, msg in joints])
    assert np.all(np.diff(stamps) > 0.0)
    assert (len(stamps) - 1) / (stamps[-1] - stamps[0]) <= 1.1 / 0.02
    for camera in CAMERAS:
        rgb = ImageConverter().to_rgb(images[camera][-1][1])
        assert rgb.shape == (48, 64, 3) and rgb.std() > 1.0
        assert 3 <= len(images[camera]) <= len(joints)  # at most every 2nd step's state
    assert abs(final[0] - start[0]) > 0.2 and abs(final[7] - start[7]) > 0.2
    assert np.allclose(final[1:7], start[1:7], atol=0.1)


def test_sim_follows_a_multi_point_trajectory_after_its_last_message(ros_context):
    """One message of 25 points over 0.5 s: the arm moves along it, as a controller would."""
    sim, listener = _system(ros_context)
    with spinning(ros_context, [sim, listener]):
        assert wait_for(lambda: len(listener.joints) >= 20, timeout=60)
        with listener.lock:
            start = conv.joint_positions(listener.joints[-1][1], JOINT_NAMES).copy()
        times = 0.02 * np.arange(1, 26)
        path = np.repeat(start[None], 25, axis=0)
        path[:, 0] += 0.4 * times / times[-1]  # left waist: 0.4 rad in 0.5 s
        velocities = np.zeros_like(path)
        velocities[:-1, 0] = 0.4 / times[-1]
        stamp = sim.now()
        msg = conv.trajectory_command_msg(path, JOINT_NAMES, stamp, 0.02, 0.02, velocities)
        listener.command_pub.publish(msg)
        assert wait_for(lambda: sim.now() > stamp + 1.0, timeout=60)
        with listener.lock:
            joints = [m for _, m in listener.joints if conv.stamp_seconds(m.header.stamp) > stamp]
    waist = np.array([conv.joint_positions(m, JOINT_NAMES)[0] for m in joints]) - start[0]
    # it passes through the middle of the path on the way (one point only: a jump and a stop
    # at 0.016 rad), reaches its end and stays there
    assert np.any((waist > 0.1) & (waist < 0.3)), waist
    assert waist[-1] == pytest.approx(0.4, abs=0.05) and np.all(np.diff(waist) > -0.02)


def test_reset_with_a_seed_is_reproducible(ros_context):
    sim, listener = _system(ros_context)
    with spinning(ros_context, [sim, listener]):
        assert wait_for(lambda: listener.reset_client.service_is_ready(), timeout=10)
        first, second, other = [], [], []
        for seed, store in ((7, first), (7, second), (8, other)):
            assert listener.reset(seed).success
            store.append(sim.last_reset.object_pose.copy())
            store.append(sim.last_reset.images['top'].copy())
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other[0])


def test_sim_rejects_bad_commands_and_keeps_running(ros_context):
    sim, listener = _system(ros_context)
    with spinning(ros_context, [sim, listener]):
        assert wait_for(lambda: len(listener.joints) >= 5, timeout=15)
        bad = conv.trajectory_command_msg(np.full(14, np.nan), JOINT_NAMES, 0.0, 0.02)
        listener.command_pub.publish(bad)
        time.sleep(0.3)
        count = len(listener.joints)
        assert wait_for(lambda: len(listener.joints) >= count + 10, timeout=30)
    with listener.lock:
        last = conv.joint_positions(listener.joints[-1][1], JOINT_NAMES)
    assert np.all(np.isfinite(last))


def _sim_status(listener):
    with listener.lock:
        arrays = [msg for _, msg in listener.diagnostics]
    statuses = [s for a in arrays for s in a.status if s.name == DIAGNOSTICS_NAME]
    return {kv.key: kv.value for kv in statuses[-1].values} if statuses else None


def test_sim_reports_its_real_time_factor_in_diagnostics(ros_context):
    sim, listener = _system(ros_context)
    with spinning(ros_context, [sim, listener]):
        assert wait_for(lambda: _sim_status(listener) is not None, timeout=15)
        assert wait_for(lambda: float(_sim_status(listener)['frames_rendered']) > 0, timeout=15)
        values = _sim_status(listener)
    factor = float(values['real_time_factor'])
    assert math.isfinite(factor) and factor > 0.0, values
    assert float(values['sim_seconds']) > 0.0 and float(values['wall_seconds']) > 0.0
    assert values['sim_clock'] == 'wall' and float(values['target_real_time_factor']) == 1.0


def test_after_a_reset_commands_far_from_the_reset_pose_are_ignored(ros_context):
    sim, listener = _system(ros_context)
    with spinning(ros_context, [sim, listener]):
        assert wait_for(lambda: listener.reset_client.service_is_ready(), timeout=10)
        assert listener.reset(3).success
        start = sim.last_reset.qpos.copy()
        far, near = start.copy(), start.copy()
        far[0] += 2.0 * RESET_JUMP_GUARD  # an old episode's command still in flight
        near[0] += 0.5 * RESET_JUMP_GUARD
        for target in (far, near):
            for _ in range(25):
                listener.command_pub.publish(
                    conv.trajectory_command_msg(target, JOINT_NAMES, sim.now(), 0.02))
                time.sleep(0.02)
            time.sleep(0.3)
            with listener.lock:
                reached = conv.joint_positions(listener.joints[-1][1], JOINT_NAMES)[0]
            if target is far:
                assert sim.ignored_commands >= 20
                assert abs(reached - start[0]) < 0.1  # the arm stayed at the reset pose
    assert abs(reached - near[0]) < 0.1  # then a command near it is followed


def test_with_episode_steps_the_simulator_starts_the_next_episode_on_its_own(ros_context):
    namespace = f'/s{uuid.uuid4().hex[:8]}'
    sim = BimanualSimNode(context=ros_context, namespace=namespace, parameter_overrides=params(
        cameras=['top'], image_height=48, image_width=64, episode_steps=25, seed=40))
    starts = []
    watcher = Node('episode_watcher', context=ros_context, namespace=namespace)
    watcher.create_subscription(Header, 'episode_start', starts.append, 10)
    with spinning(ros_context, [sim, watcher]):
        assert wait_for(lambda: len(starts) >= 3, timeout=20), len(starts)  # 0.5 s each
        steps = sim.observation.step
    assert steps <= 25 and sim._seed >= 42  # seeds 40, 41, 42, ...
    times = [s.stamp.sec + 1e-9 * s.stamp.nanosec for s in starts[:3]]
    assert all(0.3 < b - a < 1.5 for a, b in zip(times, times[1:])), times
