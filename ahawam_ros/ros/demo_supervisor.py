"""The demo's supervisor node: episodes, live status, bag and video per episode, figures."""

from dataclasses import dataclass
from pathlib import Path
import threading
import time
from typing import Dict, Optional

from ahawam_ros.msg import ActionChunk, WorldContext
from ahawam_ros.ros.action_executor_node import ActionExecutorNode
from ahawam_ros.ros.bag_recorder import BagRecorder
from ahawam_ros.ros.image_conversion import ImageConverter
from ahawam_ros.ros.node_configs import BimanualSimConfig
from ahawam_ros.ros.qos import CAMERA_QOS, COMMAND_QOS
from ahawam_ros.ros.world_planner_node import WorldPlannerNode
from ahawam_ros.srv import ResetEpisode
import cv2
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

SETTLE_AFTER_SUCCESS = 0.5  # s of success before an episode ends early


@dataclass
class EpisodeResult:
    """What one demo episode did."""

    index: int
    seed: int
    success: bool
    max_reward: float
    duration: float
    command_rate: float
    holds: int
    bag: str
    video: Optional[str]


class DemoSupervisor(Node):
    """Runs episodes on the in-process simulator, planner and executor; records them."""

    def __init__(self, options, out: Path, sim: BimanualSimConfig, planner: WorldPlannerNode,
                 executor: ActionExecutorNode):
        super().__init__('demo_supervisor')
        self.options, self.out = options, out
        self.sim_config, self.planner_node, self.executor_node = sim, planner, executor
        self.nodes = [planner, executor, self]
        group = MutuallyExclusiveCallbackGroup()
        self._reset = self.create_client(ResetEpisode, sim.reset_service,
                                         callback_group=group)
        self._lock = threading.Lock()
        self._reward, self._max_reward, self._success_since = 0.0, 0.0, None
        self._commands, self._video = 0, None
        self._started = time.monotonic()
        self.create_subscription(Float64, sim.reward_topic, self._on_reward, 10,
                                 callback_group=group)
        self.create_subscription(Bool, sim.success_topic, self._on_success, 10,
                                 callback_group=group)
        self.create_subscription(JointTrajectory, executor.config.trajectory_topic,
                                 self._on_command, COMMAND_QOS, callback_group=group)
        self._video_camera = sim.camera_topic_pattern.format(name=sim.cameras[0])
        self.create_subscription(Image, self._video_camera, self._on_frame, CAMERA_QOS,
                                 callback_group=group)
        self.recorder = BagRecorder(self, self._recorded_topics(),
                                    MutuallyExclusiveCallbackGroup())
        self.create_timer(1.0, self._print_status, callback_group=group)
        self._running = False

    @classmethod
    def with_system(cls, options, out: Path, sim: BimanualSimConfig) -> 'DemoSupervisor':
        """Build planner and executor nodes (one shared policy) and the supervisor."""
        planner = WorldPlannerNode()
        return cls(options, out, sim, planner, ActionExecutorNode())

    def _recorded_topics(self) -> Dict[str, tuple]:
        sim, executor = self.sim_config, self.executor_node.config
        topics = {sim.camera_topic_pattern.format(name=c): (Image, CAMERA_QOS)
                  for c in sim.cameras}
        topics.update({sim.joint_state_topic: (JointState, 50),
                       executor.position_topic: (Float64MultiArray, COMMAND_QOS),
                       executor.trajectory_topic: (JointTrajectory, COMMAND_QOS),
                       executor.chunk_topic: (ActionChunk, 10),
                       executor.context_topic: (WorldContext, 10),
                       sim.reward_topic: (Float64, 50)})
        return topics

    # ---- subscriptions --------------------------------------------------------------------

    def _on_reward(self, msg: Float64) -> None:
        with self._lock:
            self._reward = msg.data
            self._max_reward = max(self._max_reward, msg.data)

    def _on_success(self, msg: Bool) -> None:
        with self._lock:
            if msg.data and self._success_since is None:
                self._success_since = time.monotonic()

    def _on_command(self, msg: JointTrajectory) -> None:
        with self._lock:
            self._commands += 1

    def _on_frame(self, msg: Image) -> None:
        with self._lock:
            video = self._video
        if video is not None:
            rgb = ImageConverter(prefer_cv_bridge=False).to_rgb(msg)
            video.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    # ---- episodes -------------------------------------------------------------------------

    def run_episode(self, index: int, seed: int) -> EpisodeResult:
        """Reset with `seed`, run until success (+0.5 s) or the time limit; record it."""
        if not self._reset.wait_for_service(timeout_sec=30.0):
            raise RuntimeError('the simulator reset service is not available')
        future = self._reset.call_async(ResetEpisode.Request(seed=seed))
        while not future.done():
            time.sleep(0.01)
        if not future.result().success:
            raise RuntimeError(f'reset failed: {future.result().message}')
        bag, video_path = self.out / f'episode_{index:03d}', None
        if bag.exists():
            import shutil
            shutil.rmtree(bag)
        self.recorder.start(bag)
        holds_before = self.executor_node.core.holds.total()
        with self._lock:
            self._reward, self._max_reward, self._success_since, self._commands = 0, 0, None, 0
            if self.options.video:
                video_path = self.out / f'episode_{index:03d}.mp4'
                self._video = self._open_video(video_path)
        print(f'--- episode {index} (seed {seed}) ---', flush=True)
        self._started, self._running = time.monotonic(), True
        self._wait_for_end()
        self._running = False
        duration = time.monotonic() - self._started
        self.recorder.stop()
        with self._lock:
            video, self._video = self._video, None
            result = EpisodeResult(index, seed, self._success_since is not None,
                                   self._max_reward, duration, self._commands / duration,
                                   self.executor_node.core.holds.total() - holds_before, str(bag),
                                   None if video_path is None else str(video_path))
        if video is not None:
            video.release()
        return result

    def _open_video(self, path: Path):
        config = self.sim_config
        fps = config.control_rate_hz / config.camera_every
        return cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps,
                               (config.image_width, config.image_height))

    def _wait_for_end(self) -> None:
        deadline = self._started + self.options.episode_seconds
        while time.monotonic() < deadline:
            with self._lock:
                since = self._success_since
            if since is not None and time.monotonic() - since >= SETTLE_AFTER_SUCCESS:
                return
            time.sleep(0.05)

    # ---- status ---------------------------------------------------------------------------

    def _print_status(self) -> None:
        if not self._running:
            return
        elapsed = time.monotonic() - self._started
        command = self.executor_node.last_command
        age = command.context_age if command is not None else float('nan')
        plan = self.planner_node.core.stats()
        chunk = self.executor_node.core.stats()
        with self._lock:
            rate = self._commands / max(elapsed, 1e-6)
            reward, best = self._reward, self._max_reward
        print(f't={elapsed:4.1f}s  reward {reward:.0f} (max {best:.0f})  cmd {rate:5.1f} Hz  '
              f'context age {age * 1e3:4.0f} ms  planner p50 '
              f'{plan["plan_latency_p50"] * 1e3:4.0f} ms  executor p50 '
              f'{chunk["chunk_latency_p50"] * 1e3:4.0f} ms  holds {chunk["holds"]:.0f}',
              flush=True)

    def system_figures(self) -> Dict[str, float]:
        """Return latency percentiles (ms) and counters of the planner and the executor."""
        plan, chunk = self.planner_node.core.stats(), self.executor_node.core.stats()
        return {'planner_latency_p50_ms': plan['plan_latency_p50'] * 1e3,
                'planner_latency_p95_ms': plan['plan_latency_p95'] * 1e3,
                'planner_refreshes': plan['published'],
                'executor_latency_p50_ms': chunk['chunk_latency_p50'] * 1e3,
                'executor_latency_p95_ms': chunk['chunk_latency_p95'] * 1e3,
                'context_age_p50_ms': chunk['context_age_p50'] * 1e3,
                'context_age_p95_ms': chunk['context_age_p95'] * 1e3,
                'context_age_count': chunk['context_age_count'],
                'chunks_accepted': chunk['chunks_accepted'],
                'chunks_dropped': chunk['chunks_dropped'],
                'command_ticks': chunk['ticks'], 'holds': chunk['holds']}

    def shutdown_system(self) -> None:
        """Send the executor's final hold."""
        self.executor_node.on_shutdown()
