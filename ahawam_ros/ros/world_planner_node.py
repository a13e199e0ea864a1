"""
The world_planner node: camera frames -> planner refresh on a slow timer -> world context.

The slow timer only takes the newest frames; the refresh itself runs in the runtime's planner
worker thread (woken by those frames), which publishes the descriptor. rclpy's executor thus
never waits for the planner (see action_executor_node.py for why that matters).

The layerwise context (per-layer K/V tensors) stays in this process: the node publishes a
`WorldContext` descriptor whose `handle` resolves it by reference (zero-copy) for the
action_executor node hosted in the same process (see bringup.py).
"""

import sys
import time
from typing import Optional

from ahawam_ros.images import tile_views
from ahawam_ros.msg import WorldContext
from ahawam_ros.ros.camera_set import CameraSet
from ahawam_ros.ros.conversions import (diagnostics_msg, stamp_seconds, to_time_msg,
                                        world_context_msg)
from ahawam_ros.ros.episode_task import follow_episode_task
from ahawam_ros.ros.image_conversion import rgb_to_image_msg
from ahawam_ros.ros.node_configs import WorldPlannerConfig
from ahawam_ros.ros.params import changes, declare_config, LiveConfig
from ahawam_ros.ros.qos import CONTEXT_QOS
from ahawam_ros.ros.spin import run_nodes
from ahawam_ros.runtime.assembly import build_planner, HostRules
from ahawam_ros.runtime.intra_process import intra_process_topics
from ahawam_ros.runtime.loading import condition_on_task, load_policy, policy_image_hw
from ahawam_ros.runtime.orchestrator import RuntimeOrchestrator
from ahawam_ros.runtime.planner_core import PUBLISHED
from ahawam_ros.runtime.planner_health import PlannerHealth
from ahawam_ros.runtime.policy_api import ChunkPolicy
from ahawam_ros.runtime.settings import planner_core_config
from ahawam_ros.runtime.stats import RollingStats
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header


class WorldPlannerNode(Node):
    """
    Runs planner refreshes on a slow timer and publishes the world context.

    `runtime` is the process's orchestration of the workers (bringup shares one between the
    planner and the executor node); a node alone makes its own.
    """

    def __init__(self, policy: Optional[ChunkPolicy] = None,
                 runtime: Optional[RuntimeOrchestrator] = None, **node_kwargs):
        super().__init__('world_planner', **node_kwargs)
        self.config = config = declare_config(self, WorldPlannerConfig)
        self.policy = policy or load_policy(config.checkpoint, config.device)
        condition_on_task(self.policy, config.task)  # an unknown task: one line, exit 2
        image_hw = policy_image_hw(self.policy, config.image_height, config.image_width)
        self.host = HostRules.for_ros(self.now)
        # the refresh timer paces the refreshes (live refresh_rate_hz), not the core
        self.core = build_planner(self.policy, config, self.host, paced=False)
        self.cameras = CameraSet(self, config.camera_topics, image_hw, config.resize_images,
                                 MutuallyExclusiveCallbackGroup(), self.core.check_camera_stamp)
        self._context_pub = self.create_publisher(WorldContext, config.context_topic,
                                                  CONTEXT_QOS)
        self._composite_pub = self.create_publisher(Image, config.composite_topic, 1)
        self._imagination_pub = self.create_publisher(Image, config.imagination_topic, 1)
        self._imagined_at = -float('inf')  # wall clock of the last prediction
        self.imagination_ms = RollingStats(50)  # what a prediction costs the planner's worker
        self.create_subscription(Header, config.episode_topic, self._on_episode_start, 10)
        self._waiting_logged = False
        self._waiting_since = self.now()  # diagnostics: WARN, ERROR only after error_after
        self._refresh_timer = self.create_timer(1.0 / config.refresh_rate_hz, self._on_timer,
                                                callback_group=MutuallyExclusiveCallbackGroup())
        self._diagnostics_pub = self.create_publisher(DiagnosticArray,
                                                      config.diagnostics_topic, 10)
        self._diagnostics_timer = self.create_timer(
            config.diagnostics_period, self._on_diagnostics,
            callback_group=MutuallyExclusiveCallbackGroup())
        self.live = LiveConfig(self, config, self._apply_parameters)
        # rclpy's context shutdown does not reliably destroy every node: stop on it too.
        self.context.on_shutdown(self.core.stop_worker)
        self.runtime = runtime or RuntimeOrchestrator()
        self.runtime.start_planner(self.core, self._refresh_step, config.torch_threads)
        if self.runtime.warm_up_s > 0.0:
            self.get_logger().info(f'policy warm-up: {self.runtime.warm_up_s:.2f} s')
        self.get_logger().info(
            f'planner up: {len(config.camera_topics)} camera(s) at {image_hw[0]}x{image_hw[1]}, '
            f'refresh {config.refresh_rate_hz:g} Hz, context on {self._context_pub.topic_name}')

    def _apply_parameters(self, old: WorldPlannerConfig, new: WorldPlannerConfig) -> None:
        """Apply a validated live change: the refresh timer's period, the frame age limit."""
        self.config = new
        if new.refresh_rate_hz != old.refresh_rate_hz:
            self._refresh_timer.timer_period_ns = round(1e9 / new.refresh_rate_hz)
        if new.diagnostics_period != old.diagnostics_period:
            self._diagnostics_timer.timer_period_ns = round(1e9 * new.diagnostics_period)
        self.core.reconfigure(planner_core_config(new, self.host.zero_stamp_is_unset,
                                                  paced=False))
        self.get_logger().info(f'parameters changed: {changes(old, new)}')

    def pause_refreshes(self, paused: bool = True) -> None:
        """
        Stop (or, with False, restart) handing frames to the planner worker.

        A refresh in flight still finishes and publishes; the context then ages (the
        executor's `max_context_age` holds it). `ahawam bench` pauses the planner to time the
        executor in the same graph without it.
        """
        if paused:
            self._refresh_timer.cancel()
        else:
            self._refresh_timer.reset()

    def now(self) -> float:
        """Return the node's clock in seconds (sim time when use_sim_time is set)."""
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_episode_start(self, msg: Header) -> None:
        follow_episode_task(self, msg.frame_id)
        self._waiting_since = self.now()
        self.core.reset(episode_start=stamp_seconds(msg.stamp))
        self.cameras.clear()
        self.get_logger().info('new episode: rolling memory cleared')

    def _on_timer(self) -> None:
        """Hand the newest frames to the planner worker (which wakes and refreshes)."""
        latest = self.cameras.latest()
        if latest is None:
            if not self._waiting_logged:
                missing = [self.resolve_topic_name(topic) for topic, stamp
                           in self.cameras.frame_stamps().items() if stamp is None]
                self.get_logger().info(f'waiting for a frame on {", ".join(missing)}')
                self._waiting_logged = True
            return
        self.core.update_images(*latest)

    def _refresh_step(self) -> None:
        outcome = self.core.refresh()
        if outcome.status != PUBLISHED:
            return
        snapshot = outcome.snapshot
        # in-process subscribers (the executor in bringup) first, the recordable topic next
        intra_process_topics().deliver(self._context_pub.topic_name, snapshot.handle)
        info = context_info(self.policy, snapshot.context)
        self._context_pub.publish(world_context_msg(
            snapshot.seq, snapshot.obs_stamp, snapshot.step, info,
            info.get('memory_fill', 0), info.get('memory_capacity', 0),
            snapshot.planner_latency, snapshot.handle, self.get_name()))
        if self._composite_pub.get_subscription_count() > 0:
            self._composite_pub.publish(rgb_to_image_msg(
                tile_views(outcome.images), to_time_msg(snapshot.obs_stamp), 'composite'))
        self._imagine(snapshot.obs_stamp)

    def _imagine(self, stamp: float) -> None:
        """Publish the predicted future frames when due (throttled; in the planner's worker)."""
        rate = self.config.imagination_rate_hz
        started = time.monotonic()
        if rate <= 0.0 or started - self._imagined_at < 1.0 / rate or not hasattr(
                self.policy, 'imagine'):
            return
        self._imagined_at = started
        frames = self.policy.imagine(self.config.imagination_steps)  # (F, V, H, W, 3)
        rows = np.concatenate([tile_views(frame) for frame in frames], axis=0)  # (F H, V W, 3)
        self._imagination_pub.publish(rgb_to_image_msg(rows, to_time_msg(stamp), 'imagination'))
        self.imagination_ms.add(1e3 * (time.monotonic() - started))

    def _on_diagnostics(self) -> None:
        """Publish the planner's status: OK while contexts come, else why not (names topics)."""
        now, core, config = self.now(), self.core, self.config
        camera_ages = {self.resolve_topic_name(topic): None if stamp is None else now - stamp
                       for topic, stamp in self.cameras.frame_stamps().items()}
        health = PlannerHealth(now - core.last_published, core.last_status,
                               config.refresh_rate_hz, camera_ages, config.max_image_age,
                               core.last_error, since_start=now - self._waiting_since)
        level, message = health.summary(config.error_after)
        stats = core.stats()
        stats.update(last_status=core.last_status, since_context_s=health.since_publish)
        stats.update(self.imagination_ms.summary('imagination_ms'))
        # The fully qualified name tells two robots (namespaces) on one /diagnostics apart.
        self._diagnostics_pub.publish(diagnostics_msg(
            f'{self.get_fully_qualified_name()}: planner', 'ahawam_ros', level, message, stats,
            now))

    def destroy_node(self) -> None:
        """Stop the planner worker (after its current refresh), then destroy the node."""
        if hasattr(self, 'core'):  # not when the constructor failed (a bad checkpoint)
            self.core.stop_worker()
        super().destroy_node()


def context_info(policy: ChunkPolicy, context) -> dict:
    """Shape and memory figures of a context, when the policy can describe it."""
    describe = getattr(policy, 'describe_context', None)
    return dict(describe(context)) if describe is not None else {}


def main(args=None) -> int:
    """Run the world_planner node alone (planner and executor share a process in bringup)."""
    return run_nodes(lambda: [WorldPlannerNode()], args=args, exit_process=True)


if __name__ == '__main__':
    sys.exit(main())
