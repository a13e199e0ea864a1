"""Process-level behaviour: the bringup's shutdown, and a context reader in another process."""

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

from ahawam_ros.robot import JOINT_NAMES
from ahawam_ros.ros import conversions as conv
from ahawam_ros.ros.spin import run_nodes
from ahawam_ros.ros.world_planner_node import WorldPlannerNode
import numpy as np
import pytest
from robot_stub import RobotStub
from ros_test_utils import params, spinning, wait_for

pytestmark = pytest.mark.ros
VIEWS, HEIGHT, WIDTH = 2, 16, 16


def _params_file(tmp_path, cameras) -> str:
    topics = '[' + ', '.join(cameras) + ']'
    text = textwrap.dedent(f"""\
        /**/world_planner:
          ros__parameters:
            checkpoint: /nonexistent/overridden/by/the/option
            camera_topics: {topics}
            refresh_rate_hz: 10.0
        /**/action_executor:
          ros__parameters:
            checkpoint: /nonexistent/overridden/by/the/option
            camera_topics: {topics}
        """)
    path = tmp_path / 'params.yaml'
    path.write_text(text)
    return str(path)


def test_sigterm_sends_a_final_hold_and_exits_zero(ros_context, tiny_checkpoint, tmp_path):
    namespace = f'/p{uuid.uuid4().hex[:8]}'
    stub = RobotStub(VIEWS, HEIGHT, WIDTH, context=ros_context, namespace=namespace)
    command = [sys.executable, '-m', 'ahawam_ros.ros.bringup', '--checkpoint', tiny_checkpoint,
               '--ros-args', '--params-file', _params_file(tmp_path, stub.camera_topics),
               '-r', f'__ns:={namespace}']
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=dict(os.environ, PYTHONUNBUFFERED='1'))
    try:
        with spinning(ros_context, [stub]):
            flowing = wait_for(lambda: len(stub.received()[1]) >= 1
                               and len(stub.received()[0]) >= 20, timeout=60)
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=30)
            time.sleep(0.5)  # let the last reliable messages arrive
    finally:
        if process.poll() is None:
            process.kill()
    output = process.stdout.read()
    assert flowing, f'no commands arrived:\n{output}'
    assert returncode == 0, output
    assert 'final hold sent' in output, output
    assert 'Traceback' not in output, output
    commands = stub.received()[0]
    last, before = (conv.trajectory_positions(c, JOINT_NAMES) for c in commands[-1:-3:-1])
    assert np.array_equal(last, before), 'the last command is not a hold of the one before'


FOREIGN_READER = textwrap.dedent("""
    import sys
    import rclpy
    from ahawam_ros.msg import WorldContext
    from ahawam_ros.runtime.context_slot import ContextUnavailableError, resolve
    rclpy.init()
    node = rclpy.create_node('foreign_reader')
    result = []
    def on_context(msg):
        try:
            resolve(msg.handle)
            result.append('RESOLVED (wrong)')
        except ContextUnavailableError as error:
            result.append(f'ERROR: {error}')
    node.create_subscription(WorldContext, sys.argv[1], on_context, 1)
    while not result:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(result[0], flush=True)
""")


def test_a_reader_in_another_process_gets_a_clear_error(ros_context, tiny_checkpoint):
    namespace = f'/f{uuid.uuid4().hex[:8]}'
    stub = RobotStub(VIEWS, HEIGHT, WIDTH, context=ros_context, namespace=namespace)
    planner = WorldPlannerNode(context=ros_context, namespace=namespace,
                               parameter_overrides=params(checkpoint=tiny_checkpoint,
                                                          camera_topics=stub.camera_topics))
    reader = subprocess.Popen([sys.executable, '-c', FOREIGN_READER,
                               f'{namespace}/world_context'],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with spinning(ros_context, [stub, planner]):
            output, _ = reader.communicate(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
    assert output.startswith('ERROR: '), output
    assert 'must run in one process' in output and str(reader.pid) in output


def test_a_bad_checkpoint_is_one_line_and_exit_code_2(tmp_path, capfd):
    """In this process (torch is loaded already): what a node's `main` returns and logs."""
    missing = tmp_path / 'no_such_checkpoint'
    core_logger = logging.getLogger('ahawam_ros')
    saved = (list(core_logger.handlers), core_logger.propagate, core_logger.level)
    try:
        code = run_nodes(lambda: [WorldPlannerNode()],
                         args=['planner', '--ros-args', '-p', f'checkpoint:={missing}'])
    finally:
        core_logger.handlers[:], core_logger.propagate = saved[0], saved[1]
        core_logger.setLevel(saved[2])
    output = capfd.readouterr().err
    assert code == 2, output
    assert 'Traceback' not in output, output
    errors = [line for line in output.splitlines() if 'error' in line.lower()]
    assert len(errors) == 1 and ': error: ' in errors[0] and str(missing) in errors[0], output


def test_bringup_resolves_a_relative_params_file(tmp_path, monkeypatch, capsys):
    """And names a missing one in one line (exit 2), instead of rcl's traceback."""
    from ahawam_ros.paths import system_params_file
    from ahawam_ros.ros import bringup
    monkeypatch.chdir(tmp_path)  # config/bimanual.yaml is not here: the package share has it
    resolved = bringup.resolve_params_files(['bringup', '--ros-args', '--params-file',
                                             'config/bimanual.yaml'])
    assert resolved[-1] == str(system_params_file())
    (tmp_path / 'mine.yaml').write_text('{}\n')
    assert bringup.resolve_params_files(['b', '--params-file', 'mine.yaml'])[-1] == str(
        tmp_path / 'mine.yaml')  # the working directory first
    assert bringup.main(['bringup', '--ros-args', '--params-file', 'nowhere/x.yaml']) == 2
    error = capsys.readouterr().err
    assert error.startswith('bringup: error: parameter file nowhere/x.yaml not found'), error
    assert len(error.strip().splitlines()) == 1 and 'Traceback' not in error
