"""Lint as a test: docstrings follow the ament pep257 conventions."""

from pathlib import Path

import ament_pep257.main as ament_pep257
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINTED = [str(ROOT / d) for d in ('ahawam_ros', 'test', 'launch') if (ROOT / d).is_dir()]


@pytest.mark.linter
def test_pep257():
    rc = ament_pep257.main(argv=LINTED)
    assert rc == 0, 'pep257 errors (see the output above)'
