"""The embedded ALOHA bimanual simulator (gym-aloha's MuJoCo scenes) and its scripted expert."""

import os

# MuJoCo picks its OpenGL backend when it is first imported; headless machines need EGL.
os.environ.setdefault('MUJOCO_GL', 'egl')
