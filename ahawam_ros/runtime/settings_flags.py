"""
Command-line flags of the runtime settings, derived from `RuntimeSettings`' fields.

`ahawam eval-sim`, `eval-bag` and `bench` take the same flags, named as the node parameters
(`--execute-steps`, `--refresh-rate-hz`, ...), each with the field's help. A flag not given
keeps the value of the parameter file the command reads (`--params-file`, by default the
system's config/bimanual.yaml), else the settings' default.
"""

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Optional

from ahawam_ros.paths import system_params_file
from ahawam_ros.runtime.chunk_scheduler import BlendMode
from ahawam_ros.runtime.params_file import settings_from_params_file
from ahawam_ros.runtime.settings import ExecutorSettings, PlannerSettings, RuntimeSettings
from ahawam_ros.runtime.update_timing import SCHEDULES

_CHOICES = {'schedule': SCHEDULES, 'blend': tuple(mode.value for mode in BlendMode)}


def _knobs() -> List[dataclasses.Field]:
    seen: Dict[str, dataclasses.Field] = {}
    for part in (PlannerSettings, ExecutorSettings):
        for spec in dataclasses.fields(part):
            seen.setdefault(spec.name, spec)
    return list(seen.values())


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """Add `--params-file` and one flag per runtime setting to `parser`."""
    group = parser.add_argument_group(
        'runtime settings', 'as the node parameters of the same names; a flag not given '
        "keeps the parameter file's value, else the default shown")
    group.add_argument('--params-file', type=Path, metavar='FILE',
                       help='ROS parameter file to read the settings from (default: the '
                       "system's config/bimanual.yaml)")
    for spec in _knobs():
        default = spec.default
        kind = type(default)
        group.add_argument(f'--{spec.name.replace("_", "-")}', dest=spec.name, type=kind,
                           choices=_CHOICES.get(spec.name), default=None,
                           metavar=None if spec.name in _CHOICES else kind.__name__.upper(),
                           help=f'{spec.metadata["help"]} (default: {default})')


def settings_from_args(args: argparse.Namespace) -> RuntimeSettings:
    """Return the settings of `--params-file` (or the system's file) changed by the flags."""
    base = settings_from_params_file(params_file_of(args))
    changes: Dict[str, Any] = {spec.name: getattr(args, spec.name) for spec in _knobs()
                               if getattr(args, spec.name, None) is not None}
    return base.replace(**changes) if changes else base


def params_file_of(args: argparse.Namespace) -> Optional[Path]:
    """Return the parameter file the flags name, else the system's (None if not installed)."""
    given = getattr(args, 'params_file', None)
    if given is not None:
        return Path(given)
    try:
        return system_params_file()
    except FileNotFoundError:
        return None
