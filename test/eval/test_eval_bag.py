"""Bag replay through the async runtime: known policies and latencies give known figures."""

import time
from typing import List, Optional, Tuple

from ahawam_ros.data.features import FeatureConfig
from ahawam_ros.eval.bag.cli import BagEvalConfig, evaluate_bag
from ahawam_ros.eval.bag.metrics import figures, problems
from ahawam_ros.eval.bag.replay import BagReplay, EvalError
from ahawam_ros.eval.bag.report import headline
from ahawam_ros.eval.bag.stream import BagSource
from ahawam_ros.runtime.settings import RuntimeSettings
from bag_fixtures import compress_cameras, gradient_frame, lockstep_messages, write_bag
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin

FEATURES = FeatureConfig(cameras=('top', 'left_wrist'), image_height=8, image_width=12)
PERIOD = 0.02
BASE = 0.2 + 0.01 * np.arange(14)  # inside every joint's limits, grippers included
SLOPE = 0.003  # per control step: well under the safety filter's max_step


def ramp(steps) -> np.ndarray:
    """(N, A) joint targets of control steps `steps`: BASE + SLOPE * step."""
    return BASE[None, :] + SLOPE * np.asarray(steps, np.float64).reshape(-1, 1)


class RampPolicy:
    """
    Deterministic policy on the ramp: action k of the chunk from step s is for step s + k.

    With `piecewise`, every action of the chunk from step s is ramp(s) (a constant plan, so
    the command changes only where chunks switch); `drift` adds drift * k to action k.
    """

    chunk_len, action_dim, control_period = 16, 14, PERIOD

    def __init__(self, drift: float = 0.0, piecewise: bool = False, plan_sleep: float = 0.0,
                 chunk_sleep: float = 0.0, image_size: Optional[Tuple[int, int]] = None):
        self.drift, self.piecewise = drift, piecewise
        self.plan_sleep, self.chunk_sleep = plan_sleep, chunk_sleep
        if image_size is not None:
            self.image_size = image_size
        self.shapes: List[tuple] = []

    def reset(self) -> None:
        pass

    def plan(self, images: np.ndarray, step: int) -> int:
        self.shapes.append(images.shape)
        time.sleep(self.plan_sleep)
        return step

    def predict_chunk(self, images, proprio, context, step) -> np.ndarray:
        time.sleep(self.chunk_sleep)
        k = np.arange(self.chunk_len)
        steps = np.full(self.chunk_len, step) if self.piecewise else step + k
        return ramp(steps) + self.drift * k[:, None]  # (K, A)


def make_bag(tmp_path, commands: np.ndarray, storage=StoragePlugin.MCAP, trajectory=False):
    """Bag of len(commands) steps tracking the ramp exactly, recording `commands`."""
    joints = ramp(np.arange(len(commands)))
    return write_bag(tmp_path / f'bag_{storage.name}_{trajectory}',
                     lockstep_messages(FEATURES, joints, commands, trajectory), FEATURES,
                     storage)


# The runtime these replays test against: the spacing schedule every 8 steps and a linear
# seam unless a test says otherwise (their expected commands are worked out for them).
TEST_KNOBS = {'schedule': 'spacing', 'execute_steps': 8, 'blend': 'linear',
              'refresh_rate_hz': 4.0}
_CONFIG_FIELDS = {'planner_latency', 'executor_latency', 'resize_images', 'mapping', 'cameras',
                  'joint_state_topics', 'command_topics', 'max_skew'}


def bag_config(**values) -> BagEvalConfig:
    """Return a BagEvalConfig of test values: its own fields, and runtime knobs by name."""
    knobs = {**TEST_KNOBS, **{k: v for k, v in values.items() if k not in _CONFIG_FIELDS}}
    settings = RuntimeSettings().replace(**knobs)
    return BagEvalConfig(settings=settings, progress=False,
                         **{k: v for k, v in values.items() if k in _CONFIG_FIELDS})


def replay(bag, policy, **settings):
    return evaluate_bag(bag, policy, bag_config(**settings))


def test_ramp_policy_follows_recorded_timing(tmp_path):
    """
    Recording what the runtime sends gives zero error.

    With planner latency 0.05 s and executor latency 0.025 s the runtime holds ramp(0) until
    step 4, then sends ramp(n): context at 0.05 wakes the chunk worker (as in the node), first
    chunk from the step-2 observation at 0.05, available at 0.075 and executed from the 0.08
    tick (step 4).
    """
    steps, first = 40, 4
    expected = ramp(np.arange(steps))
    expected[:first] = ramp([0])
    trace = replay(make_bag(tmp_path, expected), RampPolicy(), refresh_rate_hz=10.0,
                   planner_latency=0.05, executor_latency=0.025, execute_steps=4)
    np.testing.assert_allclose(trace.command, expected, atol=1e-12)
    assert trace.holds == {'startup': 1, 'no_context': 2, 'no_chunk': 1}
    values = figures([trace])
    assert values['compared_ticks'] == values['executing_ticks'] == steps - first
    assert values['executed_share'] == pytest.approx((steps - first) / steps)
    assert values['mae_mean'] < 1e-12 and values['rmse_mean'] < 1e-12


@pytest.mark.parametrize('storage,trajectory', [(StoragePlugin.MCAP, False),
                                                (StoragePlugin.SQLITE3, False),
                                                (StoragePlugin.MCAP, True)])
def test_offset_recording_gives_the_offset_as_error(tmp_path, storage, trajectory):
    offset = 0.01 * np.arange(1, 15)  # a different constant per joint
    expected = ramp(np.arange(30))
    expected[:4] = ramp([0])
    trace = replay(make_bag(tmp_path, expected - offset, storage, trajectory), RampPolicy(),
                   refresh_rate_hz=10.0, planner_latency=0.05, executor_latency=0.025,
                   execute_steps=4)
    values = figures([trace])
    assert values['compared_ticks'] == 26  # the 4 holds are not counted
    np.testing.assert_allclose(list(values['mae'].values()), offset, atol=1e-9)
    np.testing.assert_allclose(list(values['rmse'].values()), offset, atol=1e-9)
    assert values['mae_mean'] == pytest.approx(offset.mean())


@pytest.mark.parametrize('planner_latency,ages', [(0.02, {0.04}), (0.04, {0.06, 0.08})])
def test_context_age_is_planner_latency_plus_the_executor_tick(tmp_path, planner_latency,
                                                               ages):
    """
    Context age at a command is the planner latency plus one tick.

    A 50 Hz planner refreshes as soon as it is free; a chunk computed at t (5 ms) is first
    executed at the t + 20 ms tick, from a context observed planner_latency (+ one period
    when the planner was busy then) before t.
    """
    trace = replay(make_bag(tmp_path, ramp(np.arange(40))), RampPolicy(),
                   refresh_rate_hz=50.0, planner_latency=planner_latency,
                   executor_latency=0.005, execute_steps=0)
    executing = ~trace.is_hold
    assert executing.sum() > 30
    assert set(np.round(trace.context_age[executing], 9)) == ages
    assert figures([trace])['context_age']['p50'] == pytest.approx(min(ages), abs=0.021)


@pytest.mark.parametrize('blend,seam,within', [('none', 4 * SLOPE, 0.0),
                                               ('linear', 0.4 * 4 * SLOPE, 0.2 * 4 * SLOPE)])
def test_seam_jumps_of_piecewise_constant_chunks(tmp_path, blend, seam, within):
    """
    Constant chunks jump at the seams only; the linear blend spreads the jump.

    Chunks every 4 steps, each a constant ramp(s): a hard switch jumps 4 * SLOPE at every seam
    and never within a chunk; the linear blend (4 steps) spreads it: 0.4 of it at the seam
    (its first executed action has weight 2/5), 0.2 per tick after.
    """
    trace = replay(make_bag(tmp_path, ramp(np.arange(40))), RampPolicy(piecewise=True),
                   refresh_rate_hz=50.0, planner_latency=0.005, executor_latency=0.005,
                   execute_steps=4, blend=blend, blend_steps=4)
    values = figures([trace])
    assert values['seam_jump']['count'] >= 8
    assert values['seam_jump']['mean'] == pytest.approx(seam, abs=1e-12)
    assert values['seam_jump']['max'] == pytest.approx(seam, abs=1e-12)
    assert values['within_chunk_jump']['max'] == pytest.approx(within, abs=1e-12)
    assert values['recorded_step']['max'] == pytest.approx(SLOPE, abs=1e-12)
    assert values['rate_limited_ticks'] == 0


def test_rate_limited_seams_jump_max_step(tmp_path):
    """A seam of 4 * SLOPE = 0.012 under max_step 0.005 takes 3 ticks, 2 of them clamped."""
    trace = replay(make_bag(tmp_path, ramp(np.arange(40))), RampPolicy(piecewise=True),
                   refresh_rate_hz=50.0, planner_latency=0.005, executor_latency=0.005,
                   execute_steps=4, blend='none', max_step=0.005)
    values = figures([trace])
    assert values['seam_jump']['max'] == pytest.approx(0.005, abs=1e-12)
    assert values['rate_limited_ticks'] == 2 * values['seam_jump']['count']


def test_error_grows_with_the_index_in_the_chunk(tmp_path):
    """A drift of 0.005 per action: ticks executing action k of a chunk err by 0.005 k."""
    trace = replay(make_bag(tmp_path, ramp(np.arange(40))), RampPolicy(drift=0.005),
                   refresh_rate_hz=50.0, planner_latency=0.005, executor_latency=0.005,
                   execute_steps=4, blend='none')
    values = figures([trace])
    counts = values['chunk_step_count']
    assert [k for k, n in enumerate(counts) if n] == [1, 2, 3, 4]
    for k in (1, 2, 3, 4):
        assert values['chunk_step_mae'][k] == pytest.approx(0.005 * k, abs=1e-12)


def test_measured_latencies_are_spent_in_bag_time(tmp_path):
    """With no fixed latency, a chunk is executed only from the first tick after it is ready."""
    # 4 s of bag: room for a first chunk however long the real calls take on a loaded machine
    trace = replay(make_bag(tmp_path, ramp(np.arange(200))),
                   RampPolicy(plan_sleep=0.011, chunk_sleep=0.031), refresh_rate_hz=4.0,
                   execute_steps=4, max_context_age=4.0)
    for role, floor in (('planner', 0.011), ('executor', 0.031)):
        np.testing.assert_array_equal(trace.simulated[role], trace.measured[role])
        assert trace.measured[role].min() >= floor
    context_ready = trace.measured['planner'][0]
    chunk_start = np.ceil(context_ready / PERIOD - 1e-9) * PERIOD
    ready = chunk_start + trace.measured['executor'][0]
    first_executing = trace.tick_time[~trace.is_hold][0]
    assert first_executing == pytest.approx(np.ceil(ready / PERIOD - 1e-9) * PERIOD)


def test_frames_of_another_size_fail_unless_resized(tmp_path):
    bag = make_bag(tmp_path, ramp(np.arange(10)))
    with pytest.raises(EvalError, match='8x12.*6x10.*--resize-images'):
        replay(bag, RampPolicy(image_size=(6, 10)))
    policy = RampPolicy(image_size=(6, 10))
    replay(bag, policy, resize_images=True)
    assert policy.shapes and set(policy.shapes) == {(2, 6, 10, 3)}


def test_config_names_the_bad_field():
    with pytest.raises(ValueError, match='refresh_rate_hz'):
        bag_config(refresh_rate_hz=0.0)
    with pytest.raises(ValueError, match='executor_latency'):
        BagEvalConfig(executor_latency=-0.1)
    with pytest.raises(ValueError, match="blend must be one of .*'cubic'"):
        bag_config(blend='cubic')


def test_ticks_without_a_recorded_command_are_not_compared(tmp_path):
    """Commands recorded for the first 20 of 30 steps: the last 10 ticks have no match."""
    messages = [m for m in lockstep_messages(FEATURES, ramp(np.arange(30)), ramp(np.arange(30)))
                if m[0] != FEATURES.command_topic or m[2] < 20 * 20_000_000]
    trace = replay(write_bag(tmp_path / 'bag', messages, FEATURES), RampPolicy(),
                   planner_latency=0.0, executor_latency=0.0)
    values = figures([trace])
    assert values['sent_ticks'] == 30
    executed = ~trace.is_hold
    assert executed[20:].all()
    assert (values['compared_ticks'], values['unmatched_ticks']) == (executed[:20].sum(), 10)


def test_nothing_is_planned_before_every_camera_has_spoken(tmp_path):
    """
    The planner waits for a frame of every camera.

    The wrist camera starts at step 5: with zero latencies, the context planned from step 5's
    frames drives the step-5 command, and ticks 1-4 hold for want of a context.
    """
    messages = [m for m in lockstep_messages(FEATURES, ramp(np.arange(20)), ramp(np.arange(20)))
                if m[0] != '/cameras/left_wrist/image_raw' or m[2] >= 5 * 20_000_000]
    policy = RampPolicy()
    trace = replay(write_bag(tmp_path / 'bag', messages, FEATURES), policy,
                   refresh_rate_hz=50.0, planner_latency=0.0, executor_latency=0.0)
    assert policy.shapes and trace.tick_time[~trace.is_hold][0] == pytest.approx(5 * PERIOD)
    assert trace.holds == {'startup': 1, 'no_context': 4}


class ImagePolicy(RampPolicy):
    """RampPolicy whose actions also move with the pixels it is shown (position and colour)."""

    def __init__(self):
        super().__init__()
        self.seen: List[np.ndarray] = []

    def predict_chunk(self, images, proprio, context, step) -> np.ndarray:
        self.seen.append(np.array(images))
        weights = np.arange(images[0].size).reshape(images.shape[1:]) / images[0].size
        return super().predict_chunk(images, proprio, context, step) + \
            0.01 * float((images * weights).mean()) / 255.0


def test_png_cameras_replay_like_raw_ones(tmp_path):
    """The same bag with png CompressedImage cameras gives the policy the same frames."""
    bag_messages = lockstep_messages(FEATURES, ramp(np.arange(20)), ramp(np.arange(20)),
                                     frame=gradient_frame(FEATURES.image_shape))
    runs = {}
    for name, recorded in (('raw', bag_messages), ('png', compress_cameras(bag_messages))):
        policy = ImagePolicy()
        trace = replay(write_bag(tmp_path / name, recorded, FEATURES), policy,
                       refresh_rate_hz=50.0, planner_latency=0.02, executor_latency=0.01,
                       execute_steps=2)
        values = figures([trace])
        del values['bags'], values['latency']  # the bag's name and measured wall time differ
        runs[name] = (policy.seen, trace.command, values)
    (raw_seen, raw_command, raw_values), (png_seen, png_command, png_values) = \
        runs['raw'], runs['png']
    assert len(raw_seen) >= 5 and len(png_seen) == len(raw_seen)
    for raw_images, png_images in zip(raw_seen, png_seen):
        np.testing.assert_array_equal(png_images, raw_images)
    np.testing.assert_array_equal(png_command, raw_command)
    assert png_values == raw_values and png_values['mae_mean'] > 0.0


def test_the_replay_hands_over_joint_states_at_their_own_stamps(tmp_path):
    """
    The executor's clock reads a joint state's time when it arrives, also during inference.

    A clock left at the previous tick would see every joint state one period ahead: it would
    be kept as the clock's time (stamps ahead are kept as now), one period early.
    """
    bag, policy = make_bag(tmp_path, ramp(np.arange(60))), RampPolicy()
    config = bag_config(refresh_rate_hz=10.0, planner_latency=0.05, executor_latency=0.25,
                        execute_steps=4)
    with BagSource(bag, config.layout(FEATURES), config.overrides()) as source:
        replay = BagReplay(policy, config.settings, config.timing())
        trace = replay.run(source)
    assert replay.executor.stamps.newest('joint_states') == trace.joint_time[-1]
    assert replay.executor.stamps.offsets()['joint_states'] == 0.0
    assert replay.executor.stats()['stamps_refused'] == 0
    assert replay.planner.stats()['stamps_refused'] == 0


def test_the_headline_mae_counts_executed_ticks_only(tmp_path):
    """Holds (the first ticks, before a chunk) are left out of MAE and RMSE, and counted."""
    steps = 40
    recorded = ramp(np.arange(steps)) + 0.02 * np.sin(np.arange(steps))[:, None]
    recorded[:3] += 0.1  # the first ticks hold (no chunk yet): their error stands out
    trace = replay(make_bag(tmp_path, recorded), RampPolicy(drift=0.004), refresh_rate_hz=10.0,
                   planner_latency=0.05, executor_latency=0.025, execute_steps=4)
    executed = ~trace.is_hold
    assert 0 < executed.sum() < steps  # both kinds of tick, or the test proves nothing
    # independently: the bag records one command at every tick time (lock-step)
    errors = np.abs(trace.command - recorded)  # (T, A)
    expected_mae = errors[executed].mean()
    expected_rmse = np.sqrt((errors[executed] ** 2).mean())
    assert abs(errors.mean() - expected_mae) > 3e-3  # holds counted would change it
    values = figures([trace])
    assert values['mae_mean'] == pytest.approx(expected_mae, rel=1e-9)
    assert values['rmse_mean'] == pytest.approx(expected_rmse, rel=1e-9)
    assert values['hold_mae_mean'] == pytest.approx(errors[~executed].mean(), rel=1e-9)
    text = headline(values)
    assert text['MAE (executed ticks)'] == f'{expected_mae:.4g}'
    share = 100.0 * executed.sum() / steps
    assert text['executed ticks'] == f'{executed.sum()} / {steps} ({share:.3g} %)'
    assert problems(values) == []


def test_a_replay_where_nothing_executes_is_a_problem_not_a_figure(tmp_path):
    trace = replay(make_bag(tmp_path, ramp(np.arange(20))), RampPolicy(),
                   planner_latency=0.05, executor_latency=10.0)
    values = figures([trace])
    assert values['executing_ticks'] == 0 and values['ticks'] == 20
    assert values['mae_mean'] is None and headline(values)['MAE (executed ticks)'] == '-'
    (problem,) = problems(values)
    assert problem.startswith('nothing executed: 0 of 20 command ticks')


def test_non_finite_chunks_are_counted_and_a_problem(tmp_path):
    class NaNPolicy(RampPolicy):
        calls = 0

        def predict_chunk(self, images, proprio, context, step) -> np.ndarray:
            actions = super().predict_chunk(images, proprio, context, step)
            self.calls += 1
            return actions * np.nan if self.calls % 2 else actions  # every other chunk is NaN

    trace = replay(make_bag(tmp_path, ramp(np.arange(40))), NaNPolicy(), planner_latency=0.05,
                   executor_latency=0.025, execute_steps=4)
    values = figures([trace])
    assert values['nonfinite_chunks'] == trace.chunk_results['nonfinite_chunk'] > 0
    assert values['executing_ticks'] > 0 and values['mae_mean'] is not None
    (problem,) = problems(values)
    assert f"produced {values['nonfinite_chunks']} non-finite chunks" in problem


def test_the_policy_is_warmed_up_before_the_bag_clock_starts(tmp_path):
    """A compiled policy's first-call cost is paid before the replay, as in the nodes."""
    from ahawam_ros.eval.bag.cli import run_eval

    class WarmedPolicy(RampPolicy):
        def __init__(self):
            super().__init__()
            self.calls = []

        def warm_up(self):
            self.calls.append('warm_up')

        def plan(self, images, step):
            self.calls.append('plan')
            return super().plan(images, step)

    policy = WarmedPolicy()
    bag = make_bag(tmp_path, ramp(np.arange(30)))
    run_eval([bag], policy, bag_config(refresh_rate_hz=10.0, planner_latency=0.05,
                                       executor_latency=0.025, execute_steps=4),
             tmp_path / 'out', tmp_path)
    assert policy.calls[0] == 'warm_up' and policy.calls.count('warm_up') == 1
