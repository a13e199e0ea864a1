"""
Message layouts: the only module that builds or reads ROS messages field by field.

Arrays in, messages out (and back). Joint vectors are float (A,) in the configured joint order;
action chunks are (K, A). Times are float seconds on the node's clock.
"""

import math
from typing import Dict, Mapping, Optional, Sequence, Tuple

from ahawam_ros.msg import ActionChunk, WorldContext
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
import numpy as np
from sensor_msgs.msg import JointState
from std_msgs.msg import ColorRGBA, Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray


class JointStateError(ValueError):
    """A joint state that cannot be used (the reason is the message)."""


def to_time_msg(seconds: float) -> Time:
    """Float seconds -> builtin_interfaces/Time."""
    nanoseconds = int(round(seconds * 1e9))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def to_duration_msg(seconds: float) -> Duration:
    """Float seconds (>= 0) -> builtin_interfaces/Duration."""
    nanoseconds = int(round(seconds * 1e9))
    return Duration(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def stamp_seconds(stamp) -> float:
    """builtin_interfaces/Time or Duration -> float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def joint_positions(msg: JointState, joint_names: Sequence[str]) -> np.ndarray:
    """
    Return the positions of `joint_names`, in that order, from a JointState.

    Raises JointStateError naming missing joints or a non-finite position, so that no command
    is ever computed from them.
    """
    if len(msg.position) != len(msg.name):
        raise JointStateError(
            f'joint state has {len(msg.name)} names but {len(msg.position)} positions')
    index: Dict[str, int] = {name: i for i, name in enumerate(msg.name)}
    missing = [name for name in joint_names if name not in index]
    if missing:
        raise JointStateError(f'joint state lacks joints: {", ".join(missing)}')
    positions = np.array([msg.position[index[name]] for name in joint_names], np.float64)
    bad = [name for name, value in zip(joint_names, positions) if not math.isfinite(value)]
    if bad:
        raise JointStateError(f'non-finite joint positions for: {", ".join(bad)}')
    return positions


def joint_state_msg(positions: np.ndarray, joint_names: Sequence[str], stamp: float,
                    velocities: Optional[np.ndarray] = None) -> JointState:
    """Build a JointState from (A,) positions (and optional (A,) velocities)."""
    msg = JointState()
    msg.header.stamp = to_time_msg(stamp)
    msg.name = list(joint_names)
    msg.position = [float(v) for v in positions]
    if velocities is not None:
        msg.velocity = [float(v) for v in velocities]
    return msg


def position_command_msg(positions: np.ndarray) -> Float64MultiArray:
    """Build a Float64MultiArray of (A,) joint targets for a forward position controller."""
    msg = Float64MultiArray()
    msg.layout.dim = [MultiArrayDimension(label='joints', size=len(positions),
                                          stride=len(positions))]
    msg.data = [float(v) for v in positions]
    return msg


def command_positions(msg: Float64MultiArray, action_dim: int) -> np.ndarray:
    """Read (A,) joint targets from a Float64MultiArray command; check size and finiteness."""
    values = np.asarray(msg.data, np.float64)
    if values.shape != (action_dim,):
        raise ValueError(f'command has {values.size} values, expected {action_dim}')
    if not np.all(np.isfinite(values)):
        raise ValueError('command has non-finite values')
    return values


def trajectory_command_msg(path: np.ndarray, joint_names: Sequence[str], stamp: float,
                           time_from_start: float, period: float = math.nan,
                           velocities: Optional[np.ndarray] = None) -> JointTrajectory:
    """
    Build a JointTrajectory through the (P, A) `path`.

    Point k is reached `time_from_start + k period` seconds after `stamp`, with the (P, A)
    `velocities` when given (positions only if None).
    """
    msg = JointTrajectory()
    msg.header.stamp = to_time_msg(stamp)
    msg.joint_names = list(joint_names)
    path = np.asarray(path, np.float64).reshape(-1, len(msg.joint_names))
    for k, positions in enumerate(path):
        point = JointTrajectoryPoint()
        point.positions = positions.tolist()
        if velocities is not None:
            point.velocities = np.asarray(velocities[k], np.float64).tolist()
        point.time_from_start = to_duration_msg(time_from_start + (k * period if k else 0.0))
        msg.points.append(point)
    return msg


def trajectory_positions(msg: JointTrajectory, joint_names: Sequence[str]) -> np.ndarray:
    """Read the first point of a JointTrajectory as (A,) targets in `joint_names` order."""
    return trajectory_points(msg, joint_names)[1][0]


def trajectory_points(msg: JointTrajectory, joint_names: Sequence[str]
                      ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """
    Read a JointTrajectory in `joint_names` order; raise ValueError naming what is wrong.

    Returns (P,) times from start (s, increasing), (P, A) positions and (P, A) velocities
    (None when the points carry positions only).
    """
    if not msg.points:
        raise ValueError('trajectory has no points')
    index = {name: i for i, name in enumerate(msg.joint_names)}
    missing = [name for name in joint_names if name not in index]
    if missing:
        raise ValueError(f'trajectory lacks joints: {", ".join(missing)}')
    columns = [index[name] for name in joint_names]
    width = len(msg.joint_names)

    def table(field: str) -> np.ndarray:
        rows = [getattr(point, field) for point in msg.points]
        if any(len(row) != width for row in rows):
            raise ValueError(f'trajectory {field} must have {width} values per point')
        values = np.array([np.asarray(row, np.float64)[columns] for row in rows])
        if not np.all(np.isfinite(values)):
            raise ValueError(f'trajectory has non-finite {field}')
        return values

    positions = table('positions')
    velocities = table('velocities') if len(msg.points[0].velocities) else None
    times = np.array([stamp_seconds(point.time_from_start) for point in msg.points])
    if np.any(np.diff(times) <= 0.0):
        raise ValueError('trajectory times_from_start must increase')
    return times, positions, velocities


def action_chunk_msg(actions: np.ndarray, joint_names: Sequence[str], t0: float,
                     period: float, context_seq: int, context_age: float,
                     latency: float) -> ActionChunk:
    """Build an ActionChunk message from (K, A) actions starting at time `t0`."""
    msg = ActionChunk()
    msg.header.stamp = to_time_msg(t0)
    msg.joint_names = list(joint_names)
    msg.chunk_len = int(actions.shape[0])
    msg.positions = np.asarray(actions, np.float64).ravel().tolist()  # (K*A,) row-major
    msg.control_period = to_duration_msg(period)
    msg.context_seq = max(int(context_seq), 0)
    msg.context_age = float(context_age) if math.isfinite(context_age) else -1.0
    msg.inference_latency = float(latency)
    return msg


def world_context_msg(seq: int, obs_stamp: float, episode_step: int, shape: Mapping[str, int],
                      memory_fill: int, memory_capacity: int, latency: float, handle: str,
                      frame_id: str) -> WorldContext:
    """Build the WorldContext descriptor; `shape` has num_layers/num_tokens/num_heads/head_dim."""
    msg = WorldContext()
    msg.header.stamp = to_time_msg(obs_stamp)
    msg.header.frame_id = frame_id
    msg.seq = int(seq)
    msg.episode_step = max(int(episode_step), 0)
    msg.num_layers = int(shape.get('num_layers', 0))
    msg.num_tokens = int(shape.get('num_tokens', 0))
    msg.num_heads = int(shape.get('num_heads', 0))
    msg.head_dim = int(shape.get('head_dim', 0))
    msg.memory_fill, msg.memory_capacity = int(memory_fill), int(memory_capacity)
    msg.planner_latency = float(latency)
    msg.handle = handle
    return msg


def diagnostics_msg(name: str, hardware_id: str, level: int, message: str,
                    values: Mapping[str, object], stamp: float) -> DiagnosticArray:
    """One DiagnosticStatus (`level`: 0 OK, 1 WARN, 2 ERROR) with key/values, in an array."""
    status = DiagnosticStatus()
    status.level = bytes([level])
    status.name, status.hardware_id, status.message = name, hardware_id, message
    status.values = [KeyValue(key=str(k), value=_format(v)) for k, v in values.items()]
    array = DiagnosticArray()
    array.header.stamp = to_time_msg(stamp)
    array.status = [status]
    return array


def _format(value: object) -> str:
    if isinstance(value, float):
        return f'{value:.4g}'
    return str(value)


PATH_COLORS = ((0.2, 0.6, 1.0), (1.0, 0.55, 0.1))  # one per drawn link (left, right gripper)


def chunk_markers_msg(paths: np.ndarray, stamp: float, frame_id: str) -> MarkerArray:
    """
    Draw a planned chunk: one line strip (and points) per link along (K, P, 3) positions.

    Each new chunk replaces the previous markers (same namespace and ids).
    """
    markers = MarkerArray()
    time_msg = to_time_msg(stamp)
    for p in range(paths.shape[1]):
        color = PATH_COLORS[p % len(PATH_COLORS)]
        for kind, marker_id in ((Marker.LINE_STRIP, 2 * p), (Marker.SPHERE_LIST, 2 * p + 1)):
            marker = Marker(type=kind, action=Marker.ADD, ns='action_chunk', id=marker_id)
            marker.header.stamp, marker.header.frame_id = time_msg, frame_id
            marker.pose.orientation.w = 1.0
            size = 0.006 if kind == Marker.LINE_STRIP else 0.012
            marker.scale.x = marker.scale.y = marker.scale.z = size
            marker.color = ColorRGBA(r=color[0], g=color[1], b=color[2], a=0.9)
            marker.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in paths[:, p]]
            markers.markers.append(marker)
    return markers
