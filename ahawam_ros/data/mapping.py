"""
Topic and joint mapping: which topics of a bag feed which policy camera and joint.

A robot's bags rarely use this package's topic names. A `TopicMapping` says, for one bag
layout:

- `cameras`: policy view name -> image topic, in the policy's view order;
- `joint_states`: one or more topics whose joints, mapped by name (policy joint = scale *
  value + offset, e.g. a gripper in metres or radians onto 0 closed .. 1 open), together
  give every policy joint exactly once;
- `commands`: likewise for the recorded ground-truth command (per-arm controllers).

Joint topics carry `sensor_msgs/JointState` (positions by `name`),
`trajectory_msgs/JointTrajectory` (the first point, by `joint_names`) or
`std_msgs/Float64MultiArray`; the values of a Float64MultiArray are named by their index
(mapping keys '0', '1', ...), or, when the keys are joint names, taken to be in the
mapping's `joint_names` order (what this package's executor publishes on /joint_commands).

Several topics of one group are merged into one vector as `joint_merge` documents: a merged
sample is formed when every topic has sent a message since the previous sample, at the log
time of the message that completes the set, from each topic's newest values; a set whose
oldest value is more than `max_skew` seconds older than that time is dropped.

The default layout (`/cameras/<name>/image_raw`, `/joint_states`, `/joint_commands` or
`/joint_trajectory`) is the mapping `from_features` builds from a `FeatureConfig`, so
every bag is read by one code path. `mapping_yaml.load_mapping` reads the YAML form (see
`config/mappings/aloha_interbotix.yaml`); `MappingOverrides` applies command-line flags.
"""

import dataclasses
import math
import re
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from ahawam_ros.data.features import FeatureConfig, TRAJECTORY_MSG
from ahawam_ros.robot import JOINT_NAMES

_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_]*$')
_TOPIC = re.compile(r'^/[A-Za-z0-9_/]*[A-Za-z0-9_]$')


def _check_topic(where: str, topic: Any) -> None:
    if not isinstance(topic, str) or not _TOPIC.match(topic) or '//' in topic:
        raise ValueError(f'{where}: {topic!r} is not an absolute topic name')


def finite_number(where: str, value: Any) -> float:
    """Return `value` as a float, or raise ValueError naming `where` unless finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise ValueError(f'{where}: {value!r} is not a finite number')
    return float(value)


@dataclasses.dataclass(frozen=True)
class JointMap:
    """
    One value of a joint topic onto one policy joint: `joint = scale * value + offset`.

    Attributes
    ----------
    source : str
        The joint's name in the message, or a Float64MultiArray index ('0', '1', ...).
    joint : str
        The policy joint it feeds.
    scale, offset : float
        Linear unit conversion (scale non-zero).

    """

    source: str
    joint: str
    scale: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        """Validate; a bad field raises ValueError naming it."""
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(f'JointMap.source: {self.source!r} must be a non-empty name')
        if not isinstance(self.joint, str) or not _NAME.match(self.joint):
            raise ValueError(f'JointMap.joint: {self.joint!r} is not a plain name')
        object.__setattr__(self, 'scale', finite_number('JointMap.scale', self.scale))
        object.__setattr__(self, 'offset', finite_number('JointMap.offset', self.offset))
        if self.scale == 0.0:
            raise ValueError(f'JointMap.scale of {self.source!r}: must not be 0')


@dataclasses.dataclass(frozen=True)
class JointTopic:
    """
    A joint topic and the policy joints it carries.

    Attributes
    ----------
    topic : str
        Absolute topic name.
    joints : tuple of JointMap
        Its values that feed policy joints (other joints of the message are ignored).

    """

    topic: str
    joints: Tuple[JointMap, ...]

    def __post_init__(self) -> None:
        """Validate; a bad field raises ValueError naming the topic."""
        _check_topic('JointTopic.topic', self.topic)
        object.__setattr__(self, 'joints', tuple(self.joints))
        if not self.joints or not all(isinstance(j, JointMap) for j in self.joints):
            raise ValueError(f'JointTopic {self.topic!r}: joints must be JointMaps, got '
                             f'{self.joints!r}')
        sources = [j.source for j in self.joints]
        if len(set(sources)) != len(sources):
            raise ValueError(f'JointTopic {self.topic!r}: a source joint is mapped twice '
                             f'({sources})')

    @classmethod
    def identity(cls, topic: str, names: Iterable[str]) -> 'JointTopic':
        """Return a topic whose joints carry the policy joint names themselves."""
        return cls(topic, tuple(JointMap(name, name) for name in names))

    def by_index(self) -> bool:
        """Whether the sources are Float64MultiArray indices ('0', '1', ...)."""
        return all(j.source.isdigit() for j in self.joints)


@dataclasses.dataclass(frozen=True)
class TopicMapping:
    """
    Which topics of a bag feed the policy's cameras and joints (module docstring).

    Attributes
    ----------
    cameras : tuple of str
        Policy view names, in view order (V).
    camera_topics : tuple of str
        The image topic of each view (same order). Where a bag has only
        `<topic>/compressed`, that stands in.
    joint_states, commands : tuple of JointTopic
        Joint-state topics and recorded-command topics; each group covers every joint of
        `joint_names` exactly once.
    joint_names : tuple of str
        The policy's joints (A), in policy order.
    max_skew : float
        Seconds: largest age of a topic's newest value when a merged sample is formed.
    task : str
        Task of bags that record none.
    image_height, image_width : int
        Required size of the recorded frames; 0 accepts any size.
    camera_topic_pattern : str
        Topic of a camera the mapping does not list, `{name}` replaced by its name (the
        default layout's `/cameras/{name}/image_raw`); '' when there is none.

    """

    cameras: Tuple[str, ...]
    camera_topics: Tuple[str, ...]
    joint_states: Tuple[JointTopic, ...]
    commands: Tuple[JointTopic, ...]
    joint_names: Tuple[str, ...] = JOINT_NAMES
    max_skew: float = 0.05
    task: str = 'transfer_cube'
    image_height: int = 0
    image_width: int = 0
    camera_topic_pattern: str = ''

    def __post_init__(self) -> None:
        """Validate every field; a bad one raises ValueError naming it."""
        if self.camera_topic_pattern and '{name}' not in self.camera_topic_pattern:
            raise ValueError(f'mapping camera_topic_pattern: {self.camera_topic_pattern!r} '
                             'lacks {name}')
        for name in ('cameras', 'camera_topics', 'joint_states', 'commands', 'joint_names'):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ('cameras', 'joint_names'):
            names = getattr(self, name)
            if not names or len(set(names)) != len(names) or not all(
                    isinstance(n, str) and _NAME.match(n) for n in names):
                raise ValueError(f'mapping {name}: {names!r} must be distinct plain names')
        if len(self.camera_topics) != len(self.cameras):
            raise ValueError(f'mapping camera_topics: {len(self.camera_topics)} topics for '
                             f'{len(self.cameras)} cameras')
        for name, topic in zip(self.cameras, self.camera_topics):
            _check_topic(f'mapping cameras.{name}', topic)
        for group in ('joint_states', 'commands'):
            self._check_group(group)
        roles = [*self.camera_topics, *(t.topic for t in self.joint_states + self.commands)]
        repeated = sorted({t for t in roles if roles.count(t) > 1})
        if repeated:
            raise ValueError(f'mapping: topic(s) {repeated} have more than one role')
        skew = finite_number('mapping max_skew', self.max_skew)
        if skew <= 0.0:
            raise ValueError(f'mapping max_skew: {self.max_skew!r} must be > 0 s')
        if not isinstance(self.task, str) or not _NAME.match(self.task):
            raise ValueError(f'mapping task: {self.task!r} is not a plain name')
        for name in ('image_height', 'image_width'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not (value == 0 or 8 <= value <= 4096):
                raise ValueError(f'mapping {name}: {value!r} must be 0 (any) or in [8, 4096]')

    def _check_group(self, group: str) -> None:
        topics = getattr(self, group)
        if not topics or not all(isinstance(t, JointTopic) for t in topics):
            raise ValueError(f'mapping {group}: needs at least one joint topic')
        owner: Dict[str, str] = {}
        for topic in topics:
            for joint in topic.joints:
                if joint.joint not in self.joint_names:
                    raise ValueError(f'mapping {group}[{topic.topic!r}].{joint.source}: '
                                     f'{joint.joint!r} is not a policy joint {self.joint_names}')
                if joint.joint in owner:
                    raise ValueError(f'mapping {group}: joint {joint.joint!r} is mapped twice '
                                     f'({owner[joint.joint]!r} and {topic.topic!r})')
                owner[joint.joint] = topic.topic
        missing = [name for name in self.joint_names if name not in owner]
        if missing:
            raise ValueError(f'mapping {group}: no topic maps joint(s) {missing}')

    @property
    def image_shape(self) -> Optional[Tuple[int, int, int]]:
        """(H, W, 3) the frames must have, or None for any size."""
        if self.image_height and self.image_width:
            return (self.image_height, self.image_width, 3)
        return None

    def to_dict(self) -> Dict[str, Any]:
        """Return plain JSON-ready values (for cache keys and reports)."""
        return json_ready(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class MappingOverrides:
    """
    Command-line changes to a mapping (`ahawam eval-bag` flags); validated on construction.

    Attributes
    ----------
    cameras : tuple of str
        'name' (a camera of the mapping, or one the default layout names by its topic
        pattern) or 'name=/topic', in the new view order; empty keeps the mapping's.
    joint_states, commands : tuple of str
        Topics replacing the group; a topic of the mapping keeps its joint map, another one
        must carry the policy joint names themselves. Empty keeps the mapping's.
    max_skew : float, optional
        Replaces the mapping's `max_skew`.

    """

    cameras: Tuple[str, ...] = ()
    joint_states: Tuple[str, ...] = ()
    commands: Tuple[str, ...] = ()
    max_skew: Optional[float] = None

    def __post_init__(self) -> None:
        """Validate every entry; a bad one raises ValueError naming the flag and value."""
        for name in ('cameras', 'joint_states', 'commands'):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for entry in self.cameras:
            name, sep, topic = entry.partition('=')
            if not _NAME.match(name):
                raise ValueError(f'cameras: {entry!r} must be NAME or NAME=/topic')
            if sep:
                _check_topic(f'cameras {name}', topic)
        for name in ('joint_states', 'commands'):
            for topic in getattr(self, name):
                _check_topic(name, topic)
        if self.max_skew is not None and not (math.isfinite(self.max_skew)
                                              and self.max_skew > 0.0):
            raise ValueError(f'max_skew: {self.max_skew!r} must be > 0 s')

    def apply(self, mapping: TopicMapping) -> TopicMapping:
        """Return `mapping` with these changes."""
        changes: Dict[str, Any] = {}
        if self.cameras:
            topics = dict(zip(mapping.cameras, mapping.camera_topics))
            names, chosen = [], []
            for entry in self.cameras:
                name, _, topic = entry.partition('=')
                if not topic and name not in topics and not mapping.camera_topic_pattern:
                    raise ValueError(f'camera {name!r} is not in the mapping (it has '
                                     f'{list(mapping.cameras)}); give {name}=/topic')
                names.append(name)
                chosen.append(topic or topics.get(name)
                              or mapping.camera_topic_pattern.format(name=name))
            changes.update(cameras=tuple(names), camera_topics=tuple(chosen))
        known = {t.topic: t for t in mapping.joint_states + mapping.commands}
        for group in ('joint_states', 'commands'):
            given = getattr(self, group)
            if given:
                changes[group] = tuple(known.get(topic) or JointTopic.identity(
                    topic, mapping.joint_names) for topic in given)
        if self.max_skew is not None:
            changes['max_skew'] = self.max_skew
        return dataclasses.replace(mapping, **changes)


def json_ready(value: Any) -> Any:
    """Return `value` with tuples made lists, recursively."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def from_features(features: FeatureConfig, bag_types: Mapping[str, str]) -> TopicMapping:
    """
    Return the default layout of `features` as a mapping, for a bag of `bag_types`.

    The command is `features.command_topic` if the bag has it, else its
    `trajectory_topic` (JointTrajectory) when the bag has that.
    """
    command = features.command_topic
    if command not in bag_types and bag_types.get(features.trajectory_topic) == TRAJECTORY_MSG:
        command = features.trajectory_topic
    names = features.joint_names
    return TopicMapping(
        cameras=features.cameras, camera_topics=tuple(features.camera_topics().values()),
        joint_states=(JointTopic.identity(features.joint_state_topic, names),),
        commands=(JointTopic.identity(command, names),), joint_names=names, task=features.task,
        image_height=features.image_height, image_width=features.image_width,
        camera_topic_pattern=features.camera_topic_pattern)
