"""
Typed configs <-> ROS parameters, in one place.

A node config is a frozen dataclass; each field becomes a declared parameter of the same name,
with the field's `metadata['help']` as its description and `metadata['range']` (lo, hi) as its
range. Reading the parameters back builds the dataclass, whose `__post_init__` validates it.

At run time a parameter is either live or read-only. A live one (`LiveConfig`) is validated
by building the dataclass with the new value (a refused set answers with the validation
message and changes nothing), then applied by the node. Every other one is declared
read-only: `ros2 param set` is refused with the reason, instead of answering "successful"
and changing nothing.
"""

import dataclasses
import threading
from typing import Any, Callable, Collection, List, Optional, Type, TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

ConfigT = TypeVar('ConfigT')


LIVE = 'live: a valid set takes effect at once'
READ_ONLY = 'read-only: fixed when the node starts (restart the node to change it)'


def _descriptor(spec: dataclasses.Field, default: Any, live: bool) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=spec.metadata.get('help', ''),
                                     read_only=not live,
                                     additional_constraints=LIVE if live else READ_ONLY)
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


def _field_value(spec: dataclasses.Field, value: Any) -> Any:
    """Convert a parameter value to the field's type (arrays become tuples)."""
    return tuple(value) if isinstance(_default(spec), tuple) else value


def declare_config(node: Node, config_cls: Type[ConfigT],
                   live: Optional[Collection[str]] = None) -> ConfigT:
    """
    Declare every field of `config_cls` as a parameter of `node`; return the typed config.

    Fields named in `live` (default: the config's `LIVE` class attribute) may be set at run
    time (see `LiveConfig`); all others are declared read-only.
    """
    live = getattr(config_cls, 'LIVE', ()) if live is None else live
    names = {spec.name for spec in dataclasses.fields(config_cls)}
    unknown = sorted(set(live) - names)
    if unknown:
        raise ValueError(f'live parameters {unknown} are not fields of {config_cls.__name__}')
    values = {}
    for spec in dataclasses.fields(config_cls):
        default = _default(spec)
        ros_default = list(default) if isinstance(default, tuple) else default
        node.declare_parameter(spec.name, ros_default,
                               _descriptor(spec, default, spec.name in live))
        values[spec.name] = _field_value(spec, node.get_parameter(spec.name).value)
    return config_cls(**values)


class LiveConfig:
    """
    Validates parameter sets on a node's config dataclass and hands valid changes to `apply`.

    rclpy has already refused read-only parameters, wrong types and out-of-range values when
    the validation callback runs; it builds the config with the new values (its
    `__post_init__` and `check`, e.g. building the runtime's config, must pass) or refuses the
    whole set with their message. After rclpy stored the values, `apply(old, new)` runs: the
    node swaps its config and makes the change take effect at a safe point.

    Parameters
    ----------
    node : Node
        The node whose parameters were declared with `declare_config`.
    config : dataclass
        The config built at start.
    apply : Callable[[config, config], None]
        Called with (old, new) after a successful set that changed a config field.
    check : Callable[[config], object], optional
        Further validation of a candidate config; raises ValueError to refuse the set.

    """

    def __init__(self, node: Node, config, apply: Callable[[Any, Any], None],
                 check: Optional[Callable[[Any], object]] = None):
        self.config = config
        self._apply = apply
        self._check = check
        self._fields = {spec.name: spec for spec in dataclasses.fields(config)}
        self._lock = threading.Lock()
        node.add_on_set_parameters_callback(self._validate)
        node.add_post_set_parameters_callback(self._on_set)

    def candidate(self, parameters: List[Parameter]):
        """Return the config with the values of `parameters` (raises ValueError if invalid)."""
        changes = {p.name: _field_value(self._fields[p.name], p.value)
                   for p in parameters if p.name in self._fields}
        config = dataclasses.replace(self.config, **changes)
        if self._check is not None:
            self._check(config)
        return config

    def _validate(self, parameters: List[Parameter]) -> SetParametersResult:
        try:
            self.candidate(parameters)
        except (ValueError, TypeError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def _on_set(self, parameters: List[Parameter]) -> None:
        with self._lock:
            old = self.config
            self.config = self.candidate(parameters)
            if self.config != old:
                self._apply(old, self.config)


def changes(old, new) -> str:
    """Describe the fields that differ between two configs: 'name old -> new, ...'."""
    return ', '.join(f'{spec.name} {getattr(old, spec.name)} -> {getattr(new, spec.name)}'
                     for spec in dataclasses.fields(old)
                     if getattr(old, spec.name) != getattr(new, spec.name))
