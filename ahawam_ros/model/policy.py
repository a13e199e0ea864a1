"""
`AhaWamPolicy`: AHA-WAM behind the runtime's ChunkPolicy interface (docs/DESIGN.md).

- `plan(images, step)`: one planner refresh (encode, video DiT against the rolling memory),
  returns an immutable `PlannerContext` and rolls the memory.
- `predict_chunk(images, proprio, context, step)`: one executor update (encode the latest
  frame, OVCR edit once, proprio token, `num_steps` Euler steps), returns (K, A) float32
  absolute joint targets in robot units. The context's tensors are read, never copied.
- `sync_update(images, proprio, step)`: the synchronous Fast-WAM-style baseline, a refresh and
  an executor update in sequence on the same frame.

`plan` and `predict_chunk` may run concurrently in two threads: the memory is guarded by a
lock and contexts are never mutated. Each runs as one compiled TorchScript call that does not
hold the GIL while it computes (`compiled.py`), so the two truly run in parallel; eager is the
fallback (`compiled=False` or AHAWAM_COMPILE=0; a refused or failed compile is logged once) and
the reference. `warm_up()` builds the graphs before the first command.

Shapes: V views, H x W pixels, A action dim, K chunk length, L layers, heads x hd attention,
M context tokens.
"""

from pathlib import Path
import threading
import time
from typing import Dict, Optional, Tuple, Union

from ahawam_ros.model.aha_wam import AhaWamModel, EulerPlan
from ahawam_ros.model.checkpoint import load_checkpoint
from ahawam_ros.model.compiled import compile_enabled, ExecutorGraph, GraphSet, PlannerGraph
from ahawam_ros.model.imagination import imagine_latents, to_pixels
from ahawam_ros.model.kv_memory import PlannerContext, RollingKVMemory
import numpy as np
import torch


class AhaWamPolicy:
    """
    AHA-WAM as a ChunkPolicy.

    Parameters
    ----------
    model : AhaWamModel
        A trained model (its normalisation statistics are used).
    task_name : str, optional
        One of `model.config.task.task_names`; the first when omitted.
    num_steps : int, optional
        Euler steps per executor update; the config's `flow.num_inference_steps` if omitted.
    device : str or torch.device
        Where inference runs.
    seed : int
        Seed of the executor's starting noise.
    compiled : bool, optional
        Run the compiled graphs (default: the AHAWAM_COMPILE env var, on unless '0').

    Attributes
    ----------
    chunk_len : int
        K.
    action_dim : int
        A.
    control_period : float
        Seconds between consecutive actions.
    image_size : (int, int)
        (H, W) every camera image must have; V = `model.config.autoencoder.num_views`.
    num_steps : int
        Euler steps per executor update (settable; 1, 2 or 4 for a Flash student).

    Notes
    -----
    The policy keeps constants derived from the weights (task tokens, per-`num_steps` Euler
    modulations, compiled graphs holding a frozen copy of the weights and normalisation
    statistics): do not change the model's weights under a live policy; build a new one.
    On a CPU the executor update is latency-bound: one torch thread is as fast as two.

    """

    def __init__(self, model: AhaWamModel, task_name: Optional[str] = None,
                 num_steps: Optional[int] = None, device: Union[str, torch.device] = 'cpu',
                 seed: int = 0, compiled: Optional[bool] = None):
        config = model.config
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.chunk_len = config.executor.chunk_len
        self.action_dim = config.executor.action_dim
        self.control_period = config.control_period
        self.image_size = (config.autoencoder.view_height, config.autoencoder.view_width)
        self.num_steps = int(num_steps or config.flow.num_inference_steps)
        self._image_shape = (config.autoencoder.num_views, config.autoencoder.view_height,
                             config.autoencoder.view_width, 3)
        self._memory = RollingKVMemory(config.planner.memory_size)
        self._last_refresh = None  # (latents, step, memory entries before it): `imagine`
        self._version = 0
        self._lock = threading.Lock()
        self._generator = torch.Generator().manual_seed(seed)
        self._plans: Dict[int, EulerPlan] = {}  # per num_steps; valid while weights are fixed
        self._graphs = GraphSet(self.model, compile_enabled(compiled))
        self.set_task(task_name or config.task.task_names[0])

    @property
    def backend(self) -> str:
        """Return 'torchscript' (compiled hot paths) or 'eager' (see `compile_reason`)."""
        return self._graphs.backend

    @property
    def compile_reason(self) -> str:
        """Return why the policy runs eager ('' when compiled)."""
        return self._graphs.reason

    @classmethod
    def from_checkpoint(cls, path: Union[str, Path], device: Union[str, torch.device] = 'cpu',
                        **kwargs) -> 'AhaWamPolicy':
        """Load a policy from a checkpoint directory (config and statistics come from it)."""
        model, _ = load_checkpoint(path, device)
        return cls(model, device=device, **kwargs)

    def set_task(self, task_name: str) -> None:
        """Condition on `task_name` from now on (unknown names raise, listing valid ones)."""
        with torch.inference_mode():
            ids = self.model.task_encoder.ids_for([task_name], device=self.device)
            self._task_tokens = self.model.task_encoder(ids)  # (1, Lt, Dt)
        self.task_name = task_name

    def _euler_plan(self, num_steps: int) -> EulerPlan:
        """Return the Euler plan of `num_steps`, computed once (a policy's weights are fixed)."""
        if num_steps not in self._plans:
            self._plans[num_steps] = self.model.euler_plan(num_steps)
        return self._plans[num_steps]

    def reset(self) -> None:
        """Start a new episode: clear the rolling memory and the refresh counter."""
        with self._lock:
            self._memory.reset()
            self._last_refresh = None
            self._version = 0

    def imagine(self, num_steps: Optional[int] = None, seed: int = 0) -> np.ndarray:
        """
        Return the future frames the planner predicts after its last refresh.

        (F, V, H, W, 3) uint8 views for the steps frame_stride, 2 frame_stride, ... after the
        refreshed one (`model/imagination.py`); `num_steps` Euler steps (default: the
        checkpoint's), starting noise from `seed`. Raises RuntimeError before any `plan`.
        """
        with self._lock:
            last = self._last_refresh
        if last is None:
            raise RuntimeError('imagine() needs a plan() first')
        latents, step, entries = last
        memory = None if not entries else tuple(
            torch.cat([entry[i] for entry in entries], dim=3) for i in (0, 1))
        generator = torch.Generator().manual_seed(int(seed))
        with torch.inference_mode():
            future = imagine_latents(self.model, latents, torch.tensor([step], device=self.device),
                                     self._task_tokens, memory,
                                     num_steps or self.model.config.flow.num_inference_steps,
                                     generator)
            return to_pixels(self.model, future)[0].cpu().numpy()

    def reseed(self, seed: int) -> None:
        """Restart the executor's starting noise from `seed` (evaluations compare chunks)."""
        self._generator.manual_seed(int(seed))

    @property
    def memory_size(self) -> int:
        """Return how many refreshes the rolling memory holds (at most N)."""
        return len(self._memory)

    def describe_context(self, context: PlannerContext) -> Dict[str, int]:
        """Return the shape of `context` and the memory fill, for the WorldContext message."""
        layers, heads, tokens, head_dim = context.keys.shape
        return {'num_layers': layers, 'num_tokens': tokens, 'num_heads': heads,
                'head_dim': head_dim, 'memory_fill': len(self._memory),
                'memory_capacity': self._memory.capacity}

    def _images(self, images: np.ndarray) -> torch.Tensor:
        """Check (V, H, W, 3) uint8 camera images; return them as a (1, V, H, W, 3) tensor."""
        if images.shape != self._image_shape or images.dtype != np.uint8:
            raise ValueError(f'images must be uint8 {self._image_shape}, got {images.dtype} '
                             f'{images.shape}')
        return torch.from_numpy(images).to(self.device)[None]

    def _proprio(self, proprio: np.ndarray) -> torch.Tensor:
        """Check (A,) joint positions; return a (1, A) float32 tensor in robot units."""
        if proprio.shape != (self.action_dim,):
            raise ValueError(f'proprio must be ({self.action_dim},), got {proprio.shape}')
        return torch.as_tensor(proprio, dtype=torch.float32, device=self.device)[None]

    def _noise(self) -> torch.Tensor:
        """(1, K, A) starting noise from the policy's generator (the same draw either path)."""
        noise = torch.randn((1, self.chunk_len, self.action_dim), generator=self._generator)
        return noise.to(self.device)

    def _planner_graph(self):
        """Return the compiled refresh, or None (eager)."""
        return self._graphs.get('planner', lambda: PlannerGraph(self.model),
                                lambda: self._planner_inputs(self._blank_images(), 0, True))

    def _executor_graph(self, from_latents: bool = False):
        """Return the compiled update of `num_steps` (from images or latents), or None."""
        steps = self.num_steps
        plan = self._euler_plan(steps)
        return self._graphs.get(('executor', steps, from_latents),
                                lambda: ExecutorGraph(self.model, plan, from_latents),
                                lambda: self._executor_example(from_latents))

    def _executor_example(self, from_latents: bool) -> Tuple[torch.Tensor, ...]:
        """Blank inputs of the compiled update: frame (or latents), proprio, K/V, task, noise."""
        context = self._blank_context()
        frame = self.model.encode(self._blank_images()) if from_latents \
            else self._blank_images()
        return (frame, torch.zeros(1, self.action_dim, device=self.device),
                context.keys, context.values, self._task_tokens,
                torch.zeros(1, self.chunk_len, self.action_dim, device=self.device))

    def _blank_images(self) -> torch.Tensor:
        """(1, V, H, W, 3) black frame: example input of the traces."""
        return torch.zeros((1, *self._image_shape), dtype=torch.uint8, device=self.device)

    def _blank_context(self) -> PlannerContext:
        """Return a zero context of the right shape (example input of the traces)."""
        config = self.model.config
        shape = (config.num_layers, config.num_heads, config.tokens_per_frame, config.head_dim)
        zeros = torch.zeros(shape, device=self.device)
        return PlannerContext(zeros, zeros, 0, 0.0, 0)

    def _planner_inputs(self, images: torch.Tensor, step: int,
                        empty: bool = False) -> Tuple[torch.Tensor, ...]:
        """Return the compiled refresh's inputs: the memory (or none) padded, its validity."""
        config = self.model.config
        tokens = config.tokens_per_frame
        blank = torch.zeros(config.num_layers, 1, config.num_heads, tokens, config.head_dim,
                            device=self.device)  # (L, 1, H, S, hd): one empty entry
        memory = RollingKVMemory(self._memory.capacity) if empty else self._memory
        keys, values = memory.padded(blank)  # (L, 1, H, N S, hd)
        valid = torch.zeros(1, keys.shape[3], dtype=torch.bool, device=self.device)
        valid[:, :len(memory) * tokens] = True
        steps = torch.tensor([step], device=self.device)
        return images, steps, self._task_tokens, keys, values, valid

    def _refresh(self, images: torch.Tensor, step: int) -> Tuple[PlannerContext, torch.Tensor]:
        """
        Planner pass over (1, V, H, W, 3) images against the memory, then roll the memory.

        Returns the context and the (1, C, h, w) latents of the frame.
        """
        graph = self._planner_graph()
        with self._lock:
            before = self._memory.entries()  # what `imagine` conditions on, as in training
            if graph is not None:
                latents, keys, values = graph(*self._planner_inputs(images, step))
            else:
                latents = self.model.encode(images)
                keys, values = self.model.refresh(
                    latents, torch.tensor([step], device=self.device), self._task_tokens,
                    self._memory.stacked())  # (L, 1, H, S, hd)
            self._memory.append(keys, values)
            self._last_refresh = (latents, int(step), before)
            self._version += 1
            version = self._version
        position = float(step) / self.model.config.rope_steps_per_unit
        return PlannerContext(keys[:, 0], values[:, 0], int(step), position, version), latents

    def _execute(self, frame: torch.Tensor, proprio: torch.Tensor, context: PlannerContext,
                 from_latents: bool = False) -> np.ndarray:
        """Encode (unless given latents) + OVCR + N Euler steps; (K, A) robot-unit actions."""
        if not isinstance(context, PlannerContext):
            raise TypeError(f'context must be a PlannerContext from plan(), got {type(context)}')
        graph = self._executor_graph(from_latents)
        noise = self._noise()
        if graph is not None:
            actions = graph(frame, proprio, context.keys, context.values, self._task_tokens,
                            noise)
        else:
            actions = self._execute_eager(frame, proprio, context, noise, from_latents)
        return actions[0].cpu().numpy().astype(np.float32)

    def _execute_eager(self, frame: torch.Tensor, proprio: torch.Tensor,
                       context: PlannerContext, noise: torch.Tensor,
                       from_latents: bool) -> torch.Tensor:
        """Run the reference (eager) executor update; return (1, K, A) robot-unit actions."""
        model = self.model
        latents = frame if from_latents else model.encode(frame)
        # (L, 1, H, M, hd) views of the shared context: no copy, the context stays intact.
        keys, values = model.edit_context(context.keys[:, None], context.values[:, None],
                                          latents)
        cache = model.prepare_executor(keys, values, self._task_tokens,
                                       model.normalize_proprio(proprio))
        actions = model.sample_actions(cache, self.num_steps, noise=noise,
                                       plan=self._euler_plan(self.num_steps))
        return model.denormalize_actions(actions, proprio)

    def warm_up(self, sync: bool = False) -> Dict[str, float]:
        """
        Build the compiled graphs of the current `num_steps` and run each once.

        Call it before the first command: the build (seconds) is then off the control loop.
        The memory, the refresh counter and the noise generator are left as they were.

        Parameters
        ----------
        sync : bool
            Also build the synchronous baseline's executor graph (it takes latents).

        Returns
        -------
        dict
            'seconds' in all, 'compiled' (1.0 or 0.0), and seconds per graph built.

        """
        started = time.perf_counter()
        with torch.inference_mode():
            planner = self._planner_graph()
            if planner is not None:
                planner(*self._planner_inputs(self._blank_images(), 0, empty=True))
            for from_latents in ((False, True) if sync else (False,)):
                graph = self._executor_graph(from_latents)
                if graph is not None:
                    graph(*self._executor_example(from_latents))
        report = {'seconds': time.perf_counter() - started,
                  'compiled': float(self.backend != 'eager')}
        report.update({str(key): seconds for key, seconds in self._graphs.build_seconds.items()})
        return report

    def plan(self, images: np.ndarray, step: int) -> PlannerContext:
        """
        Run one planner refresh.

        Parameters
        ----------
        images : np.ndarray
            uint8 (V, H, W, 3), one frame per camera.
        step : int
            Control step of the observation in the episode.

        Returns
        -------
        PlannerContext
            keys, values: (L, heads, M, hd) float32 per-layer context; step; version.

        """
        with torch.inference_mode():
            return self._refresh(self._images(images), step)[0]

    def predict_chunk(self, images: np.ndarray, proprio: np.ndarray, context: PlannerContext,
                      step: int) -> np.ndarray:
        """
        Run one executor update against a (possibly stale) planner context.

        Parameters
        ----------
        images : np.ndarray
            uint8 (V, H, W, 3), the latest frames (drive the OVCR edit).
        proprio : np.ndarray
            float32 (A,) joint positions at the chunk start, robot units.
        context : PlannerContext
            From `plan`; read by reference.
        step : int
            Control step of the chunk start (the model is trained for contexts 0..O + nK
            steps old; the age is implicit in the observation, not an input).

        Returns
        -------
        np.ndarray
            float32 (K, A) absolute joint targets for steps step .. step + K - 1.

        """
        with torch.inference_mode():
            return self._execute(self._images(images), self._proprio(proprio), context)

    def sync_update(self, images: np.ndarray, proprio: np.ndarray, step: int) -> np.ndarray:
        """
        Run the synchronous baseline: encode, planner refresh, then the executor, in sequence.

        The OVCR edit is kept (from the same frame, as in training with offset 0) so that the
        executor sees the context distribution it was trained on. Returns (K, A) float32.
        """
        with torch.inference_mode():
            frame, state = self._images(images), self._proprio(proprio)
            context, latents = self._refresh(frame, step)
            return self._execute(latents, state, context, from_latents=True)
