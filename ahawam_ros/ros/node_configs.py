"""
Typed configs of the nodes; field names are the ROS parameter names (config/*.yaml).

The runtime knobs are inherited from `runtime/settings.py` (their one home); what is added
here belongs to the ROS shell: the policy source, topics, the robot's joints, diagnostics.

`params.declare_config(node, Config)` declares every field as a parameter and builds the
config from the values given (parameter file, launch, command line); `__post_init__` checks
them (ranges included) and names a bad field with its value. The fields a config lists in
`LIVE` can be set at run time (`ros2 param set`); all others are read-only.
"""

from dataclasses import dataclass
import math
from typing import ClassVar, Tuple

from ahawam_ros import robot
from ahawam_ros.runtime.settings import check_ranges, ExecutorSettings, JointLimits
from ahawam_ros.runtime.settings import PlannerSettings, setting as field

DEFAULT_CAMERAS = ('cameras/top/image_raw',)
COMMAND_INTERFACES = ('trajectory', 'position')


def _check_positive(config, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f'{name} must be a finite number > 0, got {value}')


def _check_cameras(config) -> None:
    if not config.camera_topics or any(not topic for topic in config.camera_topics):
        raise ValueError(f'camera_topics must list at least one topic, got '
                         f'{list(config.camera_topics)}')
    if config.image_height < 0 or config.image_width < 0:
        raise ValueError(f'image size must be >= 0 (0 = the policy input size), got '
                         f'{config.image_height}x{config.image_width}')


@dataclass(frozen=True)
class PolicySource:
    """Where the policy comes from; shared by the planner and executor nodes."""

    checkpoint: str = field('', 'checkpoint directory; empty = the packaged default; '
                                '"fake" = a scripted stand-in policy (no model) for ROS tests')
    device: str = field('cpu', 'torch device, e.g. cpu or cuda:0')
    torch_threads: int = field(1, "torch intra-op threads of this node's worker thread",
                               (1, 64))
    task: str = field('', "task the policy is conditioned on, one of the checkpoint's (e.g. "
                          "transfer_cube, insertion); empty: the checkpoint's first. An "
                          'episode_start header naming a task (frame_id) switches to it')


@dataclass(frozen=True)
class CameraInputs(PolicySource):
    """The policy and its camera inputs; shared by the planner and executor nodes."""

    camera_topics: Tuple[str, ...] = field(
        DEFAULT_CAMERAS, "camera topics in the policy's view order (the same for planner and "
        'executor); a topic ending in /compressed is a sensor_msgs/CompressedImage, any other '
        'a sensor_msgs/Image')
    image_height: int = field(0, 'expected camera image height; 0 = the policy input size',
                              (0, 4096))
    image_width: int = field(0, 'expected camera image width; 0 = the policy input size',
                             (0, 4096))
    resize_images: bool = field(False, 'resize frames of another size instead of rejecting')


@dataclass(frozen=True)
class WorldPlannerConfig(CameraInputs, PlannerSettings):
    """Parameters of the world_planner node: its runtime settings, topics and diagnostics."""

    LIVE: ClassVar[Tuple[str, ...]] = PlannerSettings.LIVE + (
        'diagnostics_period', 'error_after', 'imagination_rate_hz', 'imagination_steps')

    context_topic: str = field('world_context', 'WorldContext descriptor topic')
    composite_topic: str = field('~/composite_image', 'tiled planner input image topic (rviz)')
    imagination_rate_hz: float = field(0.0, "publish the world model's predicted future frames "
                                       "at most this often (0: off); computed in the planner's "
                                       "worker after a refresh, off the executor's path",
                                       (0.0, 30.0))
    imagination_steps: int = field(4, 'Euler steps of each prediction (fewer: cheaper, coarser)',
                                   (1, 100))
    imagination_topic: str = field('~/imagination', 'sensor_msgs/Image of the predicted future '
                                   'frames: one row per future frame, views tiled as on '
                                   'composite_topic, stamped with the refreshed frame')
    episode_topic: str = field('episode_start', 'std_msgs/Header: a new episode starts at '
                                                'header.stamp (resets the rolling memory)')
    diagnostics_topic: str = field('/diagnostics', 'diagnostic_msgs/DiagnosticArray topic')
    diagnostics_period: float = field(1.0, 'seconds between diagnostics messages', (0.05, 60.0))
    error_after: float = field(5.0, 'diagnostics turn from WARN to ERROR after this many '
                               'seconds without a published context', (0.1, 3600.0))

    def __post_init__(self):
        super().__post_init__()  # PlannerSettings: the runtime knobs
        check_ranges(self)
        _check_cameras(self)


@dataclass(frozen=True)
class ActionExecutorConfig(CameraInputs, ExecutorSettings):
    """Parameters of the action_executor node: its runtime settings, robot, topics."""

    LIVE: ClassVar[Tuple[str, ...]] = ExecutorSettings.LIVE + (
        'diagnostics_period', 'hold_error_after', 'transition_log_period',
        'trajectory_points')

    joint_names: Tuple[str, ...] = field(robot.JOINT_NAMES, 'commanded joints, policy order')
    lower_limits: Tuple[float, ...] = field(robot.JOINT_LOWER, 'joint position lower limits')
    upper_limits: Tuple[float, ...] = field(robot.JOINT_UPPER, 'joint position upper limits')
    command_interfaces: Tuple[str, ...] = field(
        COMMAND_INTERFACES, 'which command messages to publish: trajectory '
        '(trajectory_msgs/JointTrajectory) and/or position (std_msgs/Float64MultiArray)')
    joint_state_topic: str = field('joint_states', 'measured joint states')
    trajectory_topic: str = field('joint_trajectory', 'JointTrajectory command topic')
    trajectory_points: int = field(10, 'points per JointTrajectory: the command, then the '
                                   "plan's next ones one control period apart, with "
                                   'velocities (fewer where the plan ends or its inputs would '
                                   'be stale by then); 1: one point, positions only', (1, 100))
    position_topic: str = field('joint_commands', 'Float64MultiArray command topic')
    commanded_state_topic: str = field('commanded_joint_states', 'commands as JointState (rviz)')
    chunk_topic: str = field('action_chunk', 'ActionChunk topic (one message per new chunk)')
    context_topic: str = field('world_context', 'WorldContext descriptor topic')
    diagnostics_topic: str = field('/diagnostics', 'diagnostic_msgs/DiagnosticArray topic')
    chunk_marker_topic: str = field('action_chunk_markers', 'MarkerArray of each planned '
                                    'chunk (gripper paths, rviz)')
    marker_links: Tuple[str, ...] = field(('left_gripper_link', 'right_gripper_link'),
                                          'URDF links whose paths the chunk markers draw')
    marker_frame: str = field('world', 'frame of the chunk markers (the URDF root)')
    episode_topic: str = field('episode_start', 'std_msgs/Header: a new episode starts')
    diagnostics_period: float = field(1.0, 'seconds between diagnostics messages', (0.05, 60.0))
    hold_error_after: float = field(5.0, 'diagnostics turn from WARN to ERROR after holding '
                                         'for missing or stale inputs this long (s)',
                                    (0.0, 3600.0))
    transition_log_period: float = field(5.0, 'least seconds between two logged hold / '
                                              'execute transitions (the rest are counted)',
                                         (0.0, 3600.0))

    def __post_init__(self):
        super().__post_init__()  # ExecutorSettings: the runtime knobs
        check_ranges(self)
        _check_cameras(self)
        dims = {len(self.joint_names), len(self.lower_limits), len(self.upper_limits)}
        if len(dims) != 1:
            raise ValueError(f'joint_names, lower_limits and upper_limits must have one length, '
                             f'got {len(self.joint_names)}, {len(self.lower_limits)}, '
                             f'{len(self.upper_limits)}')
        unknown = [name for name in self.command_interfaces if name not in COMMAND_INTERFACES]
        if unknown or not self.command_interfaces:
            raise ValueError(f'command_interfaces must be a non-empty subset of '
                             f'{list(COMMAND_INTERFACES)}, got {list(self.command_interfaces)}')

    def limits(self) -> JointLimits:
        """Return the commanded joints' position limits."""
        return JointLimits(self.lower_limits, self.upper_limits)


@dataclass(frozen=True)
class BimanualSimConfig:
    """Parameters of the bimanual_sim node (the embedded ALOHA simulator)."""

    task: str = field('transfer_cube', 'transfer_cube or insertion')
    cameras: Tuple[str, ...] = field(('top', 'left_wrist', 'right_wrist'), 'rendered cameras')
    image_height: int = field(120, 'rendered image height', (8, 2048))
    image_width: int = field(160, 'rendered image width', (8, 2048))
    seed: int = field(0, 'seed of the first episode', (0, 2 ** 31 - 1))
    episode_steps: int = field(0, 'control steps after which the simulator starts the next '
                               'episode (seed + 1) on its own; 0: only on the sim/reset '
                               'service (the demo supervisor resets each episode)',
                               (0, 10 ** 9))
    control_rate_hz: float = field(robot.CONTROL_RATE_HZ, 'physics steps per second of '
                                   'simulated time', (1.0, 1000.0))
    real_time_factor: float = field(1.0, 'simulated seconds per wall second', (0.01, 100.0))
    camera_every: int = field(robot.CAMERA_EVERY, 'render and publish the cameras every n-th '
                              'step', (1, 100))
    camera_topic_pattern: str = field('cameras/{name}/image_raw', 'camera topic per {name}')
    joint_state_topic: str = field('joint_states', 'published joint states')
    command_interface: str = field('trajectory', 'accepted commands: trajectory '
                                   '(JointTrajectory) or position (Float64MultiArray)')
    trajectory_topic: str = field('joint_trajectory', 'JointTrajectory command topic')
    position_topic: str = field('joint_commands', 'Float64MultiArray command topic')
    reward_topic: str = field('sim/reward', 'std_msgs/Float64 staged reward (0..4) per step')
    success_topic: str = field('sim/success', 'std_msgs/Bool task success per step')
    episode_topic: str = field('episode_start', 'std_msgs/Header at each reset (frame_id=task)')
    reset_service: str = field('sim/reset', 'ahawam_ros/srv/ResetEpisode')
    publish_clock: bool = field(False, 'publish /clock from simulated time (use_sim_time)')

    def __post_init__(self):
        _check_positive(self, 'control_rate_hz', 'real_time_factor')
        check_ranges(self)
        if self.command_interface not in COMMAND_INTERFACES:
            raise ValueError(f'command_interface must be one of {list(COMMAND_INTERFACES)}, '
                             f'got {self.command_interface!r}')
        if '{name}' not in self.camera_topic_pattern:
            raise ValueError(f'camera_topic_pattern must contain {{name}}, got '
                             f'{self.camera_topic_pattern!r}')
