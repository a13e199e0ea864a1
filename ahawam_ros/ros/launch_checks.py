"""
Checks that a launch runs before it starts any process (importable without `launch`).

`ros2 launch` starts its processes one by one: when an optional package (rviz2,
robot_state_publisher) turns out to be missing half-way, the launch fails with the processes
it already started left behind. `check_launch_dependencies` finds every missing piece first
and raises one error that names them and says how to go on.
"""

import importlib.util
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

# (package, executable) of the ROS packages each launch option starts.
RVIZ_EXECUTABLES = (('robot_state_publisher', 'robot_state_publisher'),
                    ('tf2_ros', 'static_transform_publisher'),
                    ('rviz2', 'rviz2'))
# Python modules the embedded simulator imports.
SIM_MODULES = ('gym_aloha', 'mujoco', 'dm_control')
TRUE, FALSE = ('true', '1', 'yes', 'on'), ('false', '0', 'no', 'off')


class LaunchDependencyError(RuntimeError):
    """A launch option needs a package that is not installed."""


def parse_flag(name: str, text: str) -> bool:
    """Parse a launch argument as launch's conditions do; raise naming the argument."""
    value = str(text).strip().lower()
    if value not in TRUE + FALSE:
        raise LaunchDependencyError(f'launch argument {name}:={text!r} must be true or false')
    return value in TRUE


def installed_executable(package: str, executable: str) -> bool:
    """Return whether `lib/<package>/<executable>` of an ament package is an executable file."""
    from ament_index_python.packages import get_package_prefix, PackageNotFoundError
    try:
        prefix = get_package_prefix(package)
    except (PackageNotFoundError, ValueError):
        return False
    path = Path(prefix) / 'lib' / package / executable
    return path.is_file() and os.access(path, os.X_OK)


def missing_dependencies(use_sim: bool, use_rviz: bool,
                         has_executable: Callable[[str, str], bool] = installed_executable,
                         has_module: Optional[Callable[[str], bool]] = None
                         ) -> Dict[str, List[str]]:
    """Return {launch option: [missing package/executable or Python module]}; empty if none."""
    has_module = has_module or (lambda name: importlib.util.find_spec(name) is not None)
    missing: Dict[str, List[str]] = {}
    if use_rviz:
        absent = [f'{package}/{executable}' for package, executable in RVIZ_EXECUTABLES
                  if not has_executable(package, executable)]
        if absent:
            missing['use_rviz'] = absent
    if use_sim:
        absent = [f'Python module {name}' for name in SIM_MODULES if not has_module(name)]
        if absent:
            missing['use_sim'] = absent
    return missing


HOW_TO = {
    'use_rviz': 'install them (e.g. apt install ros-$ROS_DISTRO-robot-state-publisher '
                'ros-$ROS_DISTRO-tf2-ros ros-$ROS_DISTRO-rviz2) or launch with use_rviz:=false',
    'use_sim': 'install the simulator (pip install gym-aloha==0.1.5 dm-control==1.0.41 '
               'mujoco==3.8.1) or launch with use_sim:=false',
}


def check_launch_dependencies(use_sim: str, use_rviz: str, **finders) -> Tuple[bool, bool]:
    """
    Raise `LaunchDependencyError` naming everything the options need and lack.

    Parameters
    ----------
    use_sim, use_rviz : str
        The launch arguments' values ('true' / 'false').
    **finders
        `has_executable` / `has_module` replacements (see `missing_dependencies`).

    Returns
    -------
    (bool, bool)
        The parsed (use_sim, use_rviz).

    """
    flags = parse_flag('use_sim', use_sim), parse_flag('use_rviz', use_rviz)
    missing = missing_dependencies(*flags, **finders)
    if missing:
        lines = [f'{option}:=true needs {", ".join(items)}, not found: {HOW_TO[option]}'
                 for option, items in missing.items()]
        raise LaunchDependencyError('nothing was started. ' + '; '.join(lines))
    return flags
