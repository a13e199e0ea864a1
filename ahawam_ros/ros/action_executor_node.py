"""
The action_executor node: joint commands on a fast timer from chunks computed off-timer.

rclpy's executor carries only cheap callbacks, in separate callback groups: the command timer
(50 Hz by default: next action of the aligned, blended plan, through the safety filter), the
inputs (joint states, camera frames, world-context descriptors resolved by reference) and
diagnostics. Inference (OVCR + Euler steps against the newest planner context) runs in the
runtime's own chunk worker thread, woken by new inputs; it publishes each accepted chunk.

Why not a chunk timer on the executor: a timer whose callback group is busy for the length of
an inference stays ready, and rclpy's executor then re-polls its wait set in Python without
blocking, holding the GIL that the command timer and torch need (measured: command rate fell
to 30 Hz on 2 cores with the tiny preset). Inference outside the executor keeps every callback
short.
"""

import math
import sys
import time
from typing import Optional

from ahawam_ros.kinematics import ArmKinematics
from ahawam_ros.msg import ActionChunk, WorldContext
from ahawam_ros.ros import conversions as conv
from ahawam_ros.ros.camera_set import CameraSet
from ahawam_ros.ros.episode_task import follow_episode_task
from ahawam_ros.ros.hold_monitor import hold_level, HoldMonitor, input_problems, LogLine, OK
from ahawam_ros.ros.hold_monitor import problems_text
from ahawam_ros.ros.node_configs import ActionExecutorConfig
from ahawam_ros.ros.params import changes, declare_config, LiveConfig
from ahawam_ros.ros.qos import COMMAND_QOS, CONTEXT_QOS
from ahawam_ros.ros.spin import run_nodes
from ahawam_ros.runtime.assembly import build_executor, HostRules
from ahawam_ros.runtime.chunk_scheduler import ACCEPTED
from ahawam_ros.runtime.context_slot import ContextUnavailableError
from ahawam_ros.runtime.executor_core import Command, ExecutorCoreConfig
from ahawam_ros.runtime.intra_process import intra_process_topics
from ahawam_ros.runtime.loading import condition_on_task, load_policy, policy_image_hw
from ahawam_ros.runtime.orchestrator import RuntimeOrchestrator
from ahawam_ros.runtime.policy_api import ChunkPolicy
from ahawam_ros.runtime.settings import executor_core_config
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, Header
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

FINAL_HOLD_ACK_S = 1.0  # longest wait for reliable subscribers to acknowledge the final hold


class ActionExecutorNode(Node):
    """
    Publishes one safe joint command per control tick; computes chunks off the timer.

    `runtime` is the process's orchestration of the workers (bringup shares one between the
    planner and the executor node); a node alone makes its own.
    """

    def __init__(self, policy: Optional[ChunkPolicy] = None,
                 runtime: Optional[RuntimeOrchestrator] = None, **node_kwargs):
        super().__init__('action_executor', **node_kwargs)
        self.config = config = declare_config(self, ActionExecutorConfig)
        self.policy = policy or load_policy(config.checkpoint, config.device)
        condition_on_task(self.policy, config.task)  # an unknown task: one line, exit 2
        self.host = HostRules.for_ros(self.now)
        self.core = build_executor(self.policy, config, self.host, limits=config.limits())
        self.period = 1.0 / config.control_rate_hz
        inputs = MutuallyExclusiveCallbackGroup()
        image_hw = policy_image_hw(self.policy, config.image_height, config.image_width)
        self.cameras = CameraSet(self, config.camera_topics, image_hw, config.resize_images,
                                 inputs, self.core.check_camera_stamp)
        self._make_publishers(config)
        self._joint_topic = self.create_subscription(
            JointState, config.joint_state_topic, self._on_joint_state, 10,
            callback_group=inputs).topic_name
        self._context_topic = self.create_subscription(
            WorldContext, config.context_topic, self._on_context, CONTEXT_QOS,
            callback_group=inputs).topic_name
        # the same handles straight from a planner in this process (see runtime/intra_process)
        self._intra_token = intra_process_topics().subscribe(self._context_topic,
                                                             self._on_context_handle)
        self.create_subscription(Header, config.episode_topic, self._on_episode_start, 10,
                                 callback_group=inputs)
        self._command_timer = self.create_timer(self.period, self._on_command_tick,
                                                callback_group=MutuallyExclusiveCallbackGroup())
        self._diagnostics_timer = self.create_timer(
            config.diagnostics_period, self._on_diagnostics,
            callback_group=MutuallyExclusiveCallbackGroup())
        self.live = LiveConfig(self, config, self._apply_parameters, check=self._core_config)
        self.last_command: Optional[Command] = None
        self.monitor = HoldMonitor(config.transition_log_period)
        self._last_tick: Optional[Command] = None
        self._reported = set()
        self._sent = 0  # command messages published (holds included)
        self._previous_counts = None  # (time, (executed, sent, chunks)) of the last diagnostics
        # rclpy's context shutdown does not reliably destroy every node: stop on it too.
        self.context.on_shutdown(self.core.stop_worker)
        self.runtime = runtime or RuntimeOrchestrator()
        self.runtime.start_executor(self.core, self._chunk_step, config.torch_threads)
        if self.runtime.warm_up_s > 0.0:
            self.get_logger().info(f'policy warm-up: {self.runtime.warm_up_s:.2f} s')

    def _make_publishers(self, config: ActionExecutorConfig) -> None:
        interfaces = set(config.command_interfaces)
        self._trajectory_pub = (self.create_publisher(
            JointTrajectory, config.trajectory_topic, COMMAND_QOS)
            if 'trajectory' in interfaces else None)
        self._position_pub = (self.create_publisher(
            Float64MultiArray, config.position_topic, COMMAND_QOS)
            if 'position' in interfaces else None)
        self._commanded_pub = self.create_publisher(JointState, config.commanded_state_topic, 10)
        self._chunk_pub = self.create_publisher(ActionChunk, config.chunk_topic, 10)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray,
                                                      config.diagnostics_topic, 10)
        self._markers_pub = self.create_publisher(MarkerArray, config.chunk_marker_topic, 5)
        self._kinematics = None  # built on first use: only rviz needs it

    def _core_config(self, config: ActionExecutorConfig) -> ExecutorCoreConfig:
        """Return the runtime's config of these parameters, as `build_executor` made it."""
        return executor_core_config(config, config.limits(), self.host.zero_stamp_is_unset)

    def _apply_parameters(self, old: ActionExecutorConfig, new: ActionExecutorConfig) -> None:
        """Apply a validated live change: runtime settings, then the timers' periods."""
        self.config = new
        self.core.reconfigure(self._core_config(new))  # from the next tick and chunk on
        if new.control_rate_hz != old.control_rate_hz:
            self.period = 1.0 / new.control_rate_hz
            self._command_timer.timer_period_ns = round(1e9 * self.period)
        self.monitor.log_period = new.transition_log_period
        if new.diagnostics_period != old.diagnostics_period:
            self._diagnostics_timer.timer_period_ns = round(1e9 * new.diagnostics_period)
        self.get_logger().info(f'parameters changed: {changes(old, new)}')

    def now(self) -> float:
        """Return the node's clock in seconds (sim time when use_sim_time is set)."""
        return self.get_clock().now().nanoseconds * 1e-9

    # ---- inputs ---------------------------------------------------------------------------

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            positions = conv.joint_positions(msg, self.config.joint_names)
        except conv.JointStateError as error:
            self._report_once('joint_state', f'ignoring joint state: {error}')
            return
        # the stamp as sent: the core refuses (counts, logs) unset or future ones
        self.core.update_joints(positions, conv.stamp_seconds(msg.header.stamp),
                                self._joint_topic)

    def _on_context(self, msg: WorldContext) -> None:
        self._on_context_handle(msg.handle)

    def _on_context_handle(self, handle: str) -> None:
        try:
            self.core.accept_context(handle, self._context_topic)
        except ContextUnavailableError as error:
            self._report_once('context', f'cannot use world context {handle}: {error}')

    def _on_episode_start(self, msg: Header) -> None:
        follow_episode_task(self, msg.frame_id)
        self.core.reset(episode_start=conv.stamp_seconds(msg.stamp), clear_context=True)
        self.cameras.clear()

    # ---- timers ---------------------------------------------------------------------------

    def _on_command_tick(self) -> None:
        command = self.core.tick(ahead=self.config.trajectory_points - 1)
        self._last_tick = command
        if command.positions is not None:  # None: no joint state yet, nothing safe to send
            self.publish_command(command)
        if command.reason != self.monitor.state:
            self._log(self.monitor.update(command.reason, command.stamp,
                                          self._transition_detail(command)))

    def publish_command(self, command: Command) -> None:
        """Send `command` on every configured interface (and as JointState for rviz)."""
        self.last_command = command
        self._sent += 1
        positions, names, stamp = command.positions, self.config.joint_names, self.now()
        if self._trajectory_pub is not None:
            self._trajectory_pub.publish(self._trajectory(command, stamp))
        if self._position_pub is not None:
            self._position_pub.publish(conv.position_command_msg(positions))
        self._commanded_pub.publish(conv.joint_state_msg(positions, names, stamp))

    def _trajectory(self, command: Command, stamp: float):
        """Return the JointTrajectory of `command`: its path, reached from one period on."""
        names = self.config.joint_names
        if self.config.trajectory_points == 1:  # one point, positions only
            return conv.trajectory_command_msg(command.positions, names, stamp, self.period)
        path = command.positions[None] if command.path is None else command.path
        velocities = (np.zeros_like(path) if command.velocities is None
                      else command.velocities)
        return conv.trajectory_command_msg(path, names, stamp, self.period,
                                           command.path_period, velocities)

    # ---- chunk worker (the runtime's thread, not rclpy's) ---------------------------------

    def _chunk_step(self) -> None:
        latest = self.cameras.latest()
        if latest is not None:
            self.core.update_images(*latest)
        outcome = self.core.compute_chunk()
        if outcome.status != ACCEPTED or outcome.chunk is None:
            return
        chunk = outcome.chunk
        age = chunk.t0 - chunk.context_stamp
        self._chunk_pub.publish(conv.action_chunk_msg(
            chunk.actions, self.config.joint_names, chunk.t0, chunk.period, chunk.context_seq,
            age if math.isfinite(age) else -1.0, outcome.latency))
        if self._markers_pub.get_subscription_count() > 0:
            self._publish_markers(chunk.actions, chunk.t0)

    def _publish_markers(self, actions, stamp: float) -> None:
        if self._kinematics is None:
            self._kinematics = ArmKinematics(self.config.joint_names)
        paths = self._kinematics.paths(actions, self.config.marker_links)  # (K, P, 3)
        self._markers_pub.publish(conv.chunk_markers_msg(paths, stamp,
                                                         self.config.marker_frame))

    # ---- diagnostics and log ----------------------------------------------------------------

    def _on_diagnostics(self) -> None:
        now, command = self.now(), self._last_tick
        reason = 'startup' if command is None else command.reason
        missing, stale = self._input_problems(reason, now)
        holding_for = self.monitor.holding_for(now)
        level = hold_level(reason, holding_for, self.config.hold_error_after)
        detail = f' ({command.detail})' if command is not None and command.detail else ''
        message = ('executing' if level == OK else f'holding {holding_for:.1f} s: {reason}'
                                                   f'{detail}{problems_text(missing, stale)}')
        stats = self.core.stats()
        stats.update(self._rates(stats))
        stats.update(hold_reason=reason, holding_for_s=holding_for,
                     missing_topics=' '.join(missing), stale_topics=' '.join(stale))
        # The fully qualified name tells two robots (namespaces) on one /diagnostics apart.
        self._diagnostics_pub.publish(conv.diagnostics_msg(
            f'{self.get_fully_qualified_name()}: executor', 'ahawam_ros', level, message, stats,
            now))
        self._log(self.monitor.flush(now))

    def _input_problems(self, reason: str, now: float):
        """Return (missing, stale) resolved input topics behind a hold."""
        cameras = {self.resolve_topic_name(topic): stamp
                   for topic, stamp in self.cameras.frame_stamps().items()}
        return input_problems(reason, now, self.resolve_topic_name(self.config.joint_state_topic),
                              self.resolve_topic_name(self.config.context_topic), cameras,
                              self.config.max_image_age)

    def _transition_detail(self, command: Command) -> str:
        if not command.is_hold:
            return f'(context {command.context_seq})'
        parts = [command.detail] if command.detail else []
        text = problems_text(*self._input_problems(command.reason, command.stamp))
        parts += [text[2:]] if text else []
        return f'({"; ".join(parts)})' if parts else ''

    def _log(self, line: Optional[LogLine]) -> None:
        if line is None:
            return
        if line.warning:  # one call site per severity: rclpy refuses a call site that changes it
            self.get_logger().warning(line.text)
        else:
            self.get_logger().info(line.text)

    def _rates(self, stats: dict) -> dict:
        """
        Return rates per second since the previous diagnostics message.

        'command_rate_hz': executed commands (a hold is not one); 'sent_rate_hz': command
        messages sent, holds included; 'chunk_rate_hz': accepted chunks.
        """
        now = self.now()
        counts = (stats['ticks'] - stats['holds'], self._sent, stats['chunks_accepted'])
        previous, self._previous_counts = self._previous_counts, (now, counts)
        if previous is None or now <= previous[0]:
            return {}
        rates = [(new - old) / (now - previous[0]) for new, old in zip(counts, previous[1])]
        return dict(zip(('command_rate_hz', 'sent_rate_hz', 'chunk_rate_hz'), rates))

    def _report_once(self, key: str, text: str) -> None:
        if (key, text) not in self._reported:
            self._reported.add((key, text))
            self.get_logger().error(f'{text} (reported once)')

    def on_shutdown(self) -> None:
        """
        Send a final hold at the last command sent (Ctrl-C, SIGTERM), then stop the worker.

        Runs after the executor stopped, so no command tick can follow the hold. The hold goes
        out first, without waiting for a chunk in flight (inference cannot be interrupted and
        only feeds the now stopped command timer); the acknowledgements get one second in all.
        """
        hold = self.core.final_command()
        if hold.positions is not None:  # nothing was ever sent: nothing to hold
            self.publish_command(hold)
            deadline = time.monotonic() + FINAL_HOLD_ACK_S
            for publisher in (self._trajectory_pub, self._position_pub):
                if publisher is not None:
                    left = max(0.0, deadline - time.monotonic())
                    publisher.wait_for_all_acked(Duration(seconds=left))
            self.get_logger().info('final hold sent')
        self.core.stop_worker()

    def destroy_node(self) -> None:
        """Stop the chunk worker (after its current chunk), then destroy the node."""
        if hasattr(self, '_intra_token'):
            intra_process_topics().unsubscribe(self._intra_token)
        if hasattr(self, 'core'):  # not when the constructor failed (a bad checkpoint)
            self.core.stop_worker()
        super().destroy_node()


def main(args=None) -> int:
    """Run the action_executor node alone (it needs a planner in the same process)."""
    return run_nodes(lambda: [ActionExecutorNode()], args=args, exit_process=True)


if __name__ == '__main__':
    sys.exit(main())
