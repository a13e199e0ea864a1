"""The demo's supervisor node: episodes, live status, bag and video per episode, figures."""

from dataclasses import dataclass
import math
from pathlib import Path
import threading
import time
from typing import Callable, Dict, Optional, Tuple

from ahawam_ros.images import beside_width, side_by_side
from ahawam_ros.msg import ActionChunk, WorldContext
from ahawam_ros.ros.action_executor_node import ActionExecutorNode
from ahawam_ros.ros.bag_recorder import BagRecorder
from ahawam_ros.ros.bimanual_sim_node import DIAGNOSTICS_NAME, DIAGNOSTICS_TOPIC
from ahawam_ros.ros.image_conversion import ImageConverter
from ahawam_ros.ros.node_configs import BimanualSimConfig
from ahawam_ros.ros.qos import CAMERA_QOS, COMMAND_QOS
from ahawam_ros.ros.world_planner_node import WorldPlannerNode
from ahawam_ros.runtime.loading import EXPERT_POLICY, select_policy
from ahawam_ros.sim.expert_policy import expert_for
from ahawam_ros.srv import ResetEpisode
import cv2
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

SETTLE_AFTER_SUCCESS = 0.5  # s of success before an episode ends early
REAL_TIME_OK = 0.95  # a real-time factor below this is reported as not keeping real time


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
    warm_ticks: int = 0  # command ticks from the first executed action to the end
    warm_holds: int = 0  # holds among them
    real_time_factor: float = math.nan  # simulated / wall seconds over the episode

    @property
    def warm_hold_fraction(self) -> float:
        """Return the holds per command tick after warm-up (the first executed action)."""
        return self.warm_holds / self.warm_ticks if self.warm_ticks else math.nan


class DemoSupervisor(Node):
    """Runs episodes on the in-process simulator, planner and executor; records them."""

    def __init__(self, options, out: Path, sim: BimanualSimConfig, planner: WorldPlannerNode,
                 executor: ActionExecutorNode,
                 privileged_episode: Optional[Callable[[int], None]] = None, **node_kwargs):
        super().__init__('demo_supervisor', **node_kwargs)
        # Evaluation only: told each episode's seed before the reset (the expert policy).
        self.privileged_episode = privileged_episode
        self._sim_timing: Dict[str, float] = {}  # newest figures of the simulator's diagnostics
        self._timing_start: Dict[str, float] = {}  # the figures at the episode's start
        self.options, self.out = options, out
        self.sim_config, self.planner_node, self.executor_node = sim, planner, executor
        self.nodes = [planner, executor, self]
        group = MutuallyExclusiveCallbackGroup()
        self._reset = self.create_client(ResetEpisode, sim.reset_service,
                                         callback_group=group)
        self._lock = threading.Lock()
        self._reward, self._max_reward, self._success_since = 0.0, 0.0, None
        self._commands, self._video = 0, None
        self._started = 0.0
        self.create_subscription(Float64, sim.reward_topic, self._on_reward, 10,
                                 callback_group=group)
        self.create_subscription(Bool, sim.success_topic, self._on_success, 10,
                                 callback_group=group)
        self.create_subscription(JointTrajectory, executor.config.trajectory_topic,
                                 self._on_command, COMMAND_QOS, callback_group=group)
        self._video_camera = sim.camera_topic_pattern.format(name=sim.cameras[0])
        self.create_subscription(Image, self._video_camera, self._on_frame, CAMERA_QOS,
                                 callback_group=group)
        # with the planner's imagination on, the videos show it beside the camera
        self._imagined, self._imagined_width = None, self._imagination_width(planner)
        if self._imagined_width:
            self.create_subscription(
                Image, planner.resolve_topic_name(planner.config.imagination_topic),
                self._on_imagination, 1, callback_group=group)
        self.recorder = BagRecorder(self, self._recorded_topics(),
                                    MutuallyExclusiveCallbackGroup())
        self.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics, 10,
                                 callback_group=group)
        self.create_timer(1.0, self._print_status, callback_group=group)
        self._running = False

    @classmethod
    def with_system(cls, options, out: Path, sim: BimanualSimConfig,
                    **node_kwargs) -> 'DemoSupervisor':
        """Build planner and executor nodes (one shared policy) and the supervisor."""
        if getattr(options, 'policy', '') != EXPERT_POLICY:  # the checkpoint, from the params
            return cls(options, out, sim, WorldPlannerNode(**node_kwargs),
                       ActionExecutorNode(**node_kwargs), **node_kwargs)
        expert = select_policy(EXPERT_POLICY, expert=lambda: expert_for(sim.task))
        expert.begin_episode(sim.seed)  # the episode the simulator starts with
        return cls(options, out, sim, WorldPlannerNode(policy=expert, **node_kwargs),
                   ActionExecutorNode(policy=expert, **node_kwargs),
                   privileged_episode=expert.begin_episode, **node_kwargs)

    def now(self) -> float:
        """Return the node clock in seconds (simulated time with use_sim_time)."""
        return self.get_clock().now().nanoseconds * 1e-9

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
        planner = self.planner_node  # its predicted frames, when imagination_rate_hz > 0
        topics[planner.resolve_topic_name(planner.config.imagination_topic)] = (Image, 1)
        return topics

    # ---- subscriptions --------------------------------------------------------------------

    def _on_reward(self, msg: Float64) -> None:
        with self._lock:
            self._reward = msg.data
            self._max_reward = max(self._max_reward, msg.data)

    def _on_success(self, msg: Bool) -> None:
        with self._lock:
            if msg.data and self._success_since is None:
                self._success_since = self.now()

    def _on_command(self, msg: JointTrajectory) -> None:
        with self._lock:
            self._commands += 1

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == DIAGNOSTICS_NAME:
                figures = {}
                for pair in status.values:
                    try:
                        figures[pair.key] = float(pair.value)
                    except ValueError:
                        continue
                with self._lock:
                    self._sim_timing = figures

    def sim_timing(self) -> Dict[str, float]:
        """Return the simulator's newest timing figures (real_time_factor, sim_seconds, ...)."""
        with self._lock:
            return dict(self._sim_timing)

    def _imagination_width(self, planner: WorldPlannerNode) -> int:
        """Return the video width the imagination takes beside the camera (0: it is off)."""
        model = getattr(planner.policy, 'model', None)
        if planner.config.imagination_rate_hz <= 0.0 or model is None:
            return 0
        height, width = planner.policy.image_size
        rows = (model.config.planner.num_future_frames * height,
                model.config.autoencoder.num_views * width)
        return beside_width(self.sim_config.image_height, rows)

    def _on_imagination(self, msg: Image) -> None:
        rgb = ImageConverter(prefer_cv_bridge=False).to_rgb(msg)
        with self._lock:
            self._imagined = rgb

    def _on_frame(self, msg: Image) -> None:
        with self._lock:
            video, imagined = self._video, self._imagined
        if video is not None:
            rgb = ImageConverter(prefer_cv_bridge=False).to_rgb(msg)
            if self._imagined_width:
                rgb = side_by_side(rgb, imagined, self._imagined_width)
            video.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    # ---- episodes -------------------------------------------------------------------------

    def run_episode(self, index: int, seed: int) -> EpisodeResult:
        """Reset with `seed`, run until success (+0.5 s) or the time limit; record it."""
        if not self._reset.wait_for_service(timeout_sec=30.0):
            raise RuntimeError('the simulator reset service is not available')
        if self.privileged_episode is not None:
            self.privileged_episode(seed)
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
        self._timing_start = self.sim_timing()  # empty until the simulator's first report
        with self._lock:
            self._reward, self._max_reward, self._success_since, self._commands = 0, 0, None, 0
            if self.options.video:
                video_path = self.out / f'episode_{index:03d}.mp4'
                self._video = self._open_video(video_path)
        print(f'--- episode {index} (seed {seed}) ---', flush=True)
        self._started, self._running = self.now(), True
        warm = self._wait_for_end()
        self._running = False
        duration = max(self.now() - self._started, 1e-9)
        self.recorder.stop()
        ticks, holds = self._tick_counts()
        with self._lock:
            video, self._video = self._video, None
            result = EpisodeResult(index, seed, self._success_since is not None,
                                   self._max_reward, duration, self._commands / duration,
                                   self.executor_node.core.holds.total() - holds_before, str(bag),
                                   None if video_path is None else str(video_path))
        if warm is not None:
            result.warm_ticks, result.warm_holds = ticks - warm[0], holds - warm[1]
        result.real_time_factor = episode_real_time_factor(self._timing_start,
                                                           self.sim_timing())
        if video is not None:
            video.release()
        return result

    def _open_video(self, path: Path):
        config = self.sim_config
        fps = config.control_rate_hz / config.camera_every
        return cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps,
                               (config.image_width + self._imagined_width, config.image_height))

    def _tick_counts(self) -> Tuple[int, int]:
        stats = self.executor_node.core.stats()
        return int(stats['ticks']), int(stats['holds'])

    def _wait_for_end(self) -> Optional[Tuple[int, int]]:
        """Wait out the episode; return the (ticks, holds) counts at the first executed action."""
        deadline, warm = self._started + self.options.episode_seconds, None
        while self.now() < deadline:
            # Warm-up ends at the executor's first executed action of this episode.
            command = self.executor_node.last_command
            if (warm is None and command is not None and not command.is_hold
                    and command.stamp >= self._started):
                warm = self._tick_counts()
            if not self._timing_start:  # the first episode may start before the first report
                self._timing_start = self.sim_timing()
            with self._lock:
                since = self._success_since
            if since is not None and self.now() - since >= SETTLE_AFTER_SUCCESS:
                break
            time.sleep(0.02)
        return warm

    # ---- status ---------------------------------------------------------------------------

    def _print_status(self) -> None:
        if not self._running:
            return
        elapsed = self.now() - self._started
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
              f'{chunk["chunk_latency_p50"] * 1e3:4.0f} ms  holds {chunk["holds"]:.0f}  '
              f'sim RTF {self.sim_timing().get("real_time_factor", math.nan):.2f}', flush=True)

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


def episode_real_time_factor(before: Dict[str, float], after: Dict[str, float]) -> float:
    """Return simulated / wall seconds between two of the simulator's diagnostics (or NaN)."""
    try:
        wall = after['wall_seconds'] - before['wall_seconds']
        simulated = after['sim_seconds'] - before['sim_seconds']
    except KeyError:
        return math.nan
    return simulated / wall if wall > 0 else math.nan
