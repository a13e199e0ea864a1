"""
Typed configs <-> ROS parameters, in one place.

A node config is a frozen dataclass; each field becomes a declared parameter of the same name,
with the field's `metadata['help']` as its description and `metadata['range']` (lo, hi) as its
range. Reading the parameters back builds the dataclass, whose `__post_init__` validates it.
"""

import dataclasses
from typing import Any, Type, TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

ConfigT = TypeVar('ConfigT')


def field(default: Any, help: str, range: tuple = None):  # noqa: A002 - reads as a spec
    """Declare a config field with its parameter description and optional (lo, hi) range."""
    metadata = {'help': help}
    if range is not None:
        metadata['range'] = range
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default_factory=lambda: tuple(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _descriptor(spec: dataclasses.Field, default: Any) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=spec.metadata.get('help', ''))
    lo_hi = spec.metadata.get('range')
    if lo_hi is not None:
        if isinstance(default, bool):
            pass
        elif isinstance(default, int):
            descriptor.integer_range = [IntegerRange(from_value=int(lo_hi[0]),
                                                     to_value=int(lo_hi[1]), step=0)]
        else:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(lo_hi[0]), to_value=float(lo_hi[1]), step=0.0)]
    return descriptor


def _default(spec: dataclasses.Field) -> Any:
    if spec.default is not dataclasses.MISSING:
        return spec.default
    return spec.default_factory()


def declare_config(node: Node, config_cls: Type[ConfigT]) -> ConfigT:
    """Declare every field of `config_cls` as a parameter of `node`; return the typed config."""
    values = {}
    for spec in dataclasses.fields(config_cls):
        default = _default(spec)
        ros_default = list(default) if isinstance(default, tuple) else default
        node.declare_parameter(spec.name, ros_default, _descriptor(spec, default))
        value = node.get_parameter(spec.name).value
        values[spec.name] = tuple(value) if isinstance(default, tuple) else value
    return config_cls(**values)


def config_from_params_file(path: str, node_name: str, config_cls: Type[ConfigT]) -> ConfigT:
    """
    Build `config_cls` from a node's section of a ROS parameter file, without a node.

    For a process that starts another node (the demo starts the simulator) and must agree
    with it on topics. Sections match as rcl does for a root-namespace node: `node_name`,
    `/node_name` or the `/**` wildcard forms.
    """
    import yaml
    with open(path) as stream:
        document = yaml.safe_load(stream) or {}
    values = {}
    for key in ('/**', f'/**/{node_name}', f'/{node_name}', node_name):
        values.update((document.get(key) or {}).get('ros__parameters', {}))
    names = {spec.name for spec in dataclasses.fields(config_cls)}
    known = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
    return config_cls(**known)
