"""The committed URDF: joint names and limits, regeneration, and kinematics equal to MuJoCo."""

from pathlib import Path
import xml.etree.ElementTree as ET

from ahawam_ros.robot import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER
import numpy as np
import pytest

URDF = Path(__file__).resolve().parents[2] / 'urdf' / 'aloha_bimanual.urdf'


@pytest.fixture(scope='module')
def robot():
    return ET.parse(URDF).getroot()


def _joints(robot):
    return {j.get('name'): j for j in robot.findall('joint')}


def test_urdf_has_the_fourteen_joints_with_robot_limits(robot):
    joints = _joints(robot)
    driven = [name for name, j in joints.items()
              if j.get('type') != 'fixed' and j.find('mimic') is None]
    assert sorted(driven) == sorted(JOINT_NAMES)
    for name, lower, upper in zip(JOINT_NAMES, JOINT_LOWER, JOINT_UPPER):
        limit = joints[name].find('limit')
        assert float(limit.get('lower')) == pytest.approx(lower, abs=1e-9), name
        assert float(limit.get('upper')) == pytest.approx(upper, abs=1e-9), name
    mimics = {name: j.find('mimic').get('joint') for name, j in joints.items()
              if j.find('mimic') is not None}
    assert mimics == {f'{arm}_{side}_finger': f'{arm}_gripper'
                      for arm in ('left', 'right') for side in ('left', 'right')}
    links = {link.get('name') for link in robot.findall('link')}
    assert {'world', 'top_optical_frame', 'left_wrist_optical_frame'} <= links
    for joint in joints.values():
        assert {joint.find('parent').get('link'), joint.find('child').get('link')} <= links


def _rotation(rpy):
    r, p, y = rpy
    rx = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])
    ry = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _axis_motion(joint, value):
    axis = np.array([float(v) for v in joint.find('axis').get('xyz').split()])
    if joint.get('type') == 'prismatic':
        return np.eye(3), axis * value
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(value) * k + (1 - np.cos(value)) * k @ k, np.zeros(3)


def _forward(robot, values, link):
    """Return the world pose (R, p) of `link` for joint values {name: value}."""
    by_child = {j.find('child').get('link'): j for j in robot.findall('joint')}
    joints = _joints(robot)
    if link == 'world':
        return np.eye(3), np.zeros(3)
    joint = by_child[link]
    rot, pos = _forward(robot, values, joint.find('parent').get('link'))
    origin = joint.find('origin')
    offset = np.array([float(v) for v in origin.get('xyz').split()])
    pos, rot = pos + rot @ offset, rot @ _rotation([float(v) for v in origin.get('rpy').split()])
    if joint.get('type') == 'fixed':
        return rot, pos
    mimic = joint.find('mimic')
    value = values[joint.get('name')] if mimic is None else (
        float(mimic.get('multiplier')) * values[mimic.get('joint')] + float(mimic.get('offset')))
    motion_rot, motion_pos = _axis_motion(joints[joint.get('name')], value)
    return rot @ motion_rot, pos + rot @ motion_pos


@pytest.mark.sim
def test_urdf_kinematics_equal_mujoco(robot):
    pytest.importorskip('gym_aloha', reason='the simulator is not installed')
    import mujoco
    from ahawam_ros.sim.aloha_env import AlohaSim, command_to_ctrl, SimConfig
    with AlohaSim(SimConfig(cameras=())) as sim:
        rng = np.random.default_rng(0)
        values = rng.uniform(np.array(JOINT_LOWER) * 0.8, np.array(JOINT_UPPER) * 0.8)
        sim.data.qpos[:16] = command_to_ctrl(values)  # fingers: the mimic relation
        mujoco.mj_forward(sim.model, sim.data)
        named = dict(zip(JOINT_NAMES, values))
        for arm in ('left', 'right'):
            for link in ('gripper_link', 'left_finger_link', 'right_finger_link'):
                rot, pos = _forward(robot, named, f'{arm}_{link}')
                body = sim.data.body(f'vx300s_{arm}/{link}')
                np.testing.assert_allclose(pos, body.xpos, atol=2e-5)
                np.testing.assert_allclose(rot, body.xmat.reshape(3, 3), atol=2e-5)
        cam = sim.data.camera('left_wrist')
        rot, pos = _forward(robot, named, 'left_wrist_optical_frame')
        np.testing.assert_allclose(pos, cam.xpos, atol=2e-5)
        # Optical z (forward) is MuJoCo's camera -z; optical y (down) its -y.
        np.testing.assert_allclose(rot[:, 2], -cam.xmat.reshape(3, 3)[:, 2], atol=2e-5)


@pytest.mark.sim
def test_committed_urdf_is_what_the_generator_writes():
    pytest.importorskip('gym_aloha', reason='the simulator is not installed')
    from ahawam_ros.sim.urdf_from_mjcf import build_urdf
    assert build_urdf() == URDF.read_text(), 'regenerate: python -m ahawam_ros.sim.urdf_from_mjcf'
