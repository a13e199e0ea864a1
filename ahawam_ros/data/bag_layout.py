"""
A `TopicMapping` resolved against one open bag: each topic's role, type and decoder.

Training (`bag_reader`) and `ahawam eval-bag` (`eval.bag_stream`) both read a bag through a
`BagLayout`: the mapping is the one given, else the default layout of the bag's recorded
FeatureConfig (or of the given one). Opening checks that every mapped topic is there with a
usable type and messages (`BagError` naming the bag, the topic and what was expected), before
anything is decoded. `decode` turns one raw message into a camera frame or a partial joint
vector; `JointMerger`s (see `joint_merge`) make full vectors; `check_counts` proves that no
message was skipped.

Shapes: H x W pixels, A joints, J joints of one topic.
"""

from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple, Union

from ahawam_ros import robot
from ahawam_ros.data.bag_files import bag_custom_metadata, BagError, check_counts
from ahawam_ros.data.bag_files import check_topics, read_messages, resolve_camera_topics
from ahawam_ros.data.camera_images import decode_camera
from ahawam_ros.data.features import CAMERA_MSGS, COMMAND_MSG, FeatureConfig
from ahawam_ros.data.features import JOINT_STATE_MSG, TRAJECTORY_MSG
from ahawam_ros.data.joint_merge import JointDecoder, JointMerger
from ahawam_ros.data.mapping import from_features, MappingOverrides, TopicMapping
from ahawam_ros.data.typestore import ahawam_typestore
import cv2
import numpy as np
from rosbags.rosbag2 import Reader

CAMERA, STATE, COMMAND = 'camera', 'state', 'command'  # topic roles
Layout = Union[FeatureConfig, TopicMapping, None]
# the types a joint topic may carry, the usual one of its role first
STATE_MSGS = (JOINT_STATE_MSG, TRAJECTORY_MSG, COMMAND_MSG)
COMMAND_MSGS = (COMMAND_MSG, TRAJECTORY_MSG, JOINT_STATE_MSG)
# How far past the policy's joint limits (rad, or gripper units) a recorded value may lie
# before the bag is warned of: the scripted demonstrations' grippers open to about 1.05 of
# their 0 .. 1, while a wrong scale or offset in a mapping lands far further off.
RANGE_TOLERANCE = 0.1


def recorded_features(custom: Dict[str, Any], features: Optional[FeatureConfig] = None
                      ) -> FeatureConfig:
    """Return `features`, else the bag's recorded FeatureConfig (`custom`), else the default."""
    if features is not None:
        return features
    recorded = custom.get('features')
    if not recorded:
        return FeatureConfig()
    # A bag recorded by another version may carry fields this FeatureConfig lacks.
    known = set(FeatureConfig.__dataclass_fields__)
    return FeatureConfig.from_dict({k: v for k, v in recorded.items() if k in known})


class BagLayout:
    """
    The topics of an open bag that feed the policy, checked, with their decoders.

    Parameters
    ----------
    reader : rosbags Reader
        The open bag.
    path : Path
        Its path (for messages).
    layout : TopicMapping or FeatureConfig, optional
        A mapping; or a FeatureConfig whose default layout is used (the bag's recorded one
        when None).
    resize_to : (int, int), optional
        (H, W) every frame is resized to as it is decoded (cv2 INTER_AREA); otherwise frames
        must have the mapping's image size, when it sets one.
    overrides : MappingOverrides, optional
        Command-line changes applied to the mapping.
    check_size : bool
        Refuse frames of another size than the mapping's (if it sets one); the evaluator,
        which checks frames against the policy instead, passes False.

    Attributes
    ----------
    mapping : TopicMapping
        The mapping in use.
    camera_topics : tuple of str
        The bag's topic of each view (the `.../compressed` sibling where only that exists).
    task : str
        The bag's recorded task, else the mapping's.
    roles : dict
        topic -> (role, index in its group) for every mapped topic.
    connections : list
        The rosbags connections to read.

    """

    def __init__(self, reader: Reader, path: Path, layout: Layout = None,
                 resize_to: Optional[Tuple[int, int]] = None,
                 overrides: Optional[MappingOverrides] = None, check_size: bool = True):
        self.path = Path(path)
        self._check_size = check_size
        custom = bag_custom_metadata(reader)
        types = {topic: info.msgtype for topic, info in reader.topics.items()}
        mapping = layout if isinstance(layout, TopicMapping) else from_features(
            recorded_features(custom, layout), types)
        if overrides is not None:
            mapping = overrides.apply(mapping)
        self.mapping = mapping
        self.task = str(custom.get('task', mapping.task))
        self._resize_to = resize_to
        self.camera_topics = resolve_camera_topics(reader, mapping.camera_topics)
        self._check_command_topics(types)
        expected = {topic: CAMERA_MSGS for topic in self.camera_topics}
        expected.update({t.topic: STATE_MSGS for t in mapping.joint_states})
        expected.update({t.topic: COMMAND_MSGS for t in mapping.commands})
        connections = check_topics(reader, self.path, expected)
        self.connections = [c for conns in connections.values() for c in conns]
        self.counts = {topic: reader.topics[topic].msgcount for topic in expected}
        self.roles: Dict[str, Tuple[str, int]] = {
            topic: (CAMERA, i) for i, topic in enumerate(self.camera_topics)}
        self._decoders: Dict[str, JointDecoder] = {}
        for role, group in ((STATE, mapping.joint_states), (COMMAND, mapping.commands)):
            for i, topic in enumerate(group):
                self.roles[topic.topic] = (role, i)
                self._decoders[topic.topic] = JointDecoder(topic, types[topic.topic],
                                                           mapping.joint_names)
        self._store = ahawam_typestore()

    def _check_command_topics(self, types: Dict[str, str]) -> None:
        topics = [t.topic for t in self.mapping.commands]
        if not any(topic in types for topic in topics):
            lacks = ' and '.join(repr(t) for t in topics)
            raise BagError(f'bag {self.path} has no command topic: it lacks {lacks}; it has '
                           f'{sorted(types)} (name another with --command-topic or a mapping)')

    def mergers(self) -> Dict[str, JointMerger]:
        """Return a fresh JointMerger per joint role (STATE, COMMAND)."""
        skew = int(round(self.mapping.max_skew * 1e9))
        joints = len(self.mapping.joint_names)
        limits = None  # the policy's joints are the arms': their limits are known
        if tuple(self.mapping.joint_names) == robot.JOINT_NAMES:
            limits = (np.asarray(robot.JOINT_LOWER) - RANGE_TOLERANCE,
                      np.asarray(robot.JOINT_UPPER) + RANGE_TOLERANCE)
        return {STATE: JointMerger(len(self.mapping.joint_states), joints, skew, limits),
                COMMAND: JointMerger(len(self.mapping.commands), joints, skew, limits)}

    def decode(self, topic: str, msgtype: str, raw: bytes) -> Any:
        """
        Decode one raw message of a mapped topic.

        Returns
        -------
        numpy.ndarray or tuple
            CAMERA: uint8 (H, W, 3) RGB; STATE, COMMAND: (int64 (J,) policy joint indices,
            float64 (J,) values).

        Raises
        ------
        ValueError
            A message that does not decode or does not fit the mapping.

        """
        msg = self._store.deserialize_cdr(raw, msgtype)
        if self.roles[topic][0] != CAMERA:
            return self._decoders[topic](msg)
        rgb = decode_camera(msg, msgtype)  # (H, W, 3)
        if self._resize_to is not None:
            height, width = self._resize_to
            if rgb.shape[:2] != (height, width):
                rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
            return rgb
        shape = self.mapping.image_shape
        if self._check_size and shape is not None and rgb.shape != shape:
            raise ValueError(f'image of {rgb.shape[0]}x{rgb.shape[1]}, expected {shape[0]}x'
                             f'{shape[1]} (the FeatureConfig image size)')
        return np.ascontiguousarray(rgb)

    def read(self, reader: Reader, start_ns: int = 0) -> Iterator[Tuple[int, str, int, Any]]:
        """
        Yield (log time ns, role, index in its group, `decode`d value) of every mapped message.

        Raises
        ------
        BagError
            A truncated or corrupt bag, a message that does not decode (named with its topic
            and its log time in s after `start_ns`) and, once all is read, fewer messages than
            the bag records.

        """
        read = dict.fromkeys(self.roles, 0)
        for conn, stamp, raw in read_messages(reader, self.path, self.connections):
            role, index = self.roles[conn.topic]
            try:
                value = self.decode(conn.topic, conn.msgtype, raw)
            except Exception as exc:  # noqa: B902 - any decoding failure is a bad message
                raise BagError(f'bag {self.path}: bad message on {conn.topic!r} at '
                               f'{(int(stamp) - start_ns) * 1e-9:.3f} s: {exc}') from exc
            read[conn.topic] += 1
            yield int(stamp), role, index, value
        self.check_counts(read)

    def check_counts(self, read: Dict[str, int]) -> None:
        """Raise BagError naming every mapped topic of which messages were not read."""
        check_counts(self.path, self.counts, read)

    def merge_problems(self, mergers: Dict[str, JointMerger]) -> str:
        """Return a note on samples dropped for skew or outside the limits ('' when none)."""
        notes = []
        for role, group in ((STATE, self.mapping.joint_states), (COMMAND, self.mapping.commands)):
            if mergers[role].dropped:
                notes.append(f'{mergers[role].dropped} samples of {[t.topic for t in group]}')
        lines = []
        if notes:
            lines.append(f'bag {self.path}: dropped {" and ".join(notes)}: a topic\'s newest '
                         f'value was more than max_skew {self.mapping.max_skew} s old')
        lines += [self._range_note(role, mergers[role]) for role in (STATE, COMMAND)
                  if mergers[role].out_of_range]
        return '; '.join(lines)

    def _range_note(self, role: str, merger: JointMerger) -> str:
        index, value = merger.worst
        name = self.mapping.joint_names[index]
        return (f'bag {self.path}: {merger.out_of_range} {role} samples lie outside the '
                f"policy's joint limits by more than {RANGE_TOLERANCE:g} (worst: {name} at "
                f'{value:.4g}, limits [{robot.JOINT_LOWER[index]:g}, '
                f"{robot.JOINT_UPPER[index]:g}]): check the mapping's scale, offset or range")
