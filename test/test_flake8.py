"""Lint as a test: flake8 with the ament configuration (99 columns, google imports, quotes)."""

from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINTED = [str(ROOT / d) for d in ('ahawam_ros', 'test', 'launch') if (ROOT / d).is_dir()]


@pytest.mark.linter
def test_flake8():
    # A fresh interpreter: flake8 forks workers, which is unsafe in a process that already
    # runs torch and rclpy threads (as the test session does).
    code = 'import sys; from ament_flake8.main import main; sys.exit(main(argv=sys.argv[1:]))'
    result = subprocess.run([sys.executable, '-c', code, *LINTED], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
