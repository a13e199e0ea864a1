"""
Joint values from mapped topics, and several topics merged into one policy vector.

`JointDecoder` turns one message of a mapped joint topic (`sensor_msgs/JointState`,
`trajectory_msgs/JointTrajectory` or `std_msgs/Float64MultiArray`, see `mapping`) into the
policy joints it carries, unit-converted. `JointMerger` combines the topics of one group
(per-arm joint states, per-arm commands) into full (A,) vectors:

- a merged sample is formed when every topic of the group has sent a message since the
  previous sample (a *round*), at the log time of the message that completes the round
  (the latest-arriving topic of that round), from each topic's newest values;
- the round is dropped (and counted) when a topic's newest value is more than `max_skew`
  older than that time: the arms would be mixed from different moments.

With one topic every message is a sample. Per-arm topics at one rate give one sample per
period, at the later arm's message; a slower topic paces the group.

Shapes: A policy joints.
"""

import math
from typing import Any, List, Optional, Sequence, Tuple

from ahawam_ros.data.features import COMMAND_MSG, JOINT_STATE_MSG, TRAJECTORY_MSG
from ahawam_ros.data.mapping import JointTopic
import numpy as np

JOINT_MSGS = (JOINT_STATE_MSG, TRAJECTORY_MSG, COMMAND_MSG)  # what a joint topic may carry


class JointDecoder:
    """
    Decode one joint topic's messages of type `msgtype` to (policy indices, values).

    Parameters
    ----------
    topic : JointTopic
        The topic and its joint map.
    msgtype : str
        One of JOINT_MSGS (the bag's type of the topic).
    joint_names : tuple of str
        The policy's joints.

    """

    def __init__(self, topic: JointTopic, msgtype: str, joint_names: Sequence[str]):
        if msgtype not in JOINT_MSGS:
            raise ValueError(f'{topic.topic!r} has type {msgtype}, expected one of {JOINT_MSGS}')
        self.topic, self.msgtype = topic, msgtype
        self.targets = np.array([joint_names.index(j.joint) for j in topic.joints], np.int64)
        self.scale = np.array([j.scale for j in topic.joints], np.float64)
        self.offset = np.array([j.offset for j in topic.joints], np.float64)
        self._policy_order = tuple(joint_names)

    def __call__(self, msg: Any) -> Tuple[np.ndarray, np.ndarray]:
        """Return (int64 (J,) policy joint indices, float64 (J,) finite values) of `msg`."""
        names, values, what = self._named_values(msg)
        if len(values) != len(names):
            raise ValueError(f'{what} has {len(names)} names but {len(values)} positions')
        index = {name: i for i, name in enumerate(names)}
        missing = [j for j in self.topic.joints if j.source not in index]
        if missing:
            wanted = ', '.join(f'{j.source!r} (mapped to {j.joint})' for j in missing)
            raise ValueError(f'{what} lacks joint(s) {wanted}; it has {list(names)}')
        raw = np.asarray(values, np.float64)[[index[j.source] for j in self.topic.joints]]
        out = self.scale * raw + self.offset
        if not np.all(np.isfinite(out)):
            bad = [j.source for j, v in zip(self.topic.joints, out) if not math.isfinite(v)]
            raise ValueError(f'{what} has non-finite values for {bad}')
        return self.targets, out

    def _named_values(self, msg: Any) -> Tuple[Sequence[str], Sequence[float], str]:
        if self.msgtype == JOINT_STATE_MSG:
            return list(msg.name), msg.position, 'joint state'
        if self.msgtype == TRAJECTORY_MSG:
            if not msg.points:
                raise ValueError('trajectory has no points')
            return list(msg.joint_names), msg.points[0].positions, 'trajectory'
        data = msg.data
        if self.topic.by_index():
            return [str(i) for i in range(len(data))], data, 'command'
        if len(data) != len(self._policy_order):
            raise ValueError(f'command has {len(data)} values, expected {len(self._policy_order)}'
                             ' joints (the policy order; map data indices 0, 1, ... otherwise)')
        return self._policy_order, data, 'command'


class JointMerger:
    """
    Merge the partial vectors of a group of topics into full (A,) samples (module docstring).

    Parameters
    ----------
    num_topics : int
        Topics in the group (indexed 0 .. num_topics - 1).
    num_joints : int
        A.
    max_skew_ns : int
        Largest age (ns) of a topic's newest value when a sample is formed.
    limits : (np.ndarray, np.ndarray), optional
        (A,) lower and upper joint limits of the policy: samples outside are counted.

    Attributes
    ----------
    dropped : int
        Rounds dropped for skew.
    max_seen_skew_ns : int
        Largest skew of any formed sample.
    out_of_range : int
        Formed samples with a value outside `limits`.
    worst : (int, float) or None
        (joint index, value) of the value furthest outside the limits.

    """

    def __init__(self, num_topics: int, num_joints: int, max_skew_ns: int,
                 limits: Optional[Tuple[np.ndarray, np.ndarray]] = None):
        self._limits = limits
        self.out_of_range = 0
        self.worst: Optional[Tuple[int, float]] = None
        self._worst_excess = 0.0
        self._values = np.zeros(num_joints, np.float64)
        self._times: List[Optional[int]] = [None] * num_topics
        self._fresh = [False] * num_topics
        self.max_skew_ns = int(max_skew_ns)
        self.dropped = 0
        self.max_seen_skew_ns = 0

    def push(self, topic: int, stamp_ns: int, indices: np.ndarray,
             values: np.ndarray) -> Optional[np.ndarray]:
        """Store a topic's values at `stamp_ns`; return the (A,) sample this completes, if any."""
        self._values[indices] = values
        self._times[topic] = stamp_ns
        self._fresh[topic] = True
        if not all(self._fresh):
            return None
        self._fresh = [False] * len(self._fresh)
        skew = stamp_ns - min(self._times)
        if skew > self.max_skew_ns:
            self.dropped += 1
            return None
        self.max_seen_skew_ns = max(self.max_seen_skew_ns, skew)
        if self._limits is not None:
            self._check_range(self._values)
        return self._values.copy()

    def _check_range(self, sample: np.ndarray) -> None:
        lower, upper = self._limits
        excess = np.maximum(lower - sample, sample - upper)  # (A,) > 0 outside
        index = int(np.argmax(excess))
        if excess[index] > 0.0:
            self.out_of_range += 1
            if excess[index] > self._worst_excess:
                self._worst_excess = float(excess[index])
                self.worst = (index, float(sample[index]))
