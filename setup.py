"""
Pip install of ahawam_ros's ROS-free core (model, data, training, runtime, evaluation).

For training machines without ROS: `pip install .` gives the `ahawam` command line tool and the
Python package. On a robot, build the whole ROS 2 package with colcon instead (see README.md);
ament_cmake (CMakeLists.txt) then installs the same sources next to the generated messages.
"""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent


def _requirements(name: str):
    lines = (ROOT / 'requirements' / name).read_text().splitlines()
    return [line.split('#')[0].strip() for line in lines if line.split('#')[0].strip()]


setup(
    name='ahawam_ros',
    version='0.1.0',
    description='AHA-WAM asynchronous world-action policy for ROS 2 bimanual robots',
    long_description=(ROOT / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=['ahawam_ros', 'ahawam_ros.*']),
    include_package_data=True,
    package_data={'ahawam_ros': ['checkpoints/**/*']},
    data_files=[
        ('share/ahawam_ros/msg', glob('msg/*.msg')),
        ('share/ahawam_ros/config', glob('config/*.yaml')),
        ('share/ahawam_ros/config/mappings', glob('config/mappings/*.yaml')),
    ],
    install_requires=_requirements('core.txt'),
    extras_require={'sim': _requirements('sim.txt'), 'test': _requirements('test.txt')},
    entry_points={
        'console_scripts': [
            'ahawam = ahawam_ros.cli:main',
            # The ROS node executables need rclpy and the colcon-built messages.
            'world_planner = ahawam_ros.ros.world_planner_node:main',
            'action_executor = ahawam_ros.ros.action_executor_node:main',
            'bimanual_sim = ahawam_ros.ros.bimanual_sim_node:main',
            'bringup = ahawam_ros.ros.bringup:main',
        ],
    },
)
