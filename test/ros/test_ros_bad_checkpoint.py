"""A node process given a malformed checkpoint exits with one line naming it, code 2."""

import os
from pathlib import Path
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.ros


def test_bringup_with_a_malformed_checkpoint_exits_2_with_one_line(tiny_checkpoint, tmp_path):
    checkpoint = tmp_path / 'bad'
    shutil.copytree(tiny_checkpoint, checkpoint)
    (checkpoint / 'config.json').write_text('{}')
    result = subprocess.run(
        [sys.executable, '-m', 'ahawam_ros.ros.bringup', '--checkpoint', str(checkpoint),
         '--ros-args', '-r', '__ns:=/bad_checkpoint'],
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONUNBUFFERED='1'))
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output
    assert 'Traceback' not in output, output
    errors = [line for line in output.splitlines() if 'error' in line.lower()]
    assert errors == [f"bringup: error: checkpoint {Path(checkpoint) / 'config.json'}: field "
                      "'model': missing (present: [])"], output
