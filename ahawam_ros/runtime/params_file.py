"""
The one reader of a ROS parameter file outside rcl (config/bimanual.yaml and users' copies).

(`ahawam_ros.paths.system_params_file()` says where the system's file is.)

rcl reads the file for the nodes; the hosts without a node (eval-sim, eval-bag, bench, the demo
starting the simulator) read it here, with rcl's matching for a node in any namespace.
"""

import dataclasses
from pathlib import Path
from typing import Any, Dict, Optional, Type, TypeVar

from ahawam_ros.runtime.settings import (ExecutorSettings, part_values, PlannerSettings,
                                         RuntimeSettings)

ConfigT = TypeVar('ConfigT')
PLANNER_NODE, EXECUTOR_NODE, SIM_NODE = 'world_planner', 'action_executor', 'bimanual_sim'


def node_parameters(path: Path, node_name: str) -> Dict[str, Any]:
    """
    Return one node's `ros__parameters` from a parameter file, matched as rcl does.

    Sections apply in this order, later ones winning: `/**`, `/**/<node>`, `/<node>`,
    `<node>`. Raises ValueError naming the file when it is not a mapping of sections.
    """
    import yaml
    document = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(document, dict):
        raise ValueError(f'{path}: a ROS parameter file is a mapping of node sections')
    values: Dict[str, Any] = {}
    for key in ('/**', f'/**/{node_name}', f'/{node_name}', node_name):
        values.update((document.get(key) or {}).get('ros__parameters', {}))
    return values


def config_from_params_file(path: Path, node_name: str, config_cls: Type[ConfigT]) -> ConfigT:
    """Build `config_cls` from a node's section (its fields only; others keep defaults)."""
    names = {spec.name for spec in dataclasses.fields(config_cls)}
    values = node_parameters(path, node_name)
    return config_cls(**{k: tuple(v) if isinstance(v, list) else v
                         for k, v in values.items() if k in names})


def settings_from_params_file(path: Optional[Path]) -> RuntimeSettings:
    """Return the runtime settings a parameter file gives (None: the defaults)."""
    if path is None:
        return RuntimeSettings()
    return RuntimeSettings(
        planner=PlannerSettings(**part_values(PlannerSettings,
                                              node_parameters(path, PLANNER_NODE))),
        executor=ExecutorSettings(**part_values(ExecutorSettings,
                                                node_parameters(path, EXECUTOR_NODE))))


def write_params_file(settings: RuntimeSettings, base: Optional[Path], out: Path) -> Path:
    """
    Write `base` (a parameter file; None: none) with every runtime setting of `settings`.

    The nodes started from the written file run the same settings as an in-process host
    (`ahawam eval-sim --through ros`). Returns `out`.
    """
    import yaml
    document: Dict[str, Any] = (yaml.safe_load(Path(base).read_text()) or {}) if base else {}
    for node, part in ((PLANNER_NODE, settings.planner), (EXECUTOR_NODE, settings.executor)):
        section = document.setdefault(f'/**/{node}', {}).setdefault('ros__parameters', {})
        section.update(dataclasses.asdict(part))
    Path(out).write_text(yaml.safe_dump(document, sort_keys=False))
    return Path(out)
