"""Stamps from other clocks: refused on arrival, counted, named; recovery is immediate."""

import logging
import math

from ahawam_ros.runtime.clock import ManualClock
from ahawam_ros.runtime.context_slot import ContextRegistry, ContextSlot, ContextSnapshot
from ahawam_ros.runtime.executor_core import ExecutorCore
from ahawam_ros.runtime.planner_core import PlannerCore
from ahawam_ros.runtime.policy_api import FakePolicy
from ahawam_ros.runtime.safety import HoldReason, SafetyConfig, SafetyFilter
from ahawam_ros.runtime.stamps import StampGuard
import numpy as np
import pytest
from runtime_configs import executor_config, planner_config, stamp_config

A, K, PERIOD, START = 4, 10, 0.02, 100.0
MAX_IMAGE_AGE, MAX_CONTEXT_AGE = 0.3, 0.5
JOINTS = '/robot/joint_states'
CAMERAS = ('/robot/cameras/top/image_raw', '/robot/cameras/wrist/image_raw')
IMAGES = np.zeros((len(CAMERAS), 8, 8, 3), np.uint8)
STAMPS_LOG = 'ahawam_ros.runtime.stamps'


class Rig:
    """Planner + executor on one manual clock, fed per camera as the nodes' CameraSet does."""

    def __init__(self, stamps=stamp_config()):
        self.clock = ManualClock(START)
        self.policy = FakePolicy(chunk_len=K, action_dim=A, control_period=PERIOD,
                                 chunk_latency=0.005, sleep=self.clock.advance)
        slot = ContextSlot(ContextRegistry())
        safety = SafetyConfig.uniform(A, -1.0, 1.0, 10.0, max_context_age=MAX_CONTEXT_AGE,
                                      max_observation_age=0.1)
        # schedule 'spacing': the rig asks for a chunk every 5 ticks, as a chunk timer would
        self.executor = ExecutorCore(self.policy, slot, executor_config(
            safety, max_image_age=MAX_IMAGE_AGE, stamps=stamps, schedule='spacing'),
            clock=self.clock, episode_start=START, wall_clock=self.clock)
        self.planner = PlannerCore(self.policy, slot, planner_config(
            max_image_age=MAX_IMAGE_AGE, stamps=stamps), clock=self.clock, episode_start=START)
        self.frames = {self.executor: {}, self.planner: {}}  # core -> topic -> kept stamp
        self.robot = np.full(A, 0.1)

    def step(self, i, camera_stamp=lambda t: t):
        """Run 50 Hz cycle `i`; `camera_stamp(t)` is each frame's stamp (None: no frame)."""
        t = START + i * PERIOD
        self.clock.set_time(t)
        self.executor.update_joints(self.robot, t, JOINTS)
        for core, kept in self.frames.items():
            for topic in CAMERAS:
                stamp = camera_stamp(t)
                stamp = None if stamp is None else core.check_camera_stamp(topic, stamp)
                if stamp is not None:
                    kept[topic] = stamp
            if len(kept) == len(CAMERAS):
                core.update_images(IMAGES, min(kept.values()))
        if i % 10 == 0:
            self.planner.refresh()
        command = self.executor.tick(t)
        if command.positions is not None:
            self.robot = command.positions.copy()
        if i % 5 == 0:
            self.executor.compute_chunk()
        return command

    def run(self, first, count, **kwargs):
        return [self.step(i, **kwargs) for i in range(first, first + count)]


def test_a_joint_state_30_s_ahead_is_refused_and_the_next_good_one_accepted():
    rig = Rig()
    rig.run(0, 20)
    t = rig.clock()
    assert not rig.executor.update_joints(rig.robot, t + 30.0, JOINTS)
    assert rig.executor.update_joints(rig.robot, t, JOINTS)  # at once, not 30 s later
    commands = rig.run(20, 50)
    stats = rig.executor.stats()
    assert stats['rejected_joint_states'] == 1  # the 50 good ones after it were all taken
    assert stats['stamps_refused_future'] == 1
    assert stats[f'stamps_refused_future[{JOINTS}]'] == 1
    assert not any(c.is_hold for c in commands), {c.reason for c in commands}


@pytest.mark.parametrize('bad', [2.0 ** 31 - 1, 2.0 ** 31 - 1 + 0.999999999])
def test_the_largest_ros_stamp_is_refused_and_the_executor_recovers(bad):
    rig = Rig()
    rig.run(0, 20)
    assert not rig.executor.update_joints(rig.robot, bad, JOINTS)
    assert rig.planner.check_camera_stamp(CAMERAS[0], bad) is None
    assert not rig.planner.update_images(IMAGES, bad)
    commands = rig.run(20, 30)
    assert not any(c.is_hold for c in commands)
    assert rig.planner.stats()['stamps_refused_future'] == 2


@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
def test_non_finite_stamps_are_refused_without_raising(bad):
    rig = Rig()
    rig.run(0, 20)
    t = rig.clock()
    assert not rig.executor.update_joints(rig.robot, bad, JOINTS)
    assert not rig.executor.update_images(IMAGES, bad)
    assert rig.executor.check_camera_stamp(CAMERAS[0], bad) is None
    assert not rig.planner.update_images(IMAGES, bad)
    rig.clock.advance(PERIOD)
    rig.executor.update_joints(rig.robot, t + PERIOD, JOINTS)
    assert rig.executor.compute_chunk().status == 'accepted'  # the good inputs, no raise
    assert rig.planner.refresh().status in ('published', 'no_new_images')
    assert rig.executor.stats()['stamps_refused_nonfinite'] == 3
    assert rig.planner.stats()['stamps_refused_nonfinite'] == 1


def test_an_unset_camera_stamp_is_refused_and_logged_once_naming_the_topic(caplog):
    rig = Rig(stamp_config(zero_is_unset=True))
    with caplog.at_level(logging.INFO, logger='ahawam_ros'):
        for _ in range(3):
            assert rig.planner.check_camera_stamp(CAMERAS[1], 0.0) is None
        rig.run(0, 5, camera_stamp=lambda t: 0.0)
    refusals = sorted(r.getMessage() for r in caplog.records if r.name == STAMPS_LOG)
    assert len(refusals) == 4, refusals  # once per core (planner, executor) and camera
    for camera, message in zip(sorted(CAMERAS * 2), refusals):
        assert camera in message and 'stamp is 0' in message
    stats = rig.planner.stats()
    assert stats[f'stamps_refused_zero[{CAMERAS[1]}]'] == 3 + 5
    assert stats['published'] == 0


def test_negative_stamps_are_refused():
    guard = StampGuard(stamp_config())
    assert guard.check('joints', -1.0, 5.0).cause == 'negative'
    assert guard.check('joints', 0.0, 5.0).accepted  # 0 is a time on a clock that starts there
    assert guard.check('joints', 0.0, 0.0).accepted


def test_a_clock_that_reads_zero_has_not_started_under_ros_semantics():
    guard = StampGuard(stamp_config(zero_is_unset=True))
    assert guard.check('joints', 12.0, 0.0).cause == 'no_clock'
    assert guard.check('joints', 12.0, 12.01).accepted


def test_cameras_10_s_ahead_are_refused_so_the_executor_holds_naming_the_camera(caplog):
    rig = Rig()
    rig.run(0, 60)
    died = rig.clock()
    with caplog.at_level(logging.INFO, logger='ahawam_ros'):
        commands = rig.run(60, 60, camera_stamp=lambda t: t + 10.0)  # a camera clock jumped
    bound = died + MAX_IMAGE_AGE + (K + 2) * PERIOD  # the last chunk runs out, then hold
    late = [c for c in commands if c.stamp > bound]
    assert late and all(c.is_hold for c in late), [(c.stamp, c.reason) for c in late]
    assert {c.reason for c in late} == {HoldReason.STALE_CAMERA.value}
    assert all(c.detail.split(':')[0] in CAMERAS for c in late)
    assert rig.executor.stats()[f'stamps_refused_future[{CAMERAS[0]}]'] == 60
    assert rig.executor.stamps.offset_problems() == sorted(CAMERAS)
    assert rig.executor.stamps.offsets()[CAMERAS[0]] == pytest.approx(-10.0)
    messages = [r.getMessage() for r in caplog.records]
    assert any('clock offset' in m and CAMERAS[0] in m and 'ahead' in m for m in messages)
    assert any('planner paused' in m and 'camera' in m for m in messages)


def test_cameras_that_die_make_the_executor_hold_naming_the_camera():
    rig = Rig()
    rig.run(0, 60, camera_stamp=lambda t: t + 0.1)  # ahead, within the tolerance
    died = rig.clock()
    commands = rig.run(60, 60, camera_stamp=lambda t: None)
    bound = died + MAX_IMAGE_AGE + (K + 2) * PERIOD
    assert not commands[0].is_hold
    late = [c for c in commands if c.stamp > bound]
    assert late and all(c.reason == HoldReason.STALE_CAMERA.value for c in late)
    assert CAMERAS[0] in late[-1].detail or CAMERAS[1] in late[-1].detail
    assert rig.executor.stats()['holds_stale_camera'] == sum(c.is_hold for c in commands)
    assert rig.executor.stats()['stamps_refused'] == 0


def test_a_context_from_another_clock_is_refused():
    rig = Rig()
    far = ManualClock(START + 100.0)  # a planner on another clock
    planner = PlannerCore(rig.policy, ContextSlot(), planner_config(), clock=far,
                          episode_start=START)
    planner.update_images(IMAGES, far())
    handle = planner.refresh().snapshot.handle
    assert not rig.executor.accept_context(handle, '/robot/world_context')
    assert rig.executor.slot.latest() is None
    assert rig.executor.stats()['stamps_refused_future[/robot/world_context]'] == 1


def test_negative_ages_never_count_as_fresh():
    safety = SafetyFilter(SafetyConfig.uniform(A, -1.0, 1.0, 0.1, max_context_age=0.5,
                                               max_observation_age=0.1))
    now = 50.0
    assert safety.check_inputs(now, now + 30.0, now) is HoldReason.STALE_JOINT_STATE
    assert safety.check_inputs(now, now + 1e-6, now) is HoldReason.STALE_JOINT_STATE
    assert safety.check_inputs(now, now, now + 5.0) is HoldReason.STALE_CONTEXT
    assert safety.check_inputs(now, math.inf, now) is HoldReason.STALE_JOINT_STATE
    assert safety.check_inputs(now, now, now) is HoldReason.OK
    snapshot = ContextSnapshot(context=None, seq=1, obs_stamp=now + 2.0, publish_time=now)
    assert snapshot.age(now) == math.inf


def test_accepted_stamps_ahead_of_the_clock_are_kept_as_now():
    guard = StampGuard(stamp_config(max_future=0.2))
    verdict = guard.check('joints', 10.15, 10.0)
    assert verdict.accepted and verdict.stamp == 10.0
    assert guard.check('joints', 10.15, 10.05).stamp == 10.0  # the same message again
    assert guard.check('joints', 10.3, 10.05).cause == 'future'
    assert guard.check('joints', 10.06, 10.06).stamp == 10.06  # never older than the last


def test_a_consistent_offset_is_reported_by_topic_and_a_single_outlier_is_not(caplog):
    guard = StampGuard(stamp_config(max_offset=0.5))
    with caplog.at_level(logging.INFO, logger='ahawam_ros'):
        for i in range(20):
            now = 100.0 + 0.1 * i
            guard.check('/late/camera', now - 2.0, now, camera=True)
            guard.check('/good/camera', now + (3.0 if i == 3 else 0.0), now, camera=True)
    assert guard.offsets()['/late/camera'] == pytest.approx(2.0)
    assert guard.offsets()['/good/camera'] == pytest.approx(0.0)
    assert guard.offset_problems() == ['/late/camera']
    assert guard.stats()['stamp_offset[/late/camera]'] == pytest.approx(2.0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any('/late/camera' in m and 'behind' in m for m in warnings)
    with caplog.at_level(logging.INFO, logger='ahawam_ros'):
        for i in range(20):
            now = 110.0 + 0.1 * i
            guard.check('/late/camera', now, now, camera=True)
    assert guard.offset_problems() == []
    assert any('back within' in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize('kwargs, name', [({'max_future': -0.1}, 'max_future'),
                                          ({'max_future': math.nan}, 'max_future'),
                                          ({'max_offset': 0.0}, 'max_offset')])
def test_stamp_config_names_the_bad_field(kwargs, name):
    with pytest.raises(ValueError, match=name):
        stamp_config(**kwargs)
