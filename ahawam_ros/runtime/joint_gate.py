"""
Joint states a robot can be in: what the executor refuses before it keeps one.

A joint state is refused, and counted, when its shape is not (A,), a value is not finite, or a
position lies more than `max_joint_excess` outside its joint's limits: no arm can be there, so
it is a sensor, driver or mapping fault, logged once per joint and held like NaN (the command
holds once the last good joint state goes stale). The stamp checks and the store follow in
`ExecutorCore.update_joints`, which counts their refusals here as well.

Shapes: A joints.
"""

import logging
from typing import Optional, Set

from ahawam_ros.runtime.safety import SafetyConfig, SafetyFilter
import numpy as np

_LOG = logging.getLogger(__name__)


class JointGate:
    """
    The shape, finiteness and limit checks of incoming joint states, with their counters.

    Attributes
    ----------
    rejected : int
        Joint states refused for any cause (here or by the caller's stamp and store checks).
    out_of_range : int
        Of them, those with an impossible position.

    """

    def __init__(self, action_dim: int):
        self.action_dim = action_dim
        self.rejected = 0
        self.out_of_range = 0
        self._logged: Set[int] = set()

    def admit(self, positions: np.ndarray, source: str, safety: SafetyFilter,
              limits: SafetyConfig, excess: float) -> Optional[np.ndarray]:
        """Return `positions` as float64 (A,) if possible, else None (counted, logged once)."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (self.action_dim,) or not np.all(np.isfinite(positions)):
            self.rejected += 1
            return None
        index = safety.impossible_joint(positions, excess)
        if index is None:
            return positions
        self.rejected += 1
        self.out_of_range += 1
        if index not in self._logged:
            self._logged.add(index)
            _LOG.warning('refused %s: joint %d at %.4g is more than %g outside its limits '
                         '[%g, %g] (impossible; held like NaN)', source, index, positions[index],
                         excess, limits.lower[index], limits.upper[index])
        return None
