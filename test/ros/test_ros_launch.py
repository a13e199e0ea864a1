"""The bimanual launch file declares its arguments and processes (needs `launch_ros`)."""

import importlib.util
from pathlib import Path

import pytest

LAUNCH_FILE = Path(__file__).resolve().parents[2] / 'launch' / 'bimanual.launch.py'
EXPECTED_ARGUMENTS = {'params_file', 'checkpoint', 'use_sim', 'use_rviz', 'use_sim_time',
                      'namespace', 'episode_steps', 'task'}


def _load_launch_module():
    spec = importlib.util.spec_from_file_location('bimanual_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_file_declares_its_arguments_with_descriptions():
    pytest.importorskip('launch', reason='ROS 2 `launch` is not on PyPI; installed by every '
                                         'ROS distro (run this test there)')
    pytest.importorskip('launch_ros', reason='ROS 2 `launch_ros` is not on PyPI')
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node
    description = _load_launch_module().generate_launch_description()
    arguments = [e for e in description.entities if isinstance(e, DeclareLaunchArgument)]
    assert {a.name for a in arguments} == EXPECTED_ARGUMENTS
    assert all(a.description and a.description != 'no description given' for a in arguments)
    executables = {e.node_executable for e in description.entities if isinstance(e, Node)}
    assert {'bringup', 'bimanual_sim', 'robot_state_publisher', 'rviz2'} <= executables
    source = LAUNCH_FILE.read_text()
    assert 'on_exit=Shutdown(' in source  # bringup's exit ends the launch (no lone simulator)
    # The dependency check (launch_checks.py) runs before the first process starts.
    from launch.actions import OpaqueFunction
    kinds = [type(e) for e in description.entities]
    assert kinds.index(OpaqueFunction) < kinds.index(Node)


def test_a_relative_params_file_resolves_for_every_process(tmp_path, monkeypatch):
    pytest.importorskip('launch', reason='ROS 2 `launch` is not on PyPI')
    pytest.importorskip('launch_ros', reason='ROS 2 `launch_ros` is not on PyPI')
    from launch import LaunchContext
    module = _load_launch_module()
    monkeypatch.chdir(tmp_path)  # not in the package: the share's config/ is meant
    resolved = Path(module.ParamsFile('config/bimanual.yaml').perform(LaunchContext()))
    assert resolved.is_absolute() and resolved.is_file()
    with pytest.raises(FileNotFoundError, match='not found'):
        module.ParamsFile('config/missing.yaml').perform(LaunchContext())


def test_launch_arguments_match_the_documented_set():
    """Without `launch`: the file's argument table itself is checked (it is plain data)."""
    source = LAUNCH_FILE.read_text()
    for name in EXPECTED_ARGUMENTS:
        assert f"('{name}'," in source, name
