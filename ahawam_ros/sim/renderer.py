"""
Offscreen rendering of several MuJoCo cameras side by side in one framebuffer.

Headless machines render with Mesa's llvmpipe on the CPU, where each readback and each
`mujoco.Renderer` call carries a fixed cost. Drawing all V cameras into one (H, V * W)
framebuffer and reading it back once is about 20 % cheaper than V separate renders.
`MUJOCO_GL` must name a headless backend (egl) before `mujoco` is first imported; the
`ahawam_ros.sim` package sets it.
"""

from typing import Dict, Sequence

import mujoco
from mujoco import gl_context
import numpy as np


class TiledRenderer:
    """
    Renders a fixed list of cameras of one model at one image size.

    Parameters
    ----------
    model : mujoco.MjModel
        The model; its offscreen buffer size is raised to fit the tiles if needed.
    cameras : sequence of str
        Camera names, rendered left to right (V of them).
    height, width : int
        Size of each camera image (H, W).

    """

    def __init__(self, model: mujoco.MjModel, cameras: Sequence[str], height: int,
                 width: int) -> None:
        """Create the GL context, the scene and one fixed view per camera."""
        self.cameras = tuple(cameras)
        self.height, self.width = height, width
        self._model = model
        ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, c) for c in self.cameras]
        missing = [c for c, i in zip(self.cameras, ids) if i < 0]
        if missing:
            known = [model.camera(i).name for i in range(model.ncam)]
            raise ValueError(f'unknown camera(s) {missing}; the scene has {known}')
        total_width = width * len(self.cameras)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, total_width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        self._gl = gl_context.GLContext(model.vis.global_.offwidth, model.vis.global_.offheight)
        self._gl.make_current()
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        self._scene = mujoco.MjvScene(model, maxgeom=1000)
        self._option = mujoco.MjvOption()
        self._perturb = mujoco.MjvPerturb()
        self._views = []
        for cam_id in ids:
            view = mujoco.MjvCamera()
            view.type = mujoco.mjtCamera.mjCAMERA_FIXED
            view.fixedcamid = cam_id
            self._views.append(view)
        self._pixels = np.empty((height, total_width, 3), dtype=np.uint8)  # (H, V * W, 3)

    def render(self, data: mujoco.MjData) -> Dict[str, np.ndarray]:
        """
        Render every camera in the current state of `data`.

        Returns
        -------
        dict of str to numpy.ndarray
            camera name -> uint8 (H, W, 3) RGB image, top row first (fresh arrays).

        """
        self._gl.make_current()
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        for index, view in enumerate(self._views):
            mujoco.mjv_updateScene(self._model, data, self._option, self._perturb, view,
                                   mujoco.mjtCatBit.mjCAT_ALL, self._scene)
            tile = mujoco.MjrRect(index * self.width, 0, self.width, self.height)
            mujoco.mjr_render(tile, self._scene, self._context)
        full = mujoco.MjrRect(0, 0, self._pixels.shape[1], self.height)
        mujoco.mjr_readPixels(self._pixels, None, full, self._context)
        image = self._pixels[::-1]  # OpenGL rows run bottom-up
        return {name: np.ascontiguousarray(image[:, i * self.width:(i + 1) * self.width])
                for i, name in enumerate(self.cameras)}

    def close(self) -> None:
        """Release the GL context and its buffers (idempotent)."""
        if self._gl is not None:
            self._gl.make_current()
            self._context.free()
            self._gl.free()
            self._gl = None
