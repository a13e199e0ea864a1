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
lock and contexts are never mutated.

Shapes: V views, H x W pixels, A action dim, K chunk length, L layers, heads x hd attention,
M context tokens.
"""

from pathlib import Path
import threading
from typing import Dict, Optional, Union

from ahawam_ros.model.aha_wam import AhaWamModel, EulerPlan
from ahawam_ros.model.checkpoint import load_checkpoint
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
    modulations): do not change the model's weights under a live policy; build a new one.
    On a CPU the executor update is latency-bound: one torch thread is as fast as two.

    """

    def __init__(self, model: AhaWamModel, task_name: Optional[str] = None,
                 num_steps: Optional[int] = None, device: Union[str, torch.device] = 'cpu',
                 seed: int = 0):
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
        self._version = 0
        self._lock = threading.Lock()
        self._generator = torch.Generator().manual_seed(seed)
        self._plans: Dict[int, EulerPlan] = {}  # per num_steps; valid while weights are fixed
        self.set_task(task_name or config.task.task_names[0])

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
            self._version = 0

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

    def _latents(self, images: np.ndarray) -> torch.Tensor:
        """(V, H, W, 3) uint8 -> (1, C, h, w) latents."""
        if images.shape != self._image_shape or images.dtype != np.uint8:
            raise ValueError(f'images must be uint8 {self._image_shape}, got {images.dtype} '
                             f'{images.shape}')
        return self.model.encode(torch.from_numpy(images).to(self.device)[None])

    def _refresh(self, latents: torch.Tensor, step: int) -> PlannerContext:
        """Planner pass over (1, C, h, w) latents against the memory, then roll the memory."""
        steps = torch.tensor([step], device=self.device)
        with self._lock:
            keys, values = self.model.refresh(latents, steps, self._task_tokens,
                                              self._memory.stacked())  # (L, 1, H, S, hd)
            self._memory.append(keys, values)
            self._version += 1
            version = self._version
        position = float(self.model.frame_position(steps)[0])
        return PlannerContext(keys[:, 0], values[:, 0], int(step), position, version)

    def _execute(self, latents: torch.Tensor, proprio: np.ndarray,
                 context: PlannerContext) -> np.ndarray:
        """OVCR edit + N Euler steps; returns (K, A) float32 robot-unit actions."""
        if not isinstance(context, PlannerContext):
            raise TypeError(f'context must be a PlannerContext from plan(), got {type(context)}')
        if proprio.shape != (self.action_dim,):
            raise ValueError(f'proprio must be ({self.action_dim},), got {proprio.shape}')
        model = self.model
        # (L, 1, H, M, hd) views of the shared context: no copy, the context stays intact.
        keys, values = model.edit_context(context.keys[:, None], context.values[:, None],
                                          latents)
        state = torch.as_tensor(proprio, dtype=torch.float32, device=self.device)[None]
        cache = model.prepare_executor(keys, values, self._task_tokens,
                                       model.normalize_proprio(state))
        actions = model.sample_actions(cache, self.num_steps, generator=self._generator,
                                       plan=self._euler_plan(self.num_steps))
        return model.denormalize_actions(actions)[0].cpu().numpy().astype(np.float32)

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
            return self._refresh(self._latents(images), step)

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
            return self._execute(self._latents(images), proprio, context)

    def sync_update(self, images: np.ndarray, proprio: np.ndarray, step: int) -> np.ndarray:
        """
        Run the synchronous baseline: encode, planner refresh, then the executor, in sequence.

        The OVCR edit is kept (from the same frame, as in training with offset 0) so that the
        executor sees the context distribution it was trained on. Returns (K, A) float32.
        """
        with torch.inference_mode():
            latents = self._latents(images)
            return self._execute(latents, proprio, self._refresh(latents, step))
