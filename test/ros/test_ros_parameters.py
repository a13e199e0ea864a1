"""
Parameters at run time, through the nodes' real SetParameters services (as `ros2 param set`).

A live parameter takes effect, an invalid value is refused with the validation message and
changes nothing, a read-only parameter is refused with the reason.
"""

import math
import uuid

from ahawam_ros.robot import JOINT_NAMES
from ahawam_ros.ros import conversions as conv
from ahawam_ros.ros.action_executor_node import ActionExecutorNode
from ahawam_ros.ros.world_planner_node import WorldPlannerNode
import numpy as np
import pytest
from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from robot_stub import RobotStub
from ros_test_utils import params, spinning, wait_for

pytestmark = pytest.mark.ros
VIEWS, HEIGHT, WIDTH = 2, 16, 16  # the tiny preset's cameras


class ParameterSetter(Node):
    """Calls another node's `set_parameters` service, as `ros2 param set` does."""

    def __init__(self, **kwargs):
        super().__init__(f'setter_{uuid.uuid4().hex[:6]}', **kwargs)
        self._param_clients = {}

    def set_on(self, node: Node, **values):
        """Set `values` on `node`; return [(successful, reason)] per parameter."""
        name = node.get_fully_qualified_name()
        if name not in self._param_clients:
            self._param_clients[name] = self.create_client(SetParameters, f'{name}/set_parameters')
        client = self._param_clients[name]
        assert client.wait_for_service(timeout_sec=20.0), f'no service {name}/set_parameters'
        request = SetParameters.Request(parameters=[
            Parameter(key, value=value).to_parameter_msg() for key, value in values.items()])
        future = client.call_async(request)
        assert wait_for(future.done, timeout=20.0), 'set_parameters did not answer'
        return [(r.successful, r.reason) for r in future.result().results]


def _system(context, checkpoint, namespace):
    stub = RobotStub(VIEWS, HEIGHT, WIDTH, context=context, namespace=namespace)
    common = {'checkpoint': checkpoint, 'camera_topics': stub.camera_topics}
    planner = WorldPlannerNode(context=context, namespace=namespace,
                               parameter_overrides=params(refresh_rate_hz=10.0, **common))
    executor = ActionExecutorNode(context=context, namespace=namespace,
                                  parameter_overrides=params(**common))
    return stub, planner, executor


def _steps(commands) -> np.ndarray:
    """Largest per-tick change of each consecutive command pair, (N-1,)."""
    positions = np.array([conv.trajectory_positions(c, JOINT_NAMES) for c in commands])
    return np.abs(np.diff(positions, axis=0)).max(axis=1)


def test_live_parameters_take_effect(ros_context, tiny_checkpoint):
    namespace = f'/l{uuid.uuid4().hex[:8]}'
    stub, planner, executor = _system(ros_context, tiny_checkpoint, namespace)
    setter = ParameterSetter(context=ros_context, namespace=namespace)
    with spinning(ros_context, [stub, planner, executor, setter]):
        assert wait_for(lambda: len(stub.received()[1]) >= 1 and len(stub.received()[0]) >= 30,
                        timeout=60), f'received {[len(x) for x in stub.received()]}'
        assert setter.set_on(planner, refresh_rate_hz=1.0) == [(True, '')]
        small = 0.002
        assert setter.set_on(executor, max_step=small, blend='none', execute_steps=2,
                             ensemble_decay=0.5) == [(True, '')] * 4
        changed = executor.now()
        count = len(stub.received()[0])
        assert wait_for(lambda: len(stub.received()[0]) >= count + 40, timeout=60)
    assert planner._refresh_timer.timer_period_ns == 1_000_000_000
    assert planner.config.refresh_rate_hz == 1.0
    assert planner.get_parameter('refresh_rate_hz').value == 1.0
    assert executor.core.config.execute_steps == executor.core.timing.execute_steps == 2
    assert executor.core.scheduler.config.blend == 'none'
    assert executor.core.scheduler.config.ensemble_decay == 0.5
    commands = stub.received()[0]
    before = [c for c in commands if conv.stamp_seconds(c.header.stamp) < changed]
    after = [c for c in commands if conv.stamp_seconds(c.header.stamp) > changed + 0.1]
    assert len(after) >= 10
    assert _steps(after).max() <= small + 1e-9, 'the filter still uses the old max_step'
    assert _steps(before).max() > small, 'the policy never moved faster: test proves nothing'


def test_invalid_and_read_only_sets_are_refused_with_the_reason(ros_context, tiny_checkpoint):
    namespace = f'/r{uuid.uuid4().hex[:8]}'
    _, planner, executor = _system(ros_context, tiny_checkpoint, namespace)
    setter = ParameterSetter(context=ros_context, namespace=namespace)
    config = executor.config
    with spinning(ros_context, [planner, executor, setter]):
        cases = {
            'max_step': (5.0, 'max_step'),                      # outside its declared range
            'blend': ('cubic', 'blend must be one of'),          # the dataclass validation
            'max_context_age': (math.inf, 'max_context_age'),
            'checkpoint': ('/elsewhere', 'read-only'),
            'camera_topics': (['a', 'b'], 'read-only'),
        }
        for name, (value, reason) in cases.items():
            [(successful, text)] = setter.set_on(executor, **{name: value})
            assert not successful and reason in text, (name, text)
        [(successful, text)] = setter.set_on(planner, context_topic='other')
        assert not successful and 'read-only' in text
    assert executor.config == config
    assert executor.get_parameter('max_step').value == config.max_step
    assert executor.core.config.safety.max_step == (config.max_step,) * len(JOINT_NAMES)
