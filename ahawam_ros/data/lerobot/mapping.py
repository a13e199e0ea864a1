"""
Which features of a LeRobot dataset feed the policy's views and joints.

The YAML form is the bag mapping's (`data/mapping_yaml`), with feature keys in place of
topics (see `config/mappings/lerobot_aloha.yaml`):

    task: transfer_cube          # policy task of the dataset tasks `tasks` does not list
    tasks:                       # optional: the dataset's task string -> policy task
      Transfer the cube to the other arm.: transfer_cube
    cameras:                     # policy view -> video feature, in the policy's view order
      top: observation.images.cam_high
    joint_states:                # vector feature -> {value name or index: policy joint}
      observation.state:
        left_waist: left_waist
        left_gripper: {joint: left_gripper, range: [0.0, 1.0]}
    commands:                    # the recorded command, same form
      action: {...}
    joint_names: [...]           # optional: the policy's joints (default: the robot's 14)

A vector's values are named by the feature's `names` in info.json, or by index ('0', '1',
...). Together the features of a group give every policy joint exactly once.

Without a mapping file (`default_mapping`) a dataset is read as this package writes one:
every video or image feature `observation.images.<view>` is view <view>,
`observation.state` and `action` carry the policy joints under their own names, a task string
that is a policy task name is that task.
"""

from dataclasses import dataclass, field
import re
from typing import Any, Dict, List, Optional, Tuple, Union

from ahawam_ros.data.lerobot.meta import DatasetError, DatasetIndex
from ahawam_ros.data.mapping import JointMap, TopicMapping
from ahawam_ros.data.mapping_yaml import joint_groups, mapping_form, parse_mapping_file, PathLike
from ahawam_ros.data.mapping_yaml import mapping_from_dict as bag_mapping_from_dict
from ahawam_ros.robot import JOINT_NAMES
import numpy as np

STATE_FEATURE, ACTION_FEATURE = 'observation.state', 'action'
IMAGE_PREFIX = 'observation.images.'
YAML_KEYS = ('cameras', 'joint_states', 'commands', 'joint_names', 'task', 'tasks')
_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_]*$')


@dataclass(frozen=True)
class VectorSource:
    """A vector feature and the policy joints its values feed (`joint = scale*v + offset`)."""

    feature: str
    joints: Tuple[JointMap, ...]


@dataclass(frozen=True)
class DatasetMapping:
    """
    Features -> policy views and joints (module docstring).

    Attributes
    ----------
    cameras : tuple of str
        Policy view names, in view order (V).
    camera_features : tuple of str
        The video feature of each view.
    joint_states, commands : tuple of VectorSource
        Features giving the measured joints and the recorded command.
    joint_names : tuple of str
        The policy joints (A), in order.
    task : str, optional
        Policy task of dataset tasks not in `tasks`.
    tasks : dict
        Dataset task string -> policy task.

    """

    cameras: Tuple[str, ...]
    camera_features: Tuple[str, ...]
    joint_states: Tuple[VectorSource, ...]
    commands: Tuple[VectorSource, ...]
    joint_names: Tuple[str, ...] = JOINT_NAMES
    task: Optional[str] = None
    tasks: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate; a bad field raises ValueError naming it."""
        if not self.cameras or len(self.cameras) != len(self.camera_features):
            raise ValueError(f'cameras: {self.cameras!r} and features {self.camera_features!r}'
                             ' must pair up')
        for name in (*self.cameras, *self.joint_names, *self.tasks.values(),
                     *([self.task] if self.task else [])):
            if not isinstance(name, str) or not _NAME.match(name):
                raise ValueError(f'{name!r} is not a plain name (views, joints, tasks)')
        for group in ('joint_states', 'commands'):
            owners = [j.joint for source in getattr(self, group) for j in source.joints]
            wrong = sorted(set(owners) - set(self.joint_names))
            twice = sorted({j for j in owners if owners.count(j) > 1})
            missing = [j for j in self.joint_names if j not in owners]
            if wrong or twice or missing:
                raise ValueError(f'{group}: every policy joint exactly once: unknown {wrong}, '
                                 f'twice {twice}, missing {missing}')

    def to_dict(self) -> Dict[str, Any]:
        """Return a JSON-ready description (the cache key's)."""
        def group(sources: Tuple[VectorSource, ...]) -> Dict[str, List[list]]:
            return {s.feature: [[j.source, j.joint, j.scale, j.offset] for j in s.joints]
                    for s in sources}
        return {'cameras': dict(zip(self.cameras, self.camera_features)),
                'joint_states': group(self.joint_states), 'commands': group(self.commands),
                'joint_names': list(self.joint_names), 'task': self.task, 'tasks': self.tasks}

    def policy_task(self, text: str) -> Optional[str]:
        """Return the policy task of a dataset task string, else None (not mapped)."""
        if text in self.tasks:
            return self.tasks[text]
        if self.task:
            return self.task
        return text if _NAME.match(text) else None


def _sources(group: str, value: Any) -> Tuple[VectorSource, ...]:
    return joint_groups(group, value, lambda key, joints: VectorSource(str(key), joints),
                        'feature')


def mapping_from_dict(values: Any) -> DatasetMapping:
    """Build a DatasetMapping from its YAML form (module docstring)."""
    cameras, names = mapping_form(values, YAML_KEYS, 'valid for a dataset', 'video feature')
    tasks = values.get('tasks') or {}
    if any(str(v).startswith('/') for v in cameras.values()):
        raise ValueError('cameras: a topic where a dataset feature is expected: this is a bag '
                         'mapping (for bags, not LeRobot datasets)')
    if not isinstance(tasks, dict):
        raise ValueError(f'tasks: expected dataset task -> policy task, got {tasks!r}')
    return DatasetMapping(tuple(cameras), tuple(str(v) for v in cameras.values()),
                          _sources('joint_states', values['joint_states']),
                          _sources('commands', values['commands']),
                          task=values.get('task'), tasks={str(k): v for k, v in tasks.items()},
                          **names)


def load_dataset_mapping(path: PathLike) -> DatasetMapping:
    """Read a dataset mapping file (or a shipped one by name); errors name the file."""
    return parse_mapping_file(path, mapping_from_dict)


def default_mapping(index: DatasetIndex) -> DatasetMapping:
    """Return the mapping of a dataset laid out as `writer` writes one (module docstring)."""
    views = [key for key in index.image_keys if key.startswith(IMAGE_PREFIX)]
    if not views:
        raise DatasetError(f'dataset {index.root}: no video feature named {IMAGE_PREFIX}<view>;'
                           ' give a mapping (--mapping, see config/mappings/lerobot_aloha.yaml)')
    groups = []
    for key in (STATE_FEATURE, ACTION_FEATURE):
        feature = index.features.get(key)
        if feature is None or feature.names is None:
            raise DatasetError(f'dataset {index.root}: meta/info.json: no feature {key!r} with '
                               'value names; give a mapping (--mapping)')
        groups.append(feature.names)
    if groups[0] != groups[1]:
        raise DatasetError(f'dataset {index.root}: meta/info.json: {STATE_FEATURE} and '
                           f'{ACTION_FEATURE} name different joints; give a mapping (--mapping)')
    state, action = (VectorSource(key, tuple(JointMap(n, n) for n in groups[0]))
                     for key in (STATE_FEATURE, ACTION_FEATURE))
    try:
        return DatasetMapping(tuple(v[len(IMAGE_PREFIX):] for v in views), tuple(views),
                              (state,), (action,), joint_names=groups[0])
    except ValueError as error:
        raise DatasetError(f'dataset {index.root}: meta/info.json: {error}; give a mapping '
                           '(--mapping)') from None


def value_columns(index: DatasetIndex, source: VectorSource, where: str
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Return where each mapped value sits in its feature: (columns, scales, offsets).

    Raises DatasetError naming `where` for a feature the dataset lacks or a value name that
    is neither one of the feature's names nor an index within its size.
    """
    feature = index.features.get(source.feature)
    if feature is None:
        raise DatasetError(f'{where}: the mapping reads feature {source.feature!r}, the '
                           f'dataset has {sorted(index.features)}')
    size = int(np.prod(feature.shape))
    names = feature.names or ()
    columns = []
    for joint in source.joints:
        if joint.source in names:
            columns.append(names.index(joint.source))
        elif joint.source.isdigit() and int(joint.source) < size:
            columns.append(int(joint.source))
        else:
            raise DatasetError(f'{where}: feature {source.feature!r} has no value '
                               f'{joint.source!r} (names {list(names)}, or an index < {size})')
    return (np.asarray(columns), np.asarray([j.scale for j in source.joints]),
            np.asarray([j.offset for j in source.joints]))


def is_dataset_mapping(values: Any) -> bool:
    """Whether parsed mapping YAML is the dataset form (its cameras are not topics)."""
    cameras = values.get('cameras') if isinstance(values, dict) else None
    return isinstance(cameras, dict) and bool(cameras) and \
        not any(str(v).startswith('/') for v in cameras.values())


def any_mapping_from_dict(values: Any) -> Union[TopicMapping, DatasetMapping]:
    """Build the TopicMapping (bags) or the DatasetMapping (datasets) of a mapping's YAML."""
    if is_dataset_mapping(values):
        return mapping_from_dict(values)
    return bag_mapping_from_dict(values)


def load_any_mapping(path: PathLike) -> Union[TopicMapping, DatasetMapping]:
    """Return the TopicMapping (bags) or DatasetMapping (datasets) a mapping file holds."""
    return parse_mapping_file(path, any_mapping_from_dict)
