"""
Stream the inputs and recorded commands of one bag (mcap or sqlite3) in log-time order.

The evaluator replays a bag as the nodes lived it: camera frames and joint states arrive at
their log times, one message at a time, so a long bag never has to fit in memory. Which topics
feed which camera and joint comes from a `TopicMapping` (data/mapping), or from the default
layout of a `FeatureConfig` (`/cameras/<name>/image_raw`, `/joint_states`, and the recorded
command on `/joint_commands`, else the first point of each `/joint_trajectory` message).
Several joint-state or command topics (per-arm topics of a real robot) are merged into full
vectors as `data/joint_merge` documents: a JOINTS or COMMAND message is yielded when every
topic of its group has spoken since the previous one. A camera topic carries raw
`sensor_msgs/Image` (rgb8/bgr8) or `sensor_msgs/CompressedImage` (jpeg/png), of any size (the
replay checks or resizes it). Topics and types are checked when the bag is opened (a missing
topic, a wrong type or an empty topic raises `BagError` naming the bag, the topic and what was
expected, before any replay starts); a joint missing from a message, an undecodable message,
and fewer messages read than the bag records raise `BagError` during the replay.

Shapes: H x W pixels, A joints.
"""

import logging
from pathlib import Path
from typing import Any, Dict, Iterator, NamedTuple, Optional

from ahawam_ros.data.bag_files import open_bag
from ahawam_ros.data.bag_layout import BagLayout, CAMERA, Layout, STATE
from ahawam_ros.data.mapping import MappingOverrides, TopicMapping
import numpy as np

IMAGE = 'image'
JOINTS = 'joints'
COMMAND = 'command'
LOG = logging.getLogger(__name__)


class BagMessage(NamedTuple):
    """One decoded message: what it is, when it was logged and its value."""

    kind: str  # IMAGE, JOINTS or COMMAND
    stamp_ns: int  # log time relative to the bag's first message
    camera: int  # view index for IMAGE, else -1
    value: np.ndarray  # IMAGE: uint8 (H, W, 3) RGB; JOINTS, COMMAND: float64 (A,)


class BagSource:
    """
    An open, validated bag; iterate `messages()` once, then `close()` (or use `with`).

    Parameters
    ----------
    path : Path
        A rosbag2 directory or a bare .mcap file.
    layout : TopicMapping or FeatureConfig, optional
        The topic mapping; or a FeatureConfig whose default layout is used (the bag's
        recorded one when None).
    overrides : MappingOverrides, optional
        Command-line changes to the mapping (cameras, topics, max_skew).

    Attributes
    ----------
    mapping : TopicMapping
        The mapping in use (cameras in view order, joint names).
    camera_topics : tuple of str
        The bag's topic of each camera, in view order: the mapped one, or its
        `.../compressed` sibling when only that was recorded.
    task : str
        The bag's recorded task, else the mapping's.
    duration_ns : int
        Log time of the last message relative to the first.
    merge : dict
        After `messages` ran out, per joint role ('state', 'command'): 'dropped' samples
        (skew), 'max_skew_ms' of the kept ones, 'out_of_range' samples (outside the limits).

    """

    def __init__(self, path: Path, layout: Layout = None,
                 overrides: Optional[MappingOverrides] = None):
        self.path = Path(path)
        self._reader = open_bag(self.path)
        try:
            self._layout = BagLayout(self._reader, self.path, layout, overrides=overrides,
                                     check_size=False)  # the replay checks the policy's size
        except BaseException:
            self._reader.close()
            raise
        self.mapping: TopicMapping = self._layout.mapping
        self.camera_topics = self._layout.camera_topics
        self.task = self._layout.task
        self.start_ns = int(self._reader.start_time)
        self.duration_ns = max(0, int(self._reader.end_time) - 1 - self.start_ns)
        self.merge: Dict[str, Dict[str, float]] = {}

    def inputs(self) -> Dict[str, object]:
        """Return the resolved topics of every input and the merge figures (the report's)."""
        return {'cameras': dict(zip(self.mapping.cameras, self.camera_topics)),
                'joint_states': [t.topic for t in self.mapping.joint_states],
                'commands': [t.topic for t in self.mapping.commands],
                'max_skew_s': self.mapping.max_skew, 'merge': self.merge}

    @property
    def features(self) -> TopicMapping:
        """Return the mapping (it has the `cameras` and `joint_names` the replay reads)."""
        return self.mapping

    def messages(self) -> Iterator[BagMessage]:
        """
        Yield every camera frame, merged joint state and merged command in log-time order.

        Raises
        ------
        BagError
            A truncated or corrupt bag, a message that does not decode (named with its topic
            and log time), or fewer messages than the bag records (at the end).

        """
        layout = self._layout
        mergers = layout.mergers()
        last = 0
        for stamp, role, index, value in layout.read(self._reader, self.start_ns):
            last = max(last, stamp - self.start_ns)  # never back in time
            if role == CAMERA:
                yield BagMessage(IMAGE, last, index, value)
                continue
            sample = mergers[role].push(index, last, *value)
            if sample is not None:
                yield BagMessage(JOINTS if role == STATE else COMMAND, last, -1, sample)
        self.merge = {role: {'dropped': m.dropped, 'max_skew_ms': m.max_seen_skew_ns * 1e-6,
                             'out_of_range': m.out_of_range} for role, m in mergers.items()}
        note = layout.merge_problems(mergers)
        if note:
            LOG.warning(note)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> 'BagSource':
        return self

    def __exit__(self, *exc_info: Optional[Any]) -> None:
        self.close()
