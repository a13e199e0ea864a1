"""
Every live parameter, set through the node's real SetParameters service, changes behaviour.

One graph (robot stand-in, planner, executor, a setter and a diagnostics listener); each case
sets one parameter as `ros2 param set` does and observes what the nodes then do: command and
context rates, chunk cadence, holds and their reasons, diagnostics levels and rates, and how
the seam blending shapes the commands (max_step's clamp: test_ros_parameters.py).
"""

import time
import uuid

from ahawam_ros.msg import WorldContext
from ahawam_ros.robot import JOINT_NAMES
from ahawam_ros.ros.action_executor_node import ActionExecutorNode
from ahawam_ros.ros.conversions import trajectory_points, trajectory_positions
from ahawam_ros.ros.world_planner_node import WorldPlannerNode
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from rclpy.node import Node
from robot_stub import RobotStub
from ros_test_utils import params, spinning, wait_for
from test_ros_parameters import ParameterSetter

pytestmark = pytest.mark.ros
VIEWS, HEIGHT, WIDTH = 2, 16, 16  # the tiny preset's cameras
ERROR = 2  # diagnostic_msgs/DiagnosticStatus.ERROR


class Listener(Node):
    """Counts world contexts and keeps every diagnostics status, with arrival times."""

    def __init__(self, **kwargs):
        super().__init__(f'listener_{uuid.uuid4().hex[:6]}', **kwargs)
        self.contexts, self.statuses = [], []
        self.create_subscription(WorldContext, 'world_context',
                                 lambda msg: self.contexts.append(time.monotonic()), 10)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 50)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        now = time.monotonic()
        self.statuses += [(now, s.name, _level(s.level)) for s in msg.status]

    def count(self, events, since: float) -> int:
        return sum(1 for t in list(events) if t >= since)

    def levels(self, role: str, since: float):
        return [level for t, name, level in list(self.statuses)
                if t >= since and name.endswith(role)]


def _level(level) -> int:
    return level[0] if isinstance(level, bytes) else int(level)


def _rate(count_since, seconds: float) -> float:
    """Events per second over the next `seconds`: count_since(start) at the end."""
    start = time.monotonic()
    time.sleep(seconds)
    return count_since(start) / (time.monotonic() - start)


@pytest.fixture
def graph(ros_context, tiny_checkpoint):
    namespace = f'/p{uuid.uuid4().hex[:8]}'
    kwargs = {'context': ros_context, 'namespace': namespace}
    stub = RobotStub(VIEWS, HEIGHT, WIDTH, **kwargs)
    common = {'checkpoint': tiny_checkpoint, 'camera_topics': stub.camera_topics,
              'diagnostics_period': 0.5}
    planner = WorldPlannerNode(**kwargs, parameter_overrides=params(refresh_rate_hz=10.0,
                                                                    **common))
    executor = ActionExecutorNode(**kwargs, parameter_overrides=params(**common))
    setter, listener = ParameterSetter(**kwargs), Listener(**kwargs)
    with spinning(ros_context, [stub, planner, executor, setter, listener]):
        assert wait_for(lambda: len(stub.received()[1]) >= 3, timeout=60), 'no chunks'
        yield stub, planner, executor, setter, listener


def _set(setter, node, **values):
    assert setter.set_on(node, **values) == [(True, '')] * len(values)


def _executing(executor) -> bool:
    command = executor.last_command  # the newest command sent (a hold or an action)
    return command is not None and not command.is_hold


def _holds(executor, reason: str) -> int:
    return executor.core.holds_by_reason.get(reason, 0)


def test_rates_and_cadence_follow_their_parameters(graph):
    stub, planner, executor, setter, listener = graph
    commands = lambda since: len(stub.received()[0])  # noqa: E731
    base = len(stub.received()[0])
    fast = _rate(lambda s: commands(s) - base, 2.0)
    _set(setter, executor, control_rate_hz=20.0)
    base = len(stub.received()[0])
    slow = _rate(lambda s: commands(s) - base, 2.0)
    assert 15.0 <= slow <= 22.0 and fast > 1.8 * slow, (fast, slow)  # control_rate_hz
    _set(setter, executor, control_rate_hz=50.0)

    before = executor.core.stats()['chunks_accepted']
    every_step = _rate(lambda s: executor.core.stats()['chunks_accepted'] - before, 2.0)
    _set(setter, executor, execute_steps=10)
    before = executor.core.stats()['chunks_accepted']
    spaced = _rate(lambda s: executor.core.stats()['chunks_accepted'] - before, 2.0)
    assert spaced <= 6.5 and every_step > 2.5 * spaced, (every_step, spaced)  # execute_steps

    contexts = _rate(lambda s: listener.count(listener.contexts, s), 2.0)
    _set(setter, planner, refresh_rate_hz=1.0)
    time.sleep(1.0)  # the timer's current period runs out first
    fewer = _rate(lambda s: listener.count(listener.contexts, s), 3.0)
    assert fewer <= 1.7 and contexts > 2.5 * fewer, (contexts, fewer)  # refresh_rate_hz

    for node, role in ((executor, 'executor'), (planner, 'planner')):
        slow = _rate(lambda s: len(listener.levels(role, s)), 2.0)
        _set(setter, node, diagnostics_period=0.1)
        quick = _rate(lambda s: len(listener.levels(role, s)), 2.0)
        assert quick > 2.5 * slow, (role, slow, quick)  # diagnostics_period


def test_age_limits_make_the_nodes_hold_and_diagnostics_escalate(graph):
    stub, planner, executor, setter, listener = graph
    for name, reason in (('max_observation_age', 'stale_joint_state'),
                         ('max_context_age', 'stale_context')):
        before = _holds(executor, reason)
        _set(setter, executor, **{name: 0.001})
        assert wait_for(lambda: _holds(executor, reason) > before + 10, timeout=10), name
        _set(setter, executor, **{name: 1.5 if name == 'max_context_age' else 0.2})
        assert wait_for(lambda: _executing(executor), timeout=30), f'{name}: no recovery'

    skipped = executor.core.chunk_results.as_dict().get('stale_images', 0)
    _set(setter, executor, max_image_age=0.001)  # executor: frames too old for a chunk
    assert wait_for(lambda: executor.core.chunk_results.as_dict().get('stale_images', 0)
                    > skipped + 5, timeout=10)
    _set(setter, executor, max_image_age=0.5)

    stale = planner.core.results.as_dict().get('stale_images', 0)
    _set(setter, planner, max_image_age=0.001)  # planner: no refresh from old frames
    assert wait_for(lambda: planner.core.results.as_dict().get('stale_images', 0) > stale,
                    timeout=10)
    _set(setter, planner, error_after=0.2)  # no context for > 0.2 s: planner ERROR
    since = time.monotonic()
    assert wait_for(lambda: ERROR in listener.levels('planner', since), timeout=10)
    _set(setter, planner, max_image_age=0.5)
    assert wait_for(lambda: _executing(executor), timeout=30), 'the executor never recovered'
    time.sleep(0.5)  # a few executed commands: the hold clock restarts from here

    _set(setter, executor, max_observation_age=0.001)  # holding again ...
    since = time.monotonic()
    time.sleep(1.5)
    assert ERROR not in listener.levels('executor', since)  # WARN for the first 5 s
    _set(setter, executor, hold_error_after=0.2)  # ... now ERROR after 0.2 s
    since = time.monotonic()
    assert wait_for(lambda: ERROR in listener.levels('executor', since), timeout=10)


@pytest.fixture
def fake_graph(ros_context):
    """Yield the graph with the scripted stand-in policy (chunks interpolate from the arm)."""
    namespace = f'/b{uuid.uuid4().hex[:8]}'
    kwargs = {'context': ros_context, 'namespace': namespace}
    stub = RobotStub(VIEWS, HEIGHT, WIDTH, **kwargs)
    common = {'checkpoint': 'fake', 'camera_topics': stub.camera_topics,
              'image_height': HEIGHT, 'image_width': WIDTH}
    planner = WorldPlannerNode(**kwargs, parameter_overrides=params(refresh_rate_hz=10.0,
                                                                    **common))
    executor = ActionExecutorNode(**kwargs, parameter_overrides=params(max_step=0.5, **common))
    setter = ParameterSetter(**kwargs)
    with spinning(ros_context, [stub, planner, executor, setter]):
        assert wait_for(lambda: len(stub.received()[1]) >= 3, timeout=60), 'no chunks'
        yield stub, executor, setter


def _lead(stub, seconds: float = 1.5) -> float:
    """Mean |command - joint state| of the arm joints over the next `seconds`."""
    time.sleep(0.5)  # the plan of the old setting runs out
    first = len(stub.received()[0])
    time.sleep(seconds)
    commands = stub.received()[0][first:]
    arms = [i for i in range(len(JOINT_NAMES)) if not JOINT_NAMES[i].endswith('gripper')]
    leads = [abs(trajectory_positions(c, JOINT_NAMES)[arms] - stub.positions[arms]).mean()
             for c in commands]
    assert len(leads) >= 20, len(leads)
    return float(sum(leads) / len(leads))


def test_seam_blending_parameters_change_the_commands(fake_graph):
    """
    How far a command leads the (still) arm towards the target is the blend's doing.

    The stand-in's chunk k steps after its start is k / K of the way to the context's target;
    a chunk comes every tick. With no blend the newest chunk drives (1-2 steps in: a small
    lead); the weighted blend averages every chunk's prediction for the tick (older ones are
    further along: a larger lead), the more so the more it favours the oldest
    (ensemble_decay > 0); a long linear crossfade keeps the older plans' lead too.
    """
    stub, executor, setter = fake_graph
    weighted = _lead(stub)
    _set(setter, executor, blend='none')
    newest = _lead(stub)
    _set(setter, executor, blend='weighted', ensemble_decay=5.0)
    oldest = _lead(stub)
    _set(setter, executor, blend='linear', blend_steps=0)
    hard_switch = _lead(stub)
    _set(setter, executor, blend_steps=8)
    crossfade = _lead(stub)
    assert weighted > 1.8 * newest and oldest > 1.3 * weighted, (newest, weighted, oldest)
    assert crossfade > 1.3 * hard_switch, (hard_switch, crossfade)


def _new_commands(stub, seconds: float = 1.0):
    """Return the command messages received over the next `seconds`."""
    first = len(stub.received()[0])
    time.sleep(seconds)
    return stub.received()[0][first:]


def test_trajectories_carry_the_plan_ahead_with_velocities_as_trajectory_points_says(
        fake_graph):
    stub, executor, setter = fake_graph
    commands = _new_commands(stub)
    lengths = [len(c.points) for c in commands]
    assert max(lengths) > 3 and max(lengths) <= 10, lengths  # default: up to 10
    period = 1.0 / executor.config.control_rate_hz
    for msg in commands:
        times, positions, velocities = trajectory_points(msg, JOINT_NAMES)
        np.testing.assert_allclose(times, period * np.arange(1, len(times) + 1), atol=1e-6)
        assert velocities is not None and not velocities[-1].any()  # comes to rest at its end
        assert np.all(np.abs(np.diff(positions, axis=0)) <= executor.config.max_step + 1e-9)
    _set(setter, executor, trajectory_points=1)
    time.sleep(0.2)
    for msg in _new_commands(stub):
        assert len(msg.points) == 1 and not msg.points[0].velocities  # positions only
    _set(setter, executor, trajectory_points=3)
    time.sleep(0.2)
    lengths = [len(c.points) for c in _new_commands(stub)]
    assert max(lengths) == 3, lengths


def test_transition_log_period_throttles_the_hold_and_execute_lines(fake_graph):
    stub, executor, setter = fake_graph
    lines = []
    log = executor._log

    def keep(line):  # what the node logs, then logged as usual
        if line is not None:
            lines.append(line.text)
        log(line)

    executor._log = keep

    def flap(cycles: int) -> None:
        """Stop and resume the joint states `cycles` times."""
        for _ in range(cycles):
            stub.publish_joints = False
            assert wait_for(lambda: executor.last_command.is_hold, timeout=10)
            stub.publish_joints = True
            assert wait_for(lambda: _executing(executor), timeout=10)

    _set(setter, executor, transition_log_period=0.0)
    first = len(lines)
    flap(3)
    # the tick logs its line after it publishes the command flap() waits for
    assert wait_for(lambda: len(lines) - first >= 6, timeout=5), lines[first:]
    _set(setter, executor, transition_log_period=60.0)
    time.sleep(0.1)
    first = len(lines)
    flap(3)
    time.sleep(0.3)
    assert len(lines) - first <= 1, lines[first:]
