"""Simulator timing: paced steps with bounded catch-up, real-time factor, background renders."""

import math
import threading

import numpy as np
import pytest

pytest.importorskip('gym_aloha', reason='the simulator (requirements/sim.txt) is not installed')

from ahawam_ros.sim.aloha_env import AlohaSim, SimConfig  # noqa: E402, I100
from ahawam_ros.sim.pacing import Pacer, RealTimeMeter  # noqa: E402
from ahawam_ros.sim.renderer import BackgroundRenderer  # noqa: E402

pytestmark = pytest.mark.sim


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_pacer_waits_catches_up_a_little_and_gives_up_a_stall():
    clock = FakeClock()
    pacer = Pacer(0.02, max_lag=3, clock=clock)
    assert pacer.delay() == pytest.approx(0.02)  # on time: wait a full period
    clock.now = 0.02 + 0.05  # the step ran 50 ms late: 2.5 periods behind
    assert pacer.delay() == 0.0 and pacer.given_up == 0  # catch up, back to back
    clock.now = 0.5  # a stall far beyond 3 periods: the lost time is given up
    assert pacer.delay() == 0.0 and pacer.given_up > 10
    assert pacer.delay() == pytest.approx(0.02)  # and the schedule restarts from now
    assert pacer.late == 2  # the two steps that began after their deadline


def test_a_pacer_without_lag_restarts_from_a_late_step():
    clock = FakeClock()
    pacer = Pacer(0.02, max_lag=0, clock=clock)
    clock.now = 0.05  # late by 30 ms: step at once, the schedule restarts here
    assert pacer.delay() == 0.0 and pacer.late == 1
    assert pacer.delay() == pytest.approx(0.02) and pacer.late == 1
    with pytest.raises(ValueError, match='period'):
        Pacer(0.0)


def test_real_time_factor_is_simulated_per_wall_second():
    clock = FakeClock()
    meter = RealTimeMeter(window=1.0, clock=clock)
    assert math.isnan(meter.factor())
    for _ in range(100):  # 2 wall seconds at full speed
        clock.now += 0.02
        meter.add(0.02)
    assert meter.factor() == pytest.approx(1.0) and meter.overall() == pytest.approx(1.0)
    for _ in range(100):  # then 2 wall seconds at half speed
        clock.now += 0.04
        meter.add(0.02)
    assert meter.factor() == pytest.approx(0.5, abs=0.03)  # the window sees the slowdown
    assert meter.overall() == pytest.approx(4.0 / 6.0)
    assert meter.sim_seconds == pytest.approx(4.0)


def test_background_frames_equal_the_synchronous_render_of_the_same_state():
    cameras = ('top', 'left_wrist')
    frames, arrived = {}, threading.Event()

    def on_frame(images, tag):
        frames[tag] = images
        arrived.set()

    with AlohaSim(SimConfig(cameras=cameras, image_height=48, image_width=64)) as reference:
        observation = reference.reset(4)
        for _ in range(10):
            observation = reference.step(observation.qpos + 0.01)
        renderer = BackgroundRenderer(reference.model, cameras, 48, 64, on_frame)
        try:
            waited = renderer.submit(reference.data.qpos, 'now', wait=True)
            expected = reference.render()
        finally:
            renderer.close()
    assert arrived.is_set() and set(frames) == {'now'}
    for camera in cameras:
        assert waited[camera].shape == (48, 64, 3) and waited[camera].std() > 1.0
        np.testing.assert_array_equal(waited[camera], expected[camera])
        np.testing.assert_array_equal(frames['now'][camera], expected[camera])
    assert renderer.rendered == 1 and renderer.failures == 0
    with pytest.raises(RuntimeError, match='closed'):
        renderer.submit(np.zeros(reference.model.nq))
