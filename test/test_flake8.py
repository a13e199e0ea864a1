"""Lint as a test: flake8 with the ament configuration (99 columns, google imports, quotes)."""

from pathlib import Path

import ament_flake8.main as ament_flake8
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINTED = [str(ROOT / d) for d in ('ahawam_ros', 'test', 'launch') if (ROOT / d).is_dir()]


@pytest.mark.linter
def test_flake8():
    rc, errors = ament_flake8.main_with_errors(argv=LINTED)
    assert rc == 0, f'{len(errors)} flake8 error(s):\n' + '\n'.join(errors)
