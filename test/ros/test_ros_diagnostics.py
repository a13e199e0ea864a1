"""Truthful diagnostics and a bounded log from the executor node in real graphs."""

import threading
import time
import uuid

from ahawam_ros.ros.action_executor_node import ActionExecutorNode
from ahawam_ros.ros.world_planner_node import WorldPlannerNode
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import pytest
from rcl_interfaces.msg import Log
from rclpy.node import Node
from robot_stub import RobotStub
from ros_test_utils import params, spinning, wait_for

pytestmark = pytest.mark.ros
VIEWS, HEIGHT, WIDTH = 2, 16, 16  # the tiny preset's cameras
CAMERAS = [f'cameras/cam{v}/image_raw' for v in range(VIEWS)]


class Listener(Node):
    """Records /diagnostics statuses and /rosout lines."""

    def __init__(self, **kwargs):
        super().__init__(f'listener_{uuid.uuid4().hex[:6]}', **kwargs)
        self._lock = threading.Lock()
        self.statuses, self.lines = [], []
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 50)
        self.create_subscription(Log, '/rosout', self._on_log, 200)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self._lock:
            self.statuses.extend(msg.status)

    def _on_log(self, msg: Log) -> None:
        with self._lock:
            self.lines.append((time.monotonic(), msg.name, msg.msg))

    def statuses_of(self, prefix: str):
        with self._lock:
            return [s for s in self.statuses if s.name.startswith(prefix)]

    def lines_of(self, logger: str, since: float):
        with self._lock:
            return [text for t, name, text in self.lines if name == logger and t >= since]


def _values(status: DiagnosticStatus) -> dict:
    return {kv.key: kv.value for kv in status.values}


def test_holding_without_inputs_warns_then_errs_naming_topics(ros_context, tiny_checkpoint):
    listener = Listener(context=ros_context)
    robots = [f'/d{uuid.uuid4().hex[:6]}', f'/d{uuid.uuid4().hex[:6]}']  # one /diagnostics
    executors = [ActionExecutorNode(context=ros_context, namespace=ns,
                                    parameter_overrides=params(
                                        checkpoint=tiny_checkpoint, camera_topics=CAMERAS,
                                        diagnostics_period=0.2, hold_error_after=1.5))
                 for ns in robots]
    names = [f'{ns}/action_executor: executor' for ns in robots]
    with spinning(ros_context, [listener] + executors):
        assert wait_for(lambda: all(any(s.level == DiagnosticStatus.ERROR
                                        for s in listener.statuses_of(name)) for name in names),
                        timeout=30), [s.name for s in listener.statuses]
    for ns, name in zip(robots, names):
        statuses = listener.statuses_of(name)
        assert all(s.name == name for s in statuses)
        levels = [s.level for s in statuses]
        assert DiagnosticStatus.OK not in levels, 'holding reported as OK'
        assert levels[0] == DiagnosticStatus.WARN and levels[-1] == DiagnosticStatus.ERROR
        last = statuses[-1]
        assert f'{ns}/joint_states' in last.message and 'no_joint_state' in last.message
        # a hold is not an executed command, and with no joint state nothing is sent at all
        assert float(_values(last)['command_rate_hz']) == 0.0, _values(last)
        assert float(_values(last)['sent_rate_hz']) == 0.0, _values(last)
        missing = _values(last)['missing_topics'].split()
        assert missing == [f'{ns}/joint_states', f'{ns}/cameras/cam0/image_raw',
                           f'{ns}/cameras/cam1/image_raw']


def test_flapping_inputs_log_a_bounded_number_of_lines(ros_context, tiny_checkpoint):
    namespace = f'/f{uuid.uuid4().hex[:8]}'
    stub = RobotStub(VIEWS, HEIGHT, WIDTH, context=ros_context, namespace=namespace)
    common = {'checkpoint': tiny_checkpoint, 'camera_topics': stub.camera_topics}
    planner = WorldPlannerNode(context=ros_context, namespace=namespace,
                               parameter_overrides=params(refresh_rate_hz=10.0, **common))
    executor = ActionExecutorNode(context=ros_context, namespace=namespace,
                                  parameter_overrides=params(transition_log_period=2.0,
                                                             **common))
    listener = Listener(context=ros_context)
    window = 6.0
    with spinning(ros_context, [stub, planner, executor, listener]):
        assert wait_for(lambda: len(stub.received()[0]) >= 20, timeout=60)
        start, transitions = time.monotonic(), executor.monitor.transitions
        while time.monotonic() - start < window:  # joint states stale every other 0.3 s
            stub.publish_joints = not stub.publish_joints
            time.sleep(0.3)
        stub.publish_joints = True
        time.sleep(0.5)
    flapped = executor.monitor.transitions - transitions
    lines = [text for text in listener.lines_of(f'{namespace[1:]}.action_executor', start)
             if text.startswith(('holding', 'executing'))]
    assert flapped >= 10, f'the inputs did not flap ({flapped} transitions): proves nothing'
    assert 1 <= len(lines) <= window / 2.0 + 2, lines
    assert any('not logged' in text for text in lines), lines


def test_the_planner_reports_ok_while_refreshing_and_names_stale_cameras(
        ros_context, tiny_checkpoint):
    namespace = f'/p{uuid.uuid4().hex[:8]}'
    stub = RobotStub(VIEWS, HEIGHT, WIDTH, context=ros_context, namespace=namespace)
    planner = WorldPlannerNode(context=ros_context, namespace=namespace,
                               parameter_overrides=params(
                                   checkpoint=tiny_checkpoint, camera_topics=stub.camera_topics,
                                   refresh_rate_hz=10.0, diagnostics_period=0.2,
                                   error_after=1.0))
    listener = Listener(context=ros_context)
    name = f'{namespace}/world_planner: planner'
    with spinning(ros_context, [stub, planner, listener]):
        assert wait_for(lambda: any(s.level == DiagnosticStatus.OK
                                    for s in listener.statuses_of(name)), timeout=60)
        stub.publish_cameras = False  # every camera falls silent: frames age, no context
        assert wait_for(lambda: listener.statuses_of(name)[-1].level == DiagnosticStatus.ERROR,
                        timeout=30)
    last = listener.statuses_of(name)[-1]
    assert 'frames too old' in last.message and f'{namespace}/cameras/' in last.message
    assert float(_values(last)['published']) >= 1
