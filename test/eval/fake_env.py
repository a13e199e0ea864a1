"""A stand-in simulator for the closed-loop tests (imported by the test modules)."""

from types import SimpleNamespace

import numpy as np


class FakeEnv:
    """Joints follow each command exactly; one 8 x 8 camera; succeeds at `succeed_at`."""

    def __init__(self, succeed_at: int = -1):
        self.succeed_at = succeed_at
        self.qpos, self.steps = np.zeros(14), 0

    def reset(self, seed):
        self.qpos, self.steps = np.zeros(14), 0
        return self._observe()

    def step(self, action):
        self.qpos, self.steps = np.asarray(action, np.float64), self.steps + 1
        return self._observe()

    def _observe(self):
        success = 0 <= self.succeed_at <= self.steps
        return SimpleNamespace(images={'cam': np.zeros((8, 8, 3), np.uint8)},
                               qpos=self.qpos.copy(), reward=4.0 * success, success=success)


def views(observation):
    """Return the fake camera as (1, 8, 8, 3) views."""
    return observation.images['cam'][None]
