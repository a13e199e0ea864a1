"""
Forward kinematics of the arms from the shipped URDF (numpy; ROS-free).

Used to draw a planned joint-space action chunk as gripper paths in rviz. Only the joint tree
is read: origins (xyz, rpy), axes and types (revolute, continuous, prismatic, fixed).
Shapes: K chunk steps, A joints.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence
import xml.etree.ElementTree as ElementTree

import numpy as np

URDF_PATH = Path(__file__).resolve().parents[1] / 'urdf' / 'aloha_bimanual.urdf'


@dataclass(frozen=True)
class UrdfJoint:
    """One joint of the tree: parent -> child through origin, then motion about/along axis."""

    name: str
    kind: str
    parent: str
    child: str
    origin: np.ndarray  # (4, 4)
    axis: np.ndarray  # (3,)


def _rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = (np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch),
                              np.cos(yaw), np.sin(yaw))
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    x, y, z = axis
    c, s, t = np.cos(angle), np.sin(angle), 1.0 - np.cos(angle)
    return np.array([[t * x * x + c, t * x * y - s * z, t * x * z + s * y],
                     [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
                     [t * x * z - s * y, t * y * z + s * x, t * z * z + c]])


def _floats(text: str, default: str) -> np.ndarray:
    return np.array([float(v) for v in (text or default).split()])


def load_joints(path: Path = URDF_PATH) -> Dict[str, UrdfJoint]:
    """Parse the URDF's joints into a child-link -> joint map."""
    joints = {}
    for element in ElementTree.parse(path).getroot().iter('joint'):
        origin = element.find('origin')
        transform = np.eye(4)
        if origin is not None:
            transform[:3, :3] = _rpy_matrix(*_floats(origin.get('rpy'), '0 0 0'))
            transform[:3, 3] = _floats(origin.get('xyz'), '0 0 0')
        axis = element.find('axis')
        axis_xyz = _floats(None if axis is None else axis.get('xyz'), '1 0 0')
        child = element.find('child').get('link')
        joints[child] = UrdfJoint(element.get('name'), element.get('type'),
                                  element.find('parent').get('link'), child, transform,
                                  axis_xyz / np.linalg.norm(axis_xyz))
    return joints


class ArmKinematics:
    """Positions of chosen links for joint vectors given in `joint_names` order."""

    def __init__(self, joint_names: Sequence[str], path: Path = URDF_PATH):
        self._joints = load_joints(path)
        self._index = {name: i for i, name in enumerate(joint_names)}

    def _chain(self, link: str) -> List[UrdfJoint]:
        chain = []
        while link in self._joints:
            joint = self._joints[link]
            chain.append(joint)
            link = joint.parent
        return chain[::-1]

    def link_positions(self, positions: np.ndarray, links: Sequence[str]) -> np.ndarray:
        """Return the (len(links), 3) positions of `links` in the root frame for (A,) joints."""
        out = np.zeros((len(links), 3))
        for i, link in enumerate(links):
            pose = np.eye(4)
            for joint in self._chain(link):
                motion = np.eye(4)
                value = positions[self._index[joint.name]] if joint.name in self._index else 0.0
                if joint.kind in ('revolute', 'continuous'):
                    motion[:3, :3] = _axis_angle(joint.axis, value)
                elif joint.kind == 'prismatic':
                    motion[:3, 3] = joint.axis * value
                pose = pose @ joint.origin @ motion
            out[i] = pose[:3, 3]
        return out

    def paths(self, actions: np.ndarray, links: Sequence[str]) -> np.ndarray:
        """Return (K, len(links), 3) link positions along a (K, A) chunk."""
        return np.stack([self.link_positions(row, links) for row in actions])
