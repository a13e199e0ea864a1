"""The launch's up-front dependency check, against a real ament index written by the test."""

import os
from pathlib import Path

from ahawam_ros.ros.launch_checks import check_launch_dependencies, installed_executable
from ahawam_ros.ros.launch_checks import LaunchDependencyError, RVIZ_EXECUTABLES
import pytest


def _install(prefix: Path, package: str, executable: str) -> None:
    """Register `package` in the ament index under `prefix` with one executable."""
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / package
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    path = prefix / 'lib' / package / executable
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\n')
    path.chmod(0o755)


@pytest.fixture
def prefix(tmp_path, monkeypatch):
    """Make an empty ament prefix of its own the only one searched."""
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path))
    return tmp_path


def test_missing_rviz_packages_fail_before_anything_starts_naming_them(prefix):
    _install(prefix, 'tf2_ros', 'static_transform_publisher')
    with pytest.raises(LaunchDependencyError) as error:
        check_launch_dependencies('false', 'true')
    text = str(error.value)
    assert 'nothing was started' in text and 'use_rviz:=false' in text
    assert 'robot_state_publisher/robot_state_publisher' in text and 'rviz2/rviz2' in text
    assert 'tf2_ros' not in text.split('not found')[0]  # installed: not listed as missing


def test_all_rviz_packages_present_pass(prefix):
    for package, executable in RVIZ_EXECUTABLES:
        _install(prefix, package, executable)
    assert check_launch_dependencies('False', 'True') == (False, True)


def test_a_package_without_its_executable_counts_as_missing(prefix):
    _install(prefix, 'rviz2', 'something_else')
    assert not installed_executable('rviz2', 'rviz2')
    assert not installed_executable('not_a_package', 'rviz2')
    os.chmod(prefix / 'lib' / 'rviz2' / 'something_else', 0o644)
    assert not installed_executable('rviz2', 'something_else')


def test_options_off_check_nothing_and_bad_flags_are_named(prefix):
    assert check_launch_dependencies('false', '0') == (False, False)
    with pytest.raises(LaunchDependencyError, match='use_rviz'):
        check_launch_dependencies('false', 'maybe')


def test_the_simulator_modules_are_checked_when_use_sim(prefix):
    with pytest.raises(LaunchDependencyError, match='Python module mujoco'):
        check_launch_dependencies('true', 'false', has_module=lambda name: name != 'mujoco')
    assert check_launch_dependencies('true', 'false', has_module=lambda name: True)[0]
