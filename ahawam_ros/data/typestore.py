"""
A `rosbags` typestore that knows ROS 2 Kilted's standard messages and ahawam_ros's own.

Bags are read and written with `rosbags` (pure Python), so the core never needs rclpy. Our
custom message definitions are registered from the package's `.msg` files, found in the source
tree, the ament index (a colcon install) or `<prefix>/share/ahawam_ros/msg` (a pip install).
"""

import functools
from pathlib import Path
import sys
from typing import List

from rosbags.typesys import get_types_from_msg, get_typestore, Stores
from rosbags.typesys.store import Typestore

PACKAGE = 'ahawam_ros'
CUSTOM_MESSAGES = ('WorldContext', 'ActionChunk')


def _candidate_msg_dirs() -> List[Path]:
    dirs = [Path(__file__).resolve().parents[2] / 'msg',
            Path(sys.prefix) / 'share' / PACKAGE / 'msg']
    try:
        from ament_index_python.packages import get_package_share_directory
        dirs.append(Path(get_package_share_directory(PACKAGE)) / 'msg')
    except Exception:  # noqa: B902 - no ament index, or the package is not installed in it
        pass
    return dirs


def find_msg_dir() -> Path:
    """Return the directory holding ahawam_ros's `.msg` files, or raise naming where we looked."""
    dirs = _candidate_msg_dirs()
    for directory in dirs:
        if all((directory / f'{name}.msg').is_file() for name in CUSTOM_MESSAGES):
            return directory
    looked = ', '.join(str(d) for d in dirs)
    raise FileNotFoundError(f'ahawam_ros message definitions not found (looked in: {looked})')


@functools.lru_cache(maxsize=1)
def ahawam_typestore() -> Typestore:
    """Return the Kilted typestore with `ahawam_ros/msg/*` registered (built once)."""
    store = get_typestore(Stores.ROS2_KILTED)
    msg_dir = find_msg_dir()
    for name in CUSTOM_MESSAGES:
        text = (msg_dir / f'{name}.msg').read_text()
        store.register(get_types_from_msg(text, f'{PACKAGE}/msg/{name}'))
    return store
