"""The core's Python logging reaches ROS logging in a node process."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.ros

SCRIPT = textwrap.dedent("""
    import logging
    import rclpy
    from ahawam_ros.ros.log_bridge import bridge_core_logging
    bridge_core_logging()
    bridge_core_logging()  # idempotent: one handler
    rclpy.init()
    logging.getLogger('ahawam_ros.runtime.executor_core').error('predict_chunk failed: boom')
    logging.getLogger('ahawam_ros.runtime.worker').warning('slow step')
    logging.getLogger('ahawam_ros.runtime.worker').debug('not shown at INFO')
    logging.getLogger('other_library').error('not ours')
    rclpy.shutdown()
""")


def test_core_records_are_logged_by_ros_once_with_their_severity():
    result = subprocess.run([sys.executable, '-c', SCRIPT], capture_output=True, text=True,
                            timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = output.splitlines()
    errors = [line for line in lines if 'predict_chunk failed: boom' in line]
    assert len(errors) == 1, output  # once: not also by Python's last-resort handler
    assert errors[0].startswith('[ERROR]'), errors
    assert '[ahawam_ros.runtime.executor_core]' in errors[0], errors
    warnings = [line for line in lines if 'slow step' in line]
    assert len(warnings) == 1 and warnings[0].startswith('[WARN]'), output
    assert 'not shown at INFO' not in output
    assert any(line == 'not ours' for line in lines), output  # other loggers: untouched
