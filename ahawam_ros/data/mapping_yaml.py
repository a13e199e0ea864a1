"""
The YAML form of a `TopicMapping` (see `config/mappings/*.yaml` and `mapping`).

    cameras:                 # policy view name -> image topic, in the policy's view order
      top: /cam_high/camera/color/image_rect_raw
    joint_states:            # topic -> {joint in the message: policy joint}
      /follower_left/joint_states:
        waist: left_waist
        left_finger: {joint: left_gripper, range: [0.01844, 0.05800]}   # closed, open
    commands:                # same form; Float64MultiArray values are keyed by index (0, 1, ..)
      /left_arm_controller/joint_trajectory: {...}
    max_skew: 0.05           # optional; also task, joint_names, image_height, image_width,
                             # camera_topic_pattern (TopicMapping fields)

Every problem raises ValueError naming the file and the field.
"""

from pathlib import Path
import sys
from typing import Any, Callable, Dict, Mapping, Sequence, Tuple, TypeVar, Union

from ahawam_ros.data.mapping import finite_number, JointMap, JointTopic, TopicMapping
import yaml

PathLike = Union[str, Path]
Parsed = TypeVar('Parsed')


def joint_map(source: Any, value: Any) -> JointMap:
    """
    Return the JointMap of a YAML entry `source: value`.

    `value` is a policy joint name, `{joint, scale, offset}`, or `{joint, range: [closed,
    open]}` (range maps closed -> 0 and open -> 1, e.g. a gripper onto 0 .. 1).
    """
    if isinstance(value, str):
        return JointMap(str(source), value)
    if not isinstance(value, dict) or 'joint' not in value:
        raise ValueError(f'{source}: expected a policy joint name or {{joint: ..., scale: '
                         f'..., offset: ...}} / {{joint: ..., range: [closed, open]}}, got '
                         f'{value!r}')
    unknown = sorted(set(value) - {'joint', 'scale', 'offset', 'range'})
    if unknown:
        raise ValueError(f'{source}: unknown key(s) {unknown}; valid: joint, scale, offset, '
                         'range')
    if 'range' not in value:
        return JointMap(str(source), value['joint'], value.get('scale', 1.0),
                        value.get('offset', 0.0))
    if 'scale' in value or 'offset' in value:
        raise ValueError(f'{source}: give range or scale/offset, not both')
    bounds = value['range']
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        raise ValueError(f'{source}.range: {bounds!r} must be [closed, open]')
    closed, opened = (finite_number(f'{source}.range', b) for b in bounds)
    if closed == opened:
        raise ValueError(f'{source}.range: {bounds!r} must be two different numbers')
    return JointMap(str(source), value['joint'], 1.0 / (opened - closed),
                    -closed / (opened - closed))


def joint_groups(group: str, value: Any, make: Callable[[str, Tuple[JointMap, ...]], Any],
                 what: str = 'topic') -> Tuple[Any, ...]:
    """
    Return `make(key, joint maps)` per entry of a YAML group `{key: {source: policy joint}}`.

    The key is a topic (bags) or a feature (datasets: `what` names it in the errors); each
    problem raises ValueError naming the group and the key.
    """
    if not isinstance(value, dict) or not value:
        raise ValueError(f'{group}: expected {what} -> {{source joint: policy joint}}, got '
                         f'{value!r}')
    out = []
    for key, joints in value.items():
        if not isinstance(joints, dict) or not joints:
            raise ValueError(f'{group}[{key!r}]: expected {{source joint: policy joint}}, '
                             f'got {joints!r}')
        try:
            out.append(make(key, tuple(joint_map(source, target)
                                       for source, target in joints.items())))
        except ValueError as error:
            raise ValueError(f'{group}[{key!r}]: {error}') from None
    return tuple(out)


def _joint_topics(group: str, value: Any) -> Tuple[JointTopic, ...]:
    return joint_groups(group, value, JointTopic)


YAML_KEYS = ('cameras', 'joint_states', 'commands', 'joint_names', 'max_skew', 'task',
             'image_height', 'image_width', 'camera_topic_pattern')


def mapping_form(values: Any, keys: Sequence[str], valid: str = 'valid',
                 source: str = 'topic') -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """
    Check what every mapping's YAML has (bags' and datasets'); return cameras and joint_names.

    `values` must be a dict of `keys` with `cameras` (a non-empty view -> `source` dict),
    `joint_states` and `commands`; an optional `joint_names` must be a list. Returns the
    cameras and {'joint_names': tuple} (empty when not given). Problems raise ValueError
    (`valid` labels the list of valid keys in its message).
    """
    if not isinstance(values, dict):
        raise ValueError(f'expected a mapping of {list(keys)}, got {type(values).__name__}')
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise ValueError(f'unknown key(s) {unknown}; {valid}: {list(keys)}')
    missing = [k for k in ('cameras', 'joint_states', 'commands') if k not in values]
    if missing:
        raise ValueError(f'missing key(s) {missing}')
    cameras = values['cameras']
    if not isinstance(cameras, dict) or not cameras:
        raise ValueError(f'cameras: expected view name -> {source}, got {cameras!r}')
    if 'joint_names' not in values:
        return cameras, {}
    if not isinstance(values['joint_names'], list):
        raise ValueError(f'joint_names: {values["joint_names"]!r} must be a list of names')
    return cameras, {'joint_names': tuple(values['joint_names'])}


def mapping_from_dict(values: Mapping[str, Any]) -> TopicMapping:
    """Build a mapping from its YAML form (see `config/mappings/aloha_interbotix.yaml`)."""
    cameras, names = mapping_form(values, YAML_KEYS)
    extra = {k: values[k] for k in YAML_KEYS[3:] if k in values}
    extra.update(names)
    return TopicMapping(cameras=tuple(cameras), camera_topics=tuple(cameras.values()),
                        joint_states=_joint_topics('joint_states', values['joint_states']),
                        commands=_joint_topics('commands', values['commands']), **extra)


def shipped_mappings() -> Dict[str, Path]:
    """Return name -> file of the mappings shipped in config/mappings (source or install)."""
    dirs = [Path(__file__).resolve().parents[2] / 'config' / 'mappings',
            Path(sys.prefix) / 'share' / 'ahawam_ros' / 'config' / 'mappings']
    found: Dict[str, Path] = {}
    for directory in dirs:
        for file in sorted(directory.glob('*.yaml')) if directory.is_dir() else []:
            found.setdefault(file.stem, file)
    return found


def parse_mapping_file(path: PathLike, parse: Callable[[Any], Parsed]) -> Parsed:
    """
    Return `parse` of a YAML mapping file's contents; problems raise ValueError naming the file.

    `path` may also be the name of a shipped mapping (`aloha_interbotix`, `default`, ...).
    """
    path = Path(path)
    if not path.exists() and path.name == str(path):
        path = shipped_mappings().get(path.name, path)
    try:
        values = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ValueError(f'mapping file {path}: cannot read it ({error.strerror}; shipped '
                         f'mappings: {sorted(shipped_mappings())})') from None
    except yaml.YAMLError as error:
        raise ValueError(f'mapping file {path}: not valid YAML ({" ".join(str(error).split())})'
                         ) from None
    try:
        return parse(values)
    except ValueError as error:
        raise ValueError(f'mapping file {path}: {error}') from None


def load_mapping(path: PathLike) -> TopicMapping:
    """
    Read a YAML mapping file; any problem raises ValueError naming the file and field.

    `path` may also be the name of a shipped mapping (`aloha_interbotix`, `default`).
    """
    return parse_mapping_file(path, mapping_from_dict)
