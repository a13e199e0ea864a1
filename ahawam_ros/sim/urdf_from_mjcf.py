"""
Generate the rviz URDF of the two ViperX arms from gym-aloha's installed MJCF.

    python -m ahawam_ros.sim.urdf_from_mjcf [--out urdf/aloha_bimanual.urdf]

Kinematics (link origins, joint axes and ranges) come from the compiled MuJoCo model, so the
URDF matches the simulator exactly. Visuals are boxes: the bounding box of each mesh in its
own frame (the meshes themselves are not copied). Joint names are robot.JOINT_NAMES: each
gripper is a `<arm>_gripper` joint in normalised units (0 closed .. 1 open) driving a
massless dummy link, and the two finger slides mimic it in metres. Every camera of the scene
gets a `<camera>_optical_frame` link (z forward, x right, y down), the frame_id of its images.
"""

import argparse
from pathlib import Path
import sys
from typing import List, Optional, Sequence
import xml.etree.ElementTree as ET

from ahawam_ros.robot import ARMS, JOINT_LOWER, JOINT_NAMES, JOINT_UPPER
from ahawam_ros.sim.aloha_env import GRIPPER_SPAN
from ahawam_ros.sim.tasks import get_task
from gym_aloha.constants import PUPPET_GRIPPER_POSITION_CLOSE
import mujoco
import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parents[2] / 'urdf' / 'aloha_bimanual.urdf'
ROOT_LINK = 'world'
DEFAULT_EFFORT = 100.0  # N m or N where the MJCF sets no force range (rviz ignores it)
DEFAULT_VELOCITY = 3.14  # rad/s or m/s, likewise a placeholder
_OPTICAL = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])  # MuJoCo camera -> optical


def _fmt(values: Sequence[float]) -> str:
    return ' '.join(f'{0.0 if abs(v) < 1e-12 else v:.6g}' for v in values)


def _rpy(rot: np.ndarray) -> List[float]:
    """Fixed-axis roll, pitch, yaw of a rotation matrix (R = Rz(yaw) Ry(pitch) Rx(roll))."""
    pitch = np.arctan2(-rot[2, 0], np.hypot(rot[2, 1], rot[2, 2]))
    return [np.arctan2(rot[2, 1], rot[2, 2]), pitch, np.arctan2(rot[1, 0], rot[0, 0])]


def _quat_to_mat(quat: np.ndarray) -> np.ndarray:
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat, float))
    return mat.reshape(3, 3)


def _origin(parent: ET.Element, pos: np.ndarray, rot: np.ndarray) -> None:
    ET.SubElement(parent, 'origin', xyz=_fmt(pos), rpy=_fmt(_rpy(rot)))


def _link_name(body_name: str) -> str:
    """'vx300s_left' -> 'left_base_link', 'vx300s_left/wrist_link' -> 'left_wrist_link'."""
    arm_part, _, rest = body_name.partition('/')
    return f'{arm_part.split("_")[1]}_{rest or "base_link"}'


class _UrdfBuilder:
    """Walks the compiled model and emits URDF links and joints."""

    def __init__(self, model: mujoco.MjModel) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        mujoco.mj_forward(model, self.data)
        self.robot = ET.Element('robot', name='aloha_bimanual')
        ET.SubElement(self.robot, 'link', name=ROOT_LINK)
        material = ET.SubElement(self.robot, 'material', name='viperx_grey')
        ET.SubElement(material, 'color', rgba='0.6 0.6 0.6 1')

    def link(self, name: str, body: Optional[int] = None) -> None:
        link = ET.SubElement(self.robot, 'link', name=name)
        if body is None:
            return
        for geom in np.flatnonzero(self.model.geom_bodyid == body):
            rot = _quat_to_mat(self.model.geom_quat[geom])
            center, half = self.model.geom_aabb[geom, :3], self.model.geom_aabb[geom, 3:]
            visual = ET.SubElement(link, 'visual', name=self.model.geom(geom).name)
            _origin(visual, self.model.geom_pos[geom] + rot @ center, rot)
            geometry = ET.SubElement(visual, 'geometry')
            ET.SubElement(geometry, 'box', size=_fmt(2.0 * half))
            ET.SubElement(visual, 'material', name='viperx_grey')

    def joint(self, name: str, kind: str, parent: str, child: str, pos: np.ndarray,
              rot: np.ndarray, axis: Optional[np.ndarray] = None,
              limits: Optional[Sequence[float]] = None, effort: float = DEFAULT_EFFORT,
              mimic: Optional[Sequence] = None) -> None:
        joint = ET.SubElement(self.robot, 'joint', name=name, type=kind)
        _origin(joint, pos, rot)
        ET.SubElement(joint, 'parent', link=parent)
        ET.SubElement(joint, 'child', link=child)
        if axis is not None:
            ET.SubElement(joint, 'axis', xyz=_fmt(axis))
        if limits is not None:
            ET.SubElement(joint, 'limit', lower=_fmt(limits[:1]), upper=_fmt(limits[1:]),
                          effort=_fmt([effort]), velocity=_fmt([DEFAULT_VELOCITY]))
        if mimic is not None:
            ET.SubElement(joint, 'mimic', joint=mimic[0], multiplier=_fmt([mimic[1]]),
                          offset=_fmt([mimic[2]]))

    def effort(self, joint: int) -> float:
        model = self.model
        for act in range(model.nu):
            if model.actuator_trnid[act, 0] == joint and model.actuator_forcelimited[act]:
                return float(model.actuator_forcerange[act, 1])
        return DEFAULT_EFFORT

    def arm(self, arm: str) -> None:
        """Emit the links and joints of one arm's body subtree."""
        model = self.model
        root = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f'vx300s_{arm}')
        for body in range(root, model.nbody):
            name = model.body(body).name
            if not (body == root or name.startswith(f'vx300s_{arm}/')) or 'focus' in name:
                continue
            parent_body = model.body(model.body_parentid[body]).name
            parent = ROOT_LINK if body == root else _link_name(parent_body)
            self.link(_link_name(name), body)
            pos, rot = model.body_pos[body], _quat_to_mat(model.body_quat[body])
            if model.body_jntnum[body] == 0:
                link = _link_name(name)
                self.joint(f'{link}_fixed', 'fixed', parent, link, pos, rot)
                continue
            jnt = model.body_jntadr[body]
            assert np.allclose(model.jnt_pos[jnt], 0.0), 'joints must sit at their body origin'
            joint_name = f'{arm}_{model.joint(jnt).name.split("/")[1]}'
            finger = model.jnt_type[jnt] == mujoco.mjtJoint.mjJNT_SLIDE
            sign = np.sign(model.jnt_range[jnt].sum()) if finger else 1.0
            mimic = (f'{arm}_gripper', sign * GRIPPER_SPAN, sign * PUPPET_GRIPPER_POSITION_CLOSE)
            self.joint(joint_name, 'prismatic' if finger else 'revolute', parent,
                       _link_name(name), pos, rot, axis=model.jnt_axis[jnt],
                       limits=model.jnt_range[jnt], effort=self.effort(jnt),
                       mimic=mimic if finger else None)
        gripper_link = f'{arm}_gripper_link'
        index = JOINT_NAMES.index(f'{arm}_gripper')
        self.link(f'{arm}_gripper_input_link')
        self.joint(f'{arm}_gripper', 'revolute', gripper_link, f'{arm}_gripper_input_link',
                   np.zeros(3), np.eye(3), axis=np.array([1.0, 0.0, 0.0]),
                   limits=(JOINT_LOWER[index], JOINT_UPPER[index]))

    def cameras(self) -> None:
        """Emit a fixed optical frame per camera, posed as at the reference configuration."""
        model, data = self.model, self.data
        for cam in range(model.ncam):
            body = model.cam_bodyid[cam]
            body_rot = data.xmat[body].reshape(3, 3)
            rot = body_rot.T @ data.cam_xmat[cam].reshape(3, 3) @ _OPTICAL
            pos = body_rot.T @ (data.cam_xpos[cam] - data.xpos[body])
            parent = ROOT_LINK if body == 0 else _link_name(model.body(body).name)
            frame = f'{model.camera(cam).name}_optical_frame'
            self.link(frame)
            self.joint(f'{frame}_fixed', 'fixed', parent, frame, pos, rot)


def build_urdf(task: str = 'transfer_cube') -> str:
    """Return the URDF text of both arms and the scene cameras of `task`'s scene."""
    model = mujoco.MjModel.from_xml_path(str(get_task(task).xml_path()))
    builder = _UrdfBuilder(model)
    for arm in ARMS:
        builder.arm(arm)
    builder.cameras()
    ET.indent(builder.robot, space='  ')
    header = ('<?xml version="1.0"?>\n<!-- Generated by ahawam_ros/sim/urdf_from_mjcf.py from '
              "gym-aloha's MJCF; do not edit by hand. -->\n")
    return header + ET.tostring(builder.robot, encoding='unicode') + '\n'


def main(argv: Optional[List[str]] = None) -> int:
    """Write the URDF (default: the package's urdf/aloha_bimanual.urdf)."""
    parser = argparse.ArgumentParser(prog='python -m ahawam_ros.sim.urdf_from_mjcf',
                                     description=__doc__.strip().splitlines()[0])
    parser.add_argument('--out', type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(build_urdf())
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
