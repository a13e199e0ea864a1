"""Lint as a test: docstrings follow the ament pep257 conventions."""

from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINTED = [str(ROOT / d) for d in ('ahawam_ros', 'test', 'launch') if (ROOT / d).is_dir()]


@pytest.mark.linter
def test_pep257():
    code = 'import sys; from ament_pep257.main import main; sys.exit(main(argv=sys.argv[1:]))'
    result = subprocess.run([sys.executable, '-c', code, *LINTED], capture_output=True,
                            text=True, timeout=600)
    problems = [line for line in result.stdout.splitlines() if not line.startswith('checking')]
    assert result.returncode == 0, '\n'.join(problems[-200:]) + result.stderr[-5000:]
