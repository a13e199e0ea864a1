"""Session-wide test settings: keep ROS traffic on this machine and in its own domain."""

import os

# Before anything imports rclpy: never discover beyond loopback, and use a domain of our own
# so that concurrent test sessions (and a developer's running system) do not cross-talk.
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 100))
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('OMP_NUM_THREADS', '1')
