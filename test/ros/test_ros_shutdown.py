"""
Shutdown as a terminal or `ros2 launch` does it: signals to a whole process group.

The bringup (tiny checkpoint) and the simulator run as real processes in one process group of
their own, as under `ros2 launch`; a terminal Ctrl-C reaches every process of the group and
launch then forwards its own SIGINT (later SIGTERM). Every pattern must end both processes
with exit code 0, no traceback, and the final hold on the command topic.
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

from ahawam_ros.robot import JOINT_NAMES
from ahawam_ros.ros import conversions as conv
from ahawam_ros.ros.qos import COMMAND_QOS
import numpy as np
import pytest
from rclpy.node import Node
from ros_test_utils import spinning, wait_for
from trajectory_msgs.msg import JointTrajectory

pytestmark = [pytest.mark.ros, pytest.mark.sim, pytest.mark.slow]
EXIT_BOUND_S = 10.0  # generous on a loaded 2-core machine; the target is 3 s
# Two small cameras: the tiny preset has two views; frames are resized to its input.
PARAMS = textwrap.dedent("""\
    /**:
      ros__parameters:
        camera_topics: [cameras/top/image_raw, cameras/left_wrist/image_raw]
        resize_images: true
    /**/bimanual_sim:
      ros__parameters:
        cameras: [top, left_wrist]
        image_height: 48
        image_width: 64
    """)


class CommandRecorder(Node):
    """Records each command with the monotonic time it arrived."""

    def __init__(self, **kwargs):
        super().__init__('command_recorder', **kwargs)
        self._lock = threading.Lock()
        self.commands = []  # (arrival time, (A,) positions)
        self.create_subscription(JointTrajectory, 'joint_trajectory', self._on_command,
                                 COMMAND_QOS)

    def _on_command(self, msg: JointTrajectory) -> None:
        positions = conv.trajectory_positions(msg, JOINT_NAMES)
        with self._lock:
            self.commands.append((time.monotonic(), positions))

    def received(self):
        with self._lock:
            return list(self.commands)


def _start(module: str, args, log, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, '-m', module] + args, stdout=log,
                            stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED='1'),
                            **popen)


def _stop_all(processes) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize('signals', [
    (signal.SIGINT, signal.SIGINT),   # terminal Ctrl-C, then launch's own SIGINT
    (signal.SIGINT, signal.SIGTERM),  # Ctrl-C, then SIGTERM while stopping
], ids=['int-int', 'int-term'])  # SIGTERM alone: test_ros_process.py
def test_group_signals_end_every_node_with_a_final_hold(ros_context, tiny_checkpoint,
                                                        tmp_path, signals):
    namespace = f'/s{uuid.uuid4().hex[:8]}'
    params_file = tmp_path / 'params.yaml'
    params_file.write_text(PARAMS)
    ros_args = ['--ros-args', '--params-file', str(params_file), '-r', f'__ns:={namespace}']
    logs = {name: open(tmp_path / f'{name}.log', 'w+') for name in ('bringup', 'sim')}
    recorder = CommandRecorder(context=ros_context, namespace=namespace)
    bringup = _start('ahawam_ros.ros.bringup', ['--checkpoint', tiny_checkpoint] + ros_args,
                     logs['bringup'], process_group=0)
    sim = _start('ahawam_ros.ros.bimanual_sim_node', ros_args, logs['sim'],
                 process_group=bringup.pid)
    processes = (bringup, sim)
    try:
        with spinning(ros_context, [recorder]):
            flowing = wait_for(lambda: len(recorder.received()) >= 20, timeout=120)
            sent = time.monotonic()
            for signum in signals:
                os.killpg(bringup.pid, signum)
                time.sleep(0.05)
            ended = [wait_for(lambda p=p: p.poll() is not None, timeout=EXIT_BOUND_S)
                     for p in processes]
            time.sleep(0.3)  # the last reliable messages
    finally:
        _stop_all(processes)
    output = {}
    for name, log in logs.items():
        log.seek(0)
        output[name] = log.read()
        log.close()
    assert flowing, f'no commands arrived:\n{output["bringup"]}\n{output["sim"]}'
    for name, process, done in zip(('bringup', 'sim'), processes, ended):
        text = output[name]
        assert done, f'{name} still ran {EXIT_BOUND_S} s after the signals:\n{text}'
        assert process.returncode == 0, f'{name} exited {process.returncode}:\n{text}'
        assert 'Traceback' not in text and 'terminate called' not in text, text
    assert 'final hold sent' in output['bringup'], output['bringup']
    commands = recorder.received()
    after = [positions for arrived, positions in commands if arrived >= sent]
    assert after, 'no command arrived after the signals: the final hold is missing'
    assert np.array_equal(commands[-1][1], commands[-2][1]), 'the last command is not a hold'
