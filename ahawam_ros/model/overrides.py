"""
Changes to a model preset by dotted name, as `ahawam train --model-set` takes them.

    executor.context_adapter=false   executor.width=128   ovcr.delta_rank=32   num_layers=4

An ablation or a variant of a preset needs no new preset: each override names a field of
`ModelConfig` (a nested one through its section), and its text is read as that field's current
type (bool: true / false / 1 / 0 / yes / no / on / off; int; float; str; a tuple as comma-separated
items of its items' type; an empty field as JSON). The changed config is rebuilt through
`ModelConfig.from_dict`, so every check of the config applies (a width that breaks the
geometry fails by name). Values already typed (a run's saved settings) are taken as they are.
"""

import json
from typing import Any, Dict, Mapping, Sequence, Tuple

from ahawam_ros.model.config import ModelConfig

TRUE, FALSE = ('true', '1', 'yes', 'on'), ('false', '0', 'no', 'off')


def parse_assignments(texts: Sequence[str]) -> Dict[str, str]:
    """Return {dotted name: value text} of 'NAME=VALUE' strings; a malformed one raises."""
    out = {}
    for text in texts:
        name, sep, value = text.partition('=')
        if not sep or not name.strip():
            raise ValueError(f'--model-set {text!r}: expected NAME=VALUE, for example '
                             'executor.context_adapter=false')
        out[name.strip()] = value.strip()
    return out


def _coerce(name: str, text: Any, current: Any) -> Any:
    """Read `text` as the type of `current` (the field's value in the preset)."""
    if not isinstance(text, str):
        return text
    try:
        if isinstance(current, bool):
            if text.lower() not in TRUE + FALSE:
                raise ValueError(f'not one of {TRUE + FALSE}')
            return text.lower() in TRUE
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, (tuple, list)):
            items = [item.strip() for item in text.split(',') if item.strip()]
            kind = current[0] if current else ''
            return [_coerce(name, item, kind) for item in items]
        if current is None:
            return json.loads(text)
    except ValueError as error:
        raise ValueError(f'--model-set {name}={text}: not a {type(current).__name__} '
                         f'({error})') from None
    return text


def _locate(values: Dict[str, Any], name: str) -> Tuple[Dict[str, Any], str]:
    """Return (the dict holding the field, its key) of dotted `name` in a config dict."""
    parts = name.split('.')
    holder = values
    for depth, part in enumerate(parts):
        if not isinstance(holder, dict) or part not in holder:
            where = '.'.join(parts[:depth]) or 'the model config'
            valid = sorted(holder) if isinstance(holder, dict) else []
            raise ValueError(f'--model-set {name}: {where} has no field {part!r}; valid: '
                             f'{valid}')
        if depth < len(parts) - 1:
            holder = holder[part]
    if isinstance(holder[parts[-1]], dict):
        raise ValueError(f'--model-set {name}: a section, name one of its fields: '
                         f'{sorted(holder[parts[-1]])}')
    return holder, parts[-1]


def apply_overrides(config: ModelConfig, overrides: Mapping[str, Any]) -> ModelConfig:
    """
    Return a new `ModelConfig`: `config` with each {dotted name: value} of `overrides` set.

    Raises ValueError naming the override for an unknown field, a value of the wrong type or
    a config that fails its own checks.
    """
    if not overrides:
        return config
    values = config.to_dict()
    for name, text in overrides.items():
        holder, key = _locate(values, name)
        holder[key] = _coerce(name, text, holder[key])
    try:
        return ModelConfig.from_dict(values)
    except (ValueError, TypeError) as error:
        changes = ', '.join(f'{name}={value}' for name, value in overrides.items())
        raise ValueError(f'--model-set {changes}: {error}') from None
