"""
Bring up AHA-WAM on a bimanual robot, or on the embedded simulator (use_sim:=true).

    ros2 launch ahawam_ros bimanual.launch.py use_sim:=true use_rviz:=true

Starts the bringup process (world planner and action executor in one process, so that the
world context travels by reference), the simulator when use_sim, and rviz2 with two
robot_state_publishers (measured and commanded joint states) when use_rviz. The packages
these options need are checked first: a missing one fails the launch before anything starts.
"""

import os

from ahawam_ros.paths import resolve_params_file
from ahawam_ros.ros.launch_checks import check_launch_dependencies
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.conditions import IfCondition
from launch.substitution import Substitution
from launch.substitutions import LaunchConfiguration
from launch.utilities import normalize_to_list_of_substitutions, perform_substitutions
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

ARGUMENTS = (
    ('params_file', os.path.join('config', 'bimanual.yaml'),
     'ROS parameter file of the nodes (relative paths resolve in the package share)'),
    ('checkpoint', '', 'policy checkpoint directory; empty = the packaged default'),
    ('use_sim', 'false', 'start the embedded bimanual simulator (gym-aloha / MuJoCo)'),
    ('use_rviz', 'false', 'start rviz2 with the robot model, commands, chunk and images'),
    ('use_sim_time', 'false', 'follow /clock (the simulator publishes it when this is true, '
                              'or `ros2 bag play --clock`)'),
    ('namespace', '', 'namespace of every node and relative topic'),
    ('task', '', 'task the policy is conditioned on, and with use_sim the task the simulator '
                 "runs (transfer_cube, insertion); empty: the checkpoint's first task and a "
                 'transfer_cube simulator'),
    ('episode_steps', '400', 'with use_sim: control steps after which the simulator starts '
                             'the next episode on its own (0: only on sim/reset)'),
)


def _share(*parts: str) -> str:
    return os.path.join(get_package_share_directory('ahawam_ros'), *parts)


class ParamsFile(Substitution):
    """A parameter file argument made absolute: the working directory, else the package share."""

    def __init__(self, path):
        super().__init__()
        self._path = normalize_to_list_of_substitutions(path)

    def perform(self, context) -> str:
        """Return the resolved path (FileNotFoundError, naming both places, if in neither)."""
        return str(resolve_params_file(perform_substitutions(context, self._path)))


class OrDefault(Substitution):
    """A launch argument's value, or `default` when it is empty."""

    def __init__(self, value, default: str):
        super().__init__()
        self._value, self._default = normalize_to_list_of_substitutions(value), default

    def perform(self, context) -> str:
        """Return the value, or the default for an empty one."""
        return perform_substitutions(context, self._value) or self._default


def _check_dependencies(context):
    """Fail the launch, before any process starts, if an option lacks its packages."""
    check_launch_dependencies(LaunchConfiguration('use_sim').perform(context),
                              LaunchConfiguration('use_rviz').perform(context))
    return []


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and the processes of the bimanual system."""
    share = get_package_share_directory('ahawam_ros')
    arg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    declared = [DeclareLaunchArgument(
        name, default_value=os.path.join(share, default) if name == 'params_file' else default,
        description=description) for name, default, description in ARGUMENTS]
    sim_time = ParameterValue(arg['use_sim_time'], value_type=bool)
    params_file = ParamsFile(arg['params_file'])  # one resolution for both processes
    with open(_share('urdf', 'aloha_bimanual.urdf')) as urdf:
        robot_description = urdf.read()

    # No `name`: it would rename both nodes of the process, and dict parameters without a
    # name apply to every node in it (`/**`), as use_sim_time must. The checkpoint is an
    # option of bringup, applied only when given, so that one set in params_file stands.
    bringup = Node(
        package='ahawam_ros', executable='bringup',
        namespace=arg['namespace'], output='screen', emulate_tty=True,
        arguments=['--checkpoint', arg['checkpoint'],
                   '--ros-args', '--params-file', params_file],
        parameters=[{'use_sim_time': sim_time, 'task': arg['task']}],
        # without the policy nodes nothing commands the robot: the launch ends with them
        # (a bad checkpoint exits 2 with one line; the simulator must not run on alone)
        on_exit=Shutdown(reason='bringup exited'))
    simulator = Node(
        package='ahawam_ros', executable='bimanual_sim', namespace=arg['namespace'],
        output='screen', condition=IfCondition(arg['use_sim']),
        parameters=[params_file, {
            'publish_clock': sim_time, 'task': OrDefault(arg['task'], 'transfer_cube'),
            'episode_steps': ParameterValue(arg['episode_steps'], value_type=int)}])
    measured_model = Node(
        package='robot_state_publisher', executable='robot_state_publisher',
        name='robot_state_publisher', namespace=arg['namespace'],
        condition=IfCondition(arg['use_rviz']),
        parameters=[{'robot_description': robot_description, 'use_sim_time': sim_time}])
    commanded_model = Node(
        package='robot_state_publisher', executable='robot_state_publisher',
        name='commanded_state_publisher', namespace=arg['namespace'],
        condition=IfCondition(arg['use_rviz']),
        remappings=[('joint_states', 'commanded_joint_states'),
                    ('robot_description', 'commanded_robot_description')],
        parameters=[{'robot_description': robot_description, 'frame_prefix': 'commanded/',
                     'use_sim_time': sim_time}])
    # The commanded model's frames are prefixed; pin its root onto the measured one.
    commanded_root = Node(
        package='tf2_ros', executable='static_transform_publisher', namespace=arg['namespace'],
        condition=IfCondition(arg['use_rviz']),
        arguments=['--frame-id', 'world', '--child-frame-id', 'commanded/world'])
    rviz = Node(
        package='rviz2', executable='rviz2', namespace=arg['namespace'],
        arguments=['-d', _share('rviz', 'bimanual.rviz')],
        condition=IfCondition(arg['use_rviz']), parameters=[{'use_sim_time': sim_time}])
    # Entities start in order: the check comes before every process.
    return LaunchDescription(declared + [OpaqueFunction(function=_check_dependencies), bringup,
                                         simulator, measured_model, commanded_model,
                                         commanded_root, rviz])
