"""A stand-in simulator for the closed-loop tests (imported by the test modules)."""

from types import SimpleNamespace

import numpy as np


class FakeEnv:
    """Joints follow each command exactly; one 8 x 8 camera; succeeds at `succeed_at`."""

    def __init__(self, succeed_at: int = -1):
        self.succeed_at = succeed_at
        self.qpos, self.steps = np.zeros(14), 0
        self.rendered = []  # the render flag of every step

    def reset(self, seed):
        self.qpos, self.steps = np.zeros(14), 0
        return self._observe()

    def step(self, action, render=True):
        self.qpos, self.steps = np.asarray(action, np.float64), self.steps + 1
        self.rendered.append(render)
        return self._observe(render)

    def _observe(self, render=True):
        success = 0 <= self.succeed_at <= self.steps
        images = {'cam': np.full((8, 8, 3), self.steps % 256, np.uint8)} if render else {}
        return SimpleNamespace(images=images,
                               qpos=self.qpos.copy(), reward=4.0 * success, success=success)


def views(observation):
    """Return the fake camera as (1, 8, 8, 3) views."""
    return observation.images['cam'][None]
