"""
The ROS side of `ahawam bench`: the real rclpy graph, measured in this process.

- `measure_system`: the world_planner and action_executor nodes (one shared policy) beside a
  sensor stand-in (cameras and joint states), in one process on a MultiThreadedExecutor, as
  bringup runs them. Measures the period of the commands received while the planner
  refreshes, the holds among the command ticks after warm-up, the achieved chunk update rate,
  and the update latency inside the graph against the same update timed alone just before.
- the context handoff, by reference vs serialized, is in `bench_handoff`.

Each call runs in a fresh rclpy Context on a namespace of its own and returns plain figures
(milliseconds, hertz, counts).
"""

from dataclasses import asdict
import os
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple
import uuid

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')  # before rclpy loads

from ahawam_ros.msg import ActionChunk  # noqa: E402
from ahawam_ros.robot import JOINT_NAMES  # noqa: E402
from ahawam_ros.ros import conversions as conv  # noqa: E402
from ahawam_ros.ros.action_executor_node import ActionExecutorNode  # noqa: E402
from ahawam_ros.ros.image_conversion import rgb_to_image_msg  # noqa: E402
from ahawam_ros.ros.qos import CAMERA_QOS, COMMAND_QOS  # noqa: E402
from ahawam_ros.ros.spin import make_executor, responsive_gil, SpinThread  # noqa: E402
from ahawam_ros.ros.world_planner_node import WorldPlannerNode  # noqa: E402
from ahawam_ros.runtime.policy_api import ChunkPolicy  # noqa: E402
from ahawam_ros.runtime.settings import RuntimeSettings  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor  # noqa: E402
from rclpy.logging import LoggingSeverity, set_logger_level  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

CAMERA_HZ = 25.0  # the simulator publishes its cameras every 2nd control step
JOINT_HZ = 50.0


def percentiles_ms(seconds: Sequence[float]) -> Dict[str, float]:
    values = np.asarray(seconds, np.float64) * 1e3
    if values.size == 0:
        return {'p50': float('nan'), 'p99': float('nan'), 'max': float('nan'), 'count': 0}
    p50, p99 = np.percentile(values, [50.0, 99.0])
    return {'p50': float(p50), 'p99': float(p99), 'max': float(values.max()),
            'count': int(values.size)}


class SensorStandIn(Node):
    """Publishes V camera streams and joint states; records when commands and chunks arrive."""

    def __init__(self, image_shape: Tuple[int, int, int], **kwargs):
        super().__init__('bench_sensors', **kwargs)
        views, height, width = image_shape
        self.camera_topics = [f'cameras/view{v}/image_raw' for v in range(views)]
        rng = np.random.default_rng(0)
        self._frames = rng.integers(0, 256, (views, height, width, 3), dtype=np.uint8)
        self._cameras = [self.create_publisher(Image, t, CAMERA_QOS) for t in self.camera_topics]
        self._joints = self.create_publisher(JointState, 'joint_states', 10)
        self._positions = np.zeros(len(JOINT_NAMES))
        self._positions[[6, 13]] = 0.5  # grippers half open
        self._lock = threading.Lock()
        # (perf_counter at arrival, arrival and stamp on the ROS clock, times, positions,
        # velocities) of each command received
        self.commands: List[Tuple[float, float, float, Any, Any, Any]] = []
        self.chunk_times: List[float] = []
        inputs = MutuallyExclusiveCallbackGroup()
        self.create_subscription(JointTrajectory, 'joint_trajectory', self._on_command,
                                 COMMAND_QOS, callback_group=inputs)
        self.create_subscription(ActionChunk, 'action_chunk', self._on_chunk, 10,
                                 callback_group=inputs)
        self.create_timer(1.0 / CAMERA_HZ, self._publish_cameras,
                          callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(1.0 / JOINT_HZ, self._publish_joints,
                          callback_group=MutuallyExclusiveCallbackGroup())

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _publish_cameras(self) -> None:
        stamp = conv.to_time_msg(self._now())
        for frame, publisher in zip(self._frames, self._cameras):
            publisher.publish(rgb_to_image_msg(frame, stamp))

    def _publish_joints(self) -> None:
        self._joints.publish(conv.joint_state_msg(self._positions, JOINT_NAMES, self._now()))

    def _on_command(self, msg: JointTrajectory) -> None:
        received = time.perf_counter()
        arrival = self._now()  # the stamp's clock, for a controller's replay of the commands
        times, positions, velocities = conv.trajectory_points(msg, JOINT_NAMES)
        with self._lock:
            self.commands.append((received, arrival, conv.stamp_seconds(msg.header.stamp),
                                  times, positions, velocities))

    def _on_chunk(self, msg: ActionChunk) -> None:
        with self._lock:
            self.chunk_times.append(time.perf_counter())

    def commands_between(self, start: float, end: float) -> List[tuple]:
        """Return (arrival, stamp, times, positions, velocities) of the commands in the window."""
        with self._lock:
            return [entry[1:] for entry in self.commands if start <= entry[0] < end]

    def arrivals(self, start: float, end: float) -> Tuple[np.ndarray, int]:
        """Return the command arrival times and the number of chunks in [start, end)."""
        with self._lock:
            commands = [entry[0] for entry in self.commands if start <= entry[0] < end]
            chunks = sum(start <= t < end for t in self.chunk_times)
        return np.asarray(commands), chunks


class BenchGraph:
    """
    A fresh rclpy Context with nodes spinning in a thread.

    On the executor bringup spins its nodes with (`spin.make_executor`) when `threads` is None,
    a MultiThreadedExecutor of `threads` threads, or a SingleThreadedExecutor when it is 0.
    """

    def __init__(self, threads: Optional[int] = None):
        self.context = Context()
        rclpy.init(context=self.context)
        self.namespace = f'/bench_{uuid.uuid4().hex[:8]}'
        if threads is None:
            self.executor = make_executor(self.context)
        elif threads:
            self.executor = MultiThreadedExecutor(num_threads=threads, context=self.context)
        else:
            self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: List[Node] = []
        self._spinner: Optional[SpinThread] = None

    def node_kwargs(self, name: str, **parameters: Any) -> Dict[str, Any]:
        """Keyword arguments of a node in this graph; its start-up log is kept quiet."""
        set_logger_level(f'{self.namespace[1:]}.{name}', LoggingSeverity.ERROR)
        overrides = [Parameter(key, value=value) for key, value in parameters.items()]
        return {'context': self.context, 'namespace': self.namespace,
                'parameter_overrides': overrides}

    def spin(self, *nodes: Node) -> None:
        for node in nodes:
            self.nodes.append(node)
            self.executor.add_node(node)
        self._spinner = SpinThread(self.executor).start()

    def close(self) -> None:
        """Let running callbacks end, stop the executor, then shut everything down."""
        if self._spinner is not None:
            self._spinner.stop()
        else:
            self.executor.shutdown()
        for node in self.nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def measure_system(policy: ChunkPolicy, image_shape: Tuple[int, int, int],
                   settings: RuntimeSettings, seconds: float = 10.0,
                   warmup: float = 3.0, paired_rounds: int = 0) -> Dict[str, Any]:
    """
    Run planner, executor and the sensor stand-in; measure commands and chunks.

    Parameters
    ----------
    policy : ChunkPolicy
        Shared by both nodes (one set of weights, as in bringup).
    image_shape : (int, int, int)
        (V, H, W) of the policy's views; the stand-in publishes frames of this size.
    settings : RuntimeSettings
        The nodes' runtime settings (the deployed ones: a chunk from every joint state, the
        worst case for the command timer, and the achievable chunk rate).
    seconds, warmup : float
        Measured window, after `warmup` seconds of start-up.
    paired_rounds : int
        After the window, that many rounds of `paired_windows` (0: none).

    Returns
    -------
    dict
        'command_period_ms' (p50 / p99 / max / count), 'command_rate_hz', 'chunk_rate_hz',
        'chunk_latency_ms' (p50 / p95 inside the graph), 'planner_refreshes',
        'plan_latency_ms' (p50 / p95), 'holds' and 'ticks' in the window (after warm-up),
        'hold_reasons' (reason -> holds in the window, the nonzero ones),
        'hold_fraction', 'alone_ms' (p50 / p95 of the update alone), 'graph_vs_alone' (p50
        ratio), 'stale_actions_per_chunk', 'executor_nice' / 'planner_nice' (applied),
        'window_s', 'commands' (each command as received: arrival and stamp, s on the ROS
        clock, times from the stamp (P,), positions and velocities (P, A); not JSON),
        'paired' (`paired_windows`, {} without rounds).

    """
    alone = _update_alone(policy, image_shape)
    responsive_gil()  # as every process that hosts the nodes does (see spin.py)
    graph = BenchGraph()  # the nodes' executor, as bringup
    try:
        sensors = SensorStandIn(image_shape, **graph.node_kwargs('bench_sensors'))
        cameras = sensors.camera_topics
        planner = WorldPlannerNode(policy, **graph.node_kwargs(
            'world_planner', camera_topics=cameras, **asdict(settings.planner)))
        executor = ActionExecutorNode(policy, **graph.node_kwargs(
            'action_executor', camera_topics=cameras, **asdict(settings.executor)))
        graph.spin(sensors, planner, executor)
        time.sleep(warmup)
        before = planner.core.stats()['published'], executor.core.stats()
        start = time.perf_counter()
        time.sleep(seconds)
        end = time.perf_counter()
        plan, chunk = planner.core.stats(), executor.core.stats()
        paired = paired_windows(planner, executor, paired_rounds) if paired_rounds else {}
    finally:
        graph.close()
    refreshes, holds, ticks = (before[0], chunk['holds'] - before[1]['holds'],
                               chunk['ticks'] - before[1]['ticks'])
    commands, chunks = sensors.arrivals(start, end)
    window = end - start
    return {'window_s': window, 'command_period_ms': percentiles_ms(np.diff(commands)),
            'command_rate_hz': len(commands) / window, 'chunk_rate_hz': chunks / window,
            'chunk_latency_ms': {'p50': chunk['chunk_latency_p50'] * 1e3,
                                 'p95': chunk['chunk_latency_p95'] * 1e3},
            'planner_refreshes': int(plan['published'] - refreshes),
            'plan_latency_ms': {'p50': plan['plan_latency_p50'] * 1e3,
                                'p95': plan['plan_latency_p95'] * 1e3},
            'holds': int(holds), 'ticks': int(ticks),
            'hold_reasons': _hold_reasons(before[1], chunk),
            'hold_fraction': holds / ticks if ticks else float('nan'),
            'alone_ms': alone, 'graph_vs_alone': chunk['chunk_latency_p50'] * 1e3 / alone['p50'],
            'paired': paired,
            'stale_actions_per_chunk': chunk['stale_actions_per_chunk'],
            'executor_nice': chunk.get('worker_nice', float('nan')),
            'planner_nice': plan.get('worker_nice', float('nan')),
            'execute_steps': settings.executor.execute_steps,
            'schedule': settings.executor.schedule,
            'planner_rate_hz': settings.planner.refresh_rate_hz,
            'ros_executor': type(graph.executor).__name__,
            'trajectory_points': executor.config.trajectory_points,
            'commands': sensors.commands_between(start, end)}


def _hold_reasons(before: Dict[str, float], after: Dict[str, float]) -> Dict[str, int]:
    """Return the holds of each reason between two `ExecutorCore.stats()` (nonzero ones)."""
    prefix = 'holds_'
    counts = {key[len(prefix):]: int(after[key] - before.get(key, 0.0))
              for key in after if key.startswith(prefix)}
    return {reason: count for reason, count in sorted(counts.items()) if count}


def paired_windows(planner: WorldPlannerNode, executor: ActionExecutorNode, rounds: int,
                   on_s: float = 1.0, off_s: float = 0.5) -> Dict[str, Any]:
    """
    Time the executor's updates in the graph with the planner refreshing and paused, in turns.

    Each round: `on_s` with the planner's timer running (restarted one refresh period
    before), then the timer stopped, the refresh in flight left to finish (1.2 x the planner's
    p95 latency), and `off_s` with it idle. The
    same graph, threads and pacing on both sides, taken in alternation so that a drift of the
    machine falls on both: what the planner's work itself costs the executor. `off_s` stays
    short so that the context does not pass `max_context_age` (a hold) meanwhile.

    Returns 'on_ms' and 'paused_ms' (`percentiles_ms` of the update latencies), 'ratio' (on
    p50 / paused p50; NaN without samples) and 'rounds'.
    """
    latencies = executor.core.chunk_latency
    samples: Dict[str, List[float]] = {'on': [], 'paused': []}

    def window(name: str, seconds: float) -> None:
        mark = latencies.total
        time.sleep(seconds)
        samples[name].extend(latencies.newest(latencies.total - mark))

    period = 1.0 / planner.config.refresh_rate_hz
    for index in range(rounds):
        if index:  # the first round finds the planner running
            planner.pause_refreshes(False)
            time.sleep(period)  # its first refresh starts one period after the restart
        window('on', on_s)
        planner.pause_refreshes()
        p95 = planner.core.stats()['plan_latency_p95']
        time.sleep(1.2 * p95 if np.isfinite(p95) else 0.1)
        window('paused', off_s)
    planner.pause_refreshes(False)
    figures = {f'{name}_ms': percentiles_ms(values) for name, values in samples.items()}
    ratio = figures['on_ms']['p50'] / figures['paused_ms']['p50']  # NaN when one is empty
    return {**figures, 'ratio': ratio, 'rounds': rounds}


def _update_alone(policy: ChunkPolicy, image_shape: Tuple[int, int, int],
                  repeats: int = 20) -> Dict[str, float]:
    """Time `predict_chunk` alone in this thread (ms p50 / p95), on a fresh context."""
    images = np.zeros((*image_shape, 3), np.uint8)  # (V, H, W, 3)
    proprio = np.zeros(policy.action_dim, np.float32)
    policy.reset()
    context = policy.plan(images, 0)
    samples = []
    for index in range(repeats + 2):  # 2 untimed calls first
        started = time.perf_counter()
        policy.predict_chunk(images, proprio, context, 0)
        if index >= 2:
            samples.append(time.perf_counter() - started)
    policy.reset()
    values = np.asarray(samples) * 1e3
    return {'p50': float(np.percentile(values, 50.0)), 'p95': float(np.percentile(values, 95.0))}
