"""`ahawam info`: what this install is and what it can do (versions, optional parts)."""

import argparse
import importlib.util
import platform
from typing import List, Optional

import ahawam_ros
from ahawam_ros.robot import JOINT_NAMES

# Optional parts of an install: name -> module whose presence enables it.
OPTIONAL_PARTS = {
    'ROS 2 (rclpy)': 'rclpy',
    'generated messages': 'ahawam_ros.msg',
    'simulator (gym-aloha)': 'gym_aloha',
    'LeRobot tables (pyarrow)': 'pyarrow',
    'LeRobot video (PyAV)': 'av',
    'cv_bridge': 'cv_bridge',
    'launch': 'launch',
}


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def main(argv: Optional[List[str]] = None) -> int:
    """Print the package version, the robot's joints and which optional parts are present."""
    argparse.ArgumentParser(prog='ahawam info', description=__doc__).parse_args(argv)
    print(f'ahawam_ros {ahawam_ros.__version__} (Python {platform.python_version()})')
    print(f'joints ({len(JOINT_NAMES)}): {", ".join(JOINT_NAMES)}')
    for label, module in OPTIONAL_PARTS.items():
        print(f'  {label:<24} {"yes" if _available(module) else "no"}')
    return 0
