"""The ROS-free core imports and works in an interpreter where rclpy cannot be imported."""

import subprocess
import sys
import textwrap

# Run in a fresh interpreter: a meta-path finder makes every ROS module unimportable, then
# every module of the core is imported and exercised.
SCRIPT = textwrap.dedent("""
    import importlib, pkgutil, sys

    # the ROS shell, and the one bench entry point that runs a ROS graph on its own
    BLOCKED = ('rclpy', 'rosidl', 'rpyutils', 'cv_bridge', 'launch', 'ament_index_python',
               'ahawam_ros.msg', 'ahawam_ros.srv', 'ahawam_ros.ros', 'ahawam_ros.bench.handoff')

    class BlockRos:
        def find_spec(self, name, path=None, target=None):
            if name.endswith('_msgs') or any(
                    name == b or name.startswith(b + '.') for b in BLOCKED):
                raise ModuleNotFoundError(f'blocked for this test: {name}', name=name)
            return None

    sys.meta_path.insert(0, BlockRos())
    try:
        import rclpy  # noqa: F401
        raise SystemExit('the blocker failed: rclpy imported')
    except ModuleNotFoundError:
        pass

    import ahawam_ros
    core = [m.name for m in pkgutil.walk_packages(ahawam_ros.__path__, 'ahawam_ros.')
            if not any(m.name == b or m.name.startswith(b + '.') for b in BLOCKED)]
    for name in sorted(set(core)):
        if name.endswith('__main__'):
            continue
        importlib.import_module(name)
    print('imported', len(core), 'core modules')

    from ahawam_ros import cli
    assert cli.main(['info']) == 0
    from ahawam_ros.data.typestore import ahawam_typestore
    assert 'ahawam_ros/msg/ActionChunk' in ahawam_typestore().types
    leaked = sorted(m for m in sys.modules if m.startswith(('rclpy', 'ahawam_ros.ros')))
    assert not leaked, leaked
    print('core works without ROS')
""")


def test_core_imports_and_works_without_rclpy():
    result = subprocess.run([sys.executable, '-c', SCRIPT], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'core works without ROS' in result.stdout
    assert 'ROS 2 (rclpy)            no' in result.stdout
