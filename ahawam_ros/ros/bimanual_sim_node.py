"""
The bimanual_sim node: the embedded ALOHA simulator behind the robot's topics.

Publishes the configured cameras (sensor_msgs/Image rgb8) and /joint_states at the control
rate, steers each step to the next point of the executor's newest JointTrajectory (after a
late message, along its later points: `sim.trajectory_follower`) or to the newest position
command, publishes reward and success, and resets to a seeded episode on the `sim/reset`
service. With `publish_clock` the node is the clock: each physics step advances /clock by one
control period, and nodes with use_sim_time follow the simulation (at `real_time_factor` x
wall time).

Timing: physics steps at the control rate on a steady clock, catching up a few late steps
(`sim.pacing`); the cameras are rendered only every `camera_every`-th step, and not on the
physics thread: a render thread pictures the newest state (`sim.renderer.BackgroundRenderer`),
so a slow software render drops frames instead of slowing the physics. The measured
real-time factor (simulated per wall second) goes to /diagnostics once a second.
"""

import dataclasses
import math
import queue
import sys
import threading
from typing import Optional

from ahawam_ros.ros import conversions as conv
from ahawam_ros.ros.image_conversion import rgb_to_image_msg
from ahawam_ros.ros.node_configs import BimanualSimConfig
from ahawam_ros.ros.params import declare_config
from ahawam_ros.ros.qos import CAMERA_QOS, COMMAND_QOS
from ahawam_ros.ros.spin import run_nodes
from ahawam_ros.sim.aloha_env import AlohaSim, Observation, SimConfig
from ahawam_ros.sim.pacing import Pacer, RealTimeMeter
from ahawam_ros.sim.renderer import BackgroundRenderer
from ahawam_ros.sim.trajectory_follower import TrajectoryFollower
from ahawam_ros.srv import ResetEpisode
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray, Header
from trajectory_msgs.msg import JointTrajectory

DIAGNOSTICS_TOPIC = '/diagnostics'
DIAGNOSTICS_NAME = 'bimanual_sim'
MAX_LAG_STEPS = 10  # late physics steps caught up back to back (0.2 s at 50 Hz)
# After a reset, commands are followed only from the first one this close (rad, or normalised
# gripper units) to the reset pose: commands of the previous episode still in flight (sent
# before the executor saw the reset) would otherwise fling the arms across the scene.
RESET_JUMP_GUARD = 0.5
REAL_TIME_OK = 0.95  # measured / target real-time factor below which the status warns


class BimanualSimNode(Node):
    """
    Exposes the simulator through ROS topics; a thread of its own steps it like hardware.

    MuJoCo's offscreen GL context belongs to the thread that created it, and the executor
    runs callbacks on any of its threads, so one dedicated thread creates, steps, renders and
    resets the simulator at the control rate (steady clock); the reset service hands it the
    request and waits for the answer.
    """

    def __init__(self, **node_kwargs):
        super().__init__('bimanual_sim', **node_kwargs)
        self.config = config = declare_config(self, BimanualSimConfig)
        self.period = 1.0 / config.control_rate_hz
        self.sim: Optional[AlohaSim] = None
        self.renderer: Optional[BackgroundRenderer] = None
        self.meter: Optional[RealTimeMeter] = None
        self.observation: Optional[Observation] = None
        self.last_reset: Optional[Observation] = None  # the observation of the last reset
        self._seed = self.config.seed  # of the current episode
        self._command = None  # newest valid (A,) position command
        self._follower = TrajectoryFollower()  # the trajectory commands, as a controller would
        self._guard_pose = None  # reset pose until a command near it arrives (RESET_JUMP_GUARD)
        self.ignored_commands = 0  # far from the reset pose, right after a reset
        self._command_lock = threading.Lock()
        self._sim_time = 0.0  # seconds of simulated time since the node started
        self._reported = set()
        self._requests: 'queue.Queue' = queue.Queue()
        self._stop = threading.Event()
        self._make_publishers(config)
        callbacks = MutuallyExclusiveCallbackGroup()
        if config.command_interface == 'trajectory':
            self.create_subscription(JointTrajectory, config.trajectory_topic,
                                     self._on_trajectory, COMMAND_QOS, callback_group=callbacks)
        else:
            self.create_subscription(Float64MultiArray, config.position_topic,
                                     self._on_position, COMMAND_QOS, callback_group=callbacks)
        self.create_service(ResetEpisode, config.reset_service, self._on_reset,
                            callback_group=callbacks)
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name='bimanual-sim',
                                        daemon=True)
        self._thread.start()
        ready.wait(timeout=60.0)
        if self.sim is None:
            raise RuntimeError('the simulator failed to start (see the log)')

    def _sim_config(self, task: str) -> SimConfig:
        return SimConfig(task=task, cameras=self.config.cameras,
                         image_height=self.config.image_height,
                         image_width=self.config.image_width, seed=self.config.seed)

    def _open_sim(self, task: str) -> None:
        """Create the physics-only simulator and the render thread of its cameras."""
        config = self._sim_config(task)
        self.sim = AlohaSim(dataclasses.replace(config, cameras=()))  # physics only
        self.renderer = (BackgroundRenderer(self.sim.model, config.cameras, config.image_height,
                                            config.image_width, self._publish_images)
                         if config.cameras else None)

    def _close_sim(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None
        self.sim.close()

    def _make_publishers(self, config: BimanualSimConfig) -> None:
        self._camera_pubs = {name: self.create_publisher(
            Image, config.camera_topic_pattern.format(name=name), CAMERA_QOS)
            for name in config.cameras}
        self._joint_pub = self.create_publisher(JointState, config.joint_state_topic, 10)
        self._reward_pub = self.create_publisher(Float64, config.reward_topic, 10)
        self._success_pub = self.create_publisher(Bool, config.success_topic, 10)
        self._episode_pub = self.create_publisher(Header, config.episode_topic, 10)
        self._clock_pub = (self.create_publisher(ClockMsg, '/clock', 10)
                           if config.publish_clock else None)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)

    def now(self) -> float:
        """Return the stamp of the current state: simulated time, or the node clock."""
        if self._clock_pub is not None:
            return self._sim_time
        return self.get_clock().now().nanoseconds * 1e-9

    # ---- commands -------------------------------------------------------------------------

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            times, positions, velocities = conv.trajectory_points(msg, self.sim.joint_names)
        except ValueError as error:
            self._report_once(f'ignoring trajectory command: {error}')
            return
        now = self.now()
        start = conv.stamp_seconds(msg.header.stamp) or now  # 0: start now, as ros2_control
        with self._command_lock:
            if self._after_reset(positions[0]):
                self._follower.receive(now, start, times, positions, velocities,
                                       measured=self.observation.qpos)

    def _on_position(self, msg: Float64MultiArray) -> None:
        try:
            self._set_command(conv.command_positions(msg, len(self.sim.joint_names)))
        except ValueError as error:
            self._report_once(f'ignoring position command: {error}')

    def _set_command(self, positions) -> None:
        with self._command_lock:
            if self._after_reset(positions):
                self._command = positions

    def _after_reset(self, positions) -> bool:
        """Return whether a command may be followed (call under the command lock)."""
        if self._guard_pose is not None:
            if np.max(np.abs(positions - self._guard_pose)) > RESET_JUMP_GUARD:
                self.ignored_commands += 1
                return False
            self._guard_pose = None
        return True

    def _report_once(self, text: str) -> None:
        if text not in self._reported:
            self._reported.add(text)
            self.get_logger().error(f'{text} (reported once)')

    # ---- the simulator thread -------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        try:
            self._open_sim(self.config.task)
            self._seed = self.config.seed
            self.observation = self._start_episode(self._seed)
        except Exception as error:  # noqa: B902 - reported, then the constructor raises
            self.get_logger().error(f'simulator start failed: {error}')
            return
        finally:
            ready.set()
        pacer = Pacer(self.period / self.config.real_time_factor, MAX_LAG_STEPS)
        self.meter = RealTimeMeter()
        next_report = self.meter.wall_seconds + 1.0
        while not self._stop.is_set():
            self._serve_requests()
            self._next_episode_if_due()
            self._step()
            self.meter.add(self.period)
            if self.meter.wall_seconds >= next_report:
                next_report += 1.0
                self._publish_diagnostics(pacer)
            delay = pacer.delay()
            if delay > 0:
                self._stop.wait(delay)
        self._close_sim()

    def _next_episode_if_due(self) -> None:
        """With `episode_steps`, an episode that ran that long gives way to the next seed."""
        steps = self.config.episode_steps
        if steps and self.observation.step >= steps:
            self._seed += 1
            self.observation = self._start_episode(self._seed)

    def _serve_requests(self) -> None:
        while not self._requests.empty():
            seed, task, reply = self._requests.get_nowait()
            try:
                self._seed = seed
                self.observation = self._start_episode(seed, task)
                reply.update(success=True, message=self.sim.config.task)
            except (ValueError, RuntimeError) as error:
                reply.update(success=False, message=str(error))
            reply['done'].set()

    def _start_episode(self, seed: int, task: Optional[str] = None) -> Observation:
        if task and task != self.sim.config.task:
            self._close_sim()
            self._open_sim(task)
        observation = self.sim.reset(seed)
        with self._command_lock:
            self._command = None  # commands of the previous episode must not leak into this one
            self._follower.clear()
            self._guard_pose = observation.qpos.copy()
        # The episode marker first: subscribers refuse observations stamped before it.
        stamp = self.now()
        self._episode_pub.publish(Header(stamp=conv.to_time_msg(stamp),
                                         frame_id=self.sim.config.task))
        self._publish_observation(observation)
        if self.renderer is not None:  # the first frame of an episode is waited for
            images = self.renderer.submit(self.sim.data.qpos, stamp, wait=True)
            observation = dataclasses.replace(observation, images=images)
        self.last_reset = observation
        self.get_logger().info(f'episode reset: task {self.sim.config.task}, seed {seed}')
        return observation

    def _step(self) -> None:
        self.observation = self.sim.step(self._target())
        self._sim_time += self.period
        self._publish_observation(self.observation)
        if self.renderer is not None and self.observation.step % self.config.camera_every == 0:
            self.renderer.submit(self.sim.data.qpos, self.now())

    def _target(self) -> np.ndarray:
        """
        Return the (A,) joint targets of the coming physics step.

        The followed trajectory's next point due (its first while messages come on time, the
        following ones when they stop); else the newest position command; else where the arm
        is.
        """
        with self._command_lock:
            if self._follower.following:
                return self._follower.next_point(self.now())
            command = self._command
        return self.observation.qpos if command is None else command

    def _on_reset(self, request, response):
        reply = {'done': threading.Event(), 'success': False, 'message': 'simulator stopped'}
        self._requests.put((int(request.seed), request.task or None, reply))
        reply['done'].wait(timeout=30.0)
        response.success, response.message = reply['success'], reply['message']
        return response

    def on_shutdown(self) -> None:
        """Stop the simulator thread (it closes the renderer in its own thread)."""
        self._stop.set()
        self._thread.join(timeout=5.0)

    def destroy_node(self):
        """Stop the simulator thread before the node's publishers go away."""
        self.on_shutdown()
        return super().destroy_node()

    def _publish_observation(self, observation: Observation) -> None:
        if self._clock_pub is not None:
            self._clock_pub.publish(ClockMsg(clock=conv.to_time_msg(self._sim_time)))
        stamp = self.now()
        self._joint_pub.publish(conv.joint_state_msg(observation.qpos, self.sim.joint_names,
                                                     stamp, observation.qvel))
        self._reward_pub.publish(Float64(data=float(observation.reward)))
        self._success_pub.publish(Bool(data=bool(observation.success)))

    def _publish_images(self, images, stamp: float) -> None:
        """Publish one rendered frame per camera, stamped with the pictured state's time."""
        time_msg = conv.to_time_msg(stamp)
        for name, publisher in self._camera_pubs.items():
            publisher.publish(rgb_to_image_msg(images[name], time_msg, f'{name}_camera'))

    def timing(self, pacer: Optional[Pacer] = None) -> dict:
        """Return the real-time factor and the render figures measured so far."""
        meter, renderer = self.meter, self.renderer
        rendered = renderer.rendered if renderer is not None else 0
        return {
            'real_time_factor': meter.factor() if meter is not None else math.nan,
            'real_time_factor_overall': meter.overall() if meter is not None else math.nan,
            'target_real_time_factor': self.config.real_time_factor,
            'sim_seconds': meter.sim_seconds if meter is not None else 0.0,
            'wall_seconds': meter.wall_seconds if meter is not None else 0.0,
            'sim_clock': 'clock' if self._clock_pub is not None else 'wall',
            'frames_rendered': rendered,
            'frames_dropped': renderer.dropped if renderer is not None else 0,
            'render_ms_mean': (1e3 * renderer.render_seconds / rendered if rendered
                               else math.nan),
            'wall_time_given_up_steps': pacer.given_up if pacer is not None else 0,
            'commands_ignored_after_reset': self.ignored_commands}

    def _publish_diagnostics(self, pacer: Pacer) -> None:
        figures = self.timing(pacer)
        factor = figures['real_time_factor']
        keeping_up = factor >= REAL_TIME_OK * self.config.real_time_factor
        status = DiagnosticStatus(
            level=DiagnosticStatus.OK if keeping_up else DiagnosticStatus.WARN,
            name=DIAGNOSTICS_NAME, hardware_id='aloha_sim',
            message=f'real-time factor {factor:.2f} (target '
                    f'{self.config.real_time_factor:g})',
            values=[KeyValue(key=k, value=f'{v:.6g}' if isinstance(v, float) else str(v))
                    for k, v in figures.items()])
        self._diagnostics_pub.publish(DiagnosticArray(
            header=Header(stamp=conv.to_time_msg(self.now())), status=[status]))


def main(args=None) -> int:
    """Run the simulator node alone."""
    return run_nodes(lambda: [BimanualSimNode()], args=args, exit_process=True)


if __name__ == '__main__':
    sys.exit(main())
