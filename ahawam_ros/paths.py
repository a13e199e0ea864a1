"""Where the package's files are (config, urdf, rviz): installed, or in the source tree."""

from pathlib import Path
import sys

PACKAGE = 'ahawam_ros'
SOURCE_ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PARAMS = ('config', 'bimanual.yaml')


def share_dir() -> Path:
    """Return the package's share directory (ament index), else the source tree root."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE))
    except (ImportError, LookupError, ValueError):
        return SOURCE_ROOT


def share_file(*parts: str) -> Path:
    """Return an installed package file, falling back to the source tree; raise if missing."""
    for root in (share_dir(), SOURCE_ROOT, Path(sys.prefix) / 'share' / PACKAGE):
        path = root.joinpath(*parts)
        if path.exists():
            return path
    raise FileNotFoundError(f'{"/".join(parts)} not found in {share_dir()} or {SOURCE_ROOT}')


def resolve_params_file(path: str) -> Path:
    """
    Return a ROS parameter file's absolute path.

    A relative path resolves against the working directory, else the package share (as
    `params_file:=config/bimanual.yaml` of the launch file means it). A file found in neither
    raises FileNotFoundError naming both places.
    """
    path = Path(path)
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, share_dir() / path]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise FileNotFoundError(f'parameter file {path} not found (looked in '
                                f'{", ".join(str(c.parent) for c in candidates)})')
    return found


def system_params_file() -> Path:
    """Return the system's ROS parameter file, config/bimanual.yaml (raise if missing)."""
    return share_file(*SYSTEM_PARAMS)
