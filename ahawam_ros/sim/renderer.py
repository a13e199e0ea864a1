"""
Offscreen rendering of several MuJoCo cameras side by side in one framebuffer.

Headless machines render with Mesa's llvmpipe on the CPU, where each readback and each
`mujoco.Renderer` call carries a fixed cost. Drawing all V cameras into one (H, V * W)
framebuffer and reading it back once is about 20 % cheaper than V separate renders.
`MUJOCO_GL` must name a headless backend (egl) before `mujoco` is first imported; the
`ahawam_ros.sim` package sets it.
"""

import threading
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

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


class BackgroundRenderer:
    """
    Renders the newest submitted simulator state in a thread of its own.

    The physics loop must keep its control rate while a render costs several control periods
    on a CPU (llvmpipe: about 10 ms per 120 x 160 camera, whatever the size). So the physics
    thread only copies the state it wants pictured (`submit`, microseconds) and goes on; this
    thread owns the GL context, poses its own copy of the scene and hands each frame to
    `on_frame`. When a render is still running, a newer submission replaces the waiting one
    (counted in `dropped`): frames come as fast as the CPU allows, never late and queued.
    MuJoCo's render calls release the GIL, so the two threads do run in parallel. (Lowering
    this thread's priority was tried and undone: on a loaded machine, nice +5 starved it to
    frames over 1 s old, and the nodes then hold for stale cameras.)

    Parameters
    ----------
    model : mujoco.MjModel
        The simulated model (read only here; its offscreen buffer may be enlarged).
    cameras : sequence of str
        Camera names (V), in view order.
    height, width : int
        Size of each image (H, W).
    on_frame : callable
        `on_frame(images, tag)` with camera -> uint8 (H, W, 3) and the submission's tag,
        called in this thread.

    """

    def __init__(self, model: mujoco.MjModel, cameras: Sequence[str], height: int, width: int,
                 on_frame: Callable[[Dict[str, np.ndarray], Any], None]) -> None:
        """Start the thread; it creates the renderer (and its GL context) before returning."""
        self._model = model
        self._on_frame = on_frame
        self._data = mujoco.MjData(model)
        self._condition = threading.Condition()
        self._pending: Optional[Tuple[np.ndarray, Any, Optional[dict]]] = None
        self._closing = False
        self.rendered = 0
        self.dropped = 0
        self.render_seconds = 0.0  # summed over `rendered` frames
        self.failures = 0
        self.last_failure = ''
        self._error: Optional[BaseException] = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name='sim-render', daemon=True,
                                        args=(cameras, height, width, ready))
        self._thread.start()
        ready.wait()
        if self._error is not None:
            raise RuntimeError(f'the renderer failed to start: {self._error}')

    def submit(self, qpos: np.ndarray, tag: Any = None,
               wait: bool = False) -> Optional[Dict[str, np.ndarray]]:
        """
        Ask for a frame of the state with joint positions `qpos` (the full `data.qpos`).

        Returns None at once, or with `wait` the rendered images after `on_frame` ran.
        """
        reply = {'done': threading.Event()} if wait else None
        with self._condition:
            if self._closing:
                raise RuntimeError('the renderer is closed')
            if self._pending is not None:
                self.dropped += 1
            self._pending = (np.array(qpos, dtype=np.float64), tag, reply)
            self._condition.notify()
        if reply is None:
            return None
        reply['done'].wait()
        if 'error' in reply:
            raise RuntimeError(f'render failed: {reply["error"]}')
        return reply['images']

    def _run(self, cameras, height, width, ready: threading.Event) -> None:
        try:
            renderer = TiledRenderer(self._model, cameras, height, width)
        except Exception as error:  # noqa: B902 - reported by the constructor
            self._error = error
            ready.set()
            return
        ready.set()
        try:
            while True:
                with self._condition:
                    while self._pending is None and not self._closing:
                        self._condition.wait()
                    if self._closing:
                        return
                    qpos, tag, reply = self._pending
                    self._pending = None
                self._render(renderer, qpos, tag, reply)
        finally:
            renderer.close()

    def _render(self, renderer: TiledRenderer, qpos: np.ndarray, tag: Any,
                reply: Optional[dict]) -> None:
        started = time.perf_counter()
        try:
            self._data.qpos[:] = qpos
            mujoco.mj_kinematics(self._model, self._data)
            mujoco.mj_camlight(self._model, self._data)
            images = renderer.render(self._data)
            self.render_seconds += time.perf_counter() - started
            self.rendered += 1
            self._on_frame(images, tag)
        except Exception as error:  # noqa: B902 - a frame is lost, the thread keeps running
            self.failures += 1
            self.last_failure = f'{type(error).__name__}: {error}'
            if reply is not None:
                reply['error'] = error
            images = None
        if reply is not None:
            reply['images'] = images
            reply['done'].set()

    def close(self) -> None:
        """Stop the thread after its current frame; it releases the GL context (idempotent)."""
        with self._condition:
            self._closing = True
            self._condition.notify()
        self._thread.join(timeout=10.0)
