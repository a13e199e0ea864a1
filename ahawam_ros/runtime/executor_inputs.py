"""
The executor's inputs: joint states, frames and planner contexts, checked and kept newest-first.

`ExecutorCore` takes these methods from `ExecutorInputs` (the subscription callbacks' side of
it); the state they touch (`_joints`, `_images`, `_lock`, `_not_before`, the stamp guard, the
joint gate, the context slot, the chunk worker) is the core's, made in its `__init__`. Every
method is thread-safe: the callbacks call them from rclpy's executor threads.

Shapes: V cameras, H x W pixels, A joints.
"""

from typing import NamedTuple, Optional

from ahawam_ros.runtime.context_slot import resolve
from ahawam_ros.runtime.frames import check_frames, IMAGE_SOURCE
import numpy as np

JOINT_SOURCE, CONTEXT_SOURCE = 'joint_states', 'world_context'


class Observation(NamedTuple):
    """A kept input and its stamp (seconds, the core's clock)."""

    value: np.ndarray  # joints (A,) float64, or images (V, H, W, 3) uint8
    stamp: float


class ExecutorInputs:
    """The input side of `ExecutorCore` (module docstring)."""

    def update_joints(self, positions: np.ndarray, stamp: float,
                      source: str = JOINT_SOURCE) -> bool:
        """
        Store the newest joint state, float (A,); False if rejected and counted.

        Rejected: bad shape, NaN, a position further than `max_joint_excess` outside the
        limits (`JointGate`: counted as 'joint_states_out_of_range', logged once per joint),
        a stamp refused by `self.stamps` (counted per cause under `source`, the topic), or
        older than the joint state held.
        """
        positions = self.joint_gate.admit(positions, source, self._safety, self.config.safety,
                                          self.config.max_joint_excess)
        if positions is None:
            return False
        verdict = self.stamps.check(source, stamp, self.clock())
        if not (verdict.accepted and
                self._store('_joints', Observation(positions.copy(), verdict.stamp))):
            self.joint_gate.rejected += 1
            return False
        return True

    def update_images(self, images: np.ndarray, stamp: float, source: str = IMAGE_SOURCE) -> bool:
        """
        Store the newest frames, uint8 (V, H, W, 3) by reference.

        Returns False (and keeps the frames it has) when the stamp is refused by `self.stamps`,
        or older than the frames held or than the start of the episode after a `reset`.
        """
        check_frames(images)
        verdict = self.stamps.check(source, stamp, self.clock(), reoffer=True)
        return verdict.accepted and self._store('_images', Observation(images, verdict.stamp))

    def check_camera_stamp(self, topic: str, stamp: float) -> Optional[float]:
        """Check one camera frame's stamp on arrival; the stamp to keep, or None if refused."""
        verdict = self.stamps.check(topic, stamp, self.clock(), camera=True)
        return verdict.stamp if verdict.accepted else None

    def accept_context(self, handle: str, source: str = CONTEXT_SOURCE) -> bool:
        """Resolve a context handle from a message and install it if newer (may raise)."""
        snapshot = resolve(handle)
        if self.slot.latest() is snapshot:
            return False  # delivered in-process already; this is its descriptor on the topic
        if not self.stamps.check(source, snapshot.obs_stamp, self.clock()).accepted:
            return False  # a planner on another clock (use_sim_time set on one node only)
        installed = self.slot.offer(snapshot)
        if installed:
            self._worker.wake()
        return installed

    def _store(self, name: str, observation: Observation) -> bool:
        with self._lock:
            current = getattr(self, name)
            if observation.stamp < self._not_before:
                return False  # taken before the episode started (a reset raced with it)
            if current is not None and observation.stamp < current.stamp:
                return False
            newer = current is None or observation.stamp > current.stamp
            setattr(self, name, observation)
        if newer:  # a re-offered observation is nothing new to compute from
            self._worker.wake()
        return True
