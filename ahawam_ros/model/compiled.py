"""
GIL-free compiled hot paths of `AhaWamPolicy`: one TorchScript graph per call.

A planner refresh and an executor update each run as ONE call of a traced, frozen and
inference-optimised TorchScript module: tensors in, tensors out, no Python in between. The
TorchScript interpreter releases the GIL while it runs, so a refresh in one thread and an
executor update in another compute truly in parallel (eager PyTorch drops and re-takes the GIL
at every op and serialises them; see docs/DESIGN.md and ../shared/ENVIRONMENT.md).

Why TorchScript (trace + freeze + optimize_for_inference), measured on the small preset, one
thread: it builds in about a second per graph, runs without the GIL, and its numerics equal
eager to ~1e-6; `torch.compile` (inductor) took 227 s to compile on first use, too slow for a
start-up, and ran no faster on this per-op-bound model.

The graphs are the eager modules traced as they are (the eager code stays the reference):
- `PlannerGraph`: encode + planner refresh against a memory padded to its capacity with a
  validity mask (one graph for every fill; attention ignores the padding exactly);
- `ExecutorGraph`: encode (or given latents, for the synchronous baseline, which encodes
  once) + OVCR edit + executor preparation + all N Euler steps unrolled, denormalised. The
  starting noise is an input, drawn outside from the policy's generator, so compiled and eager
  runs from the same seed give the same chunk.

Shapes: V views, H x W pixels, C latent channels, h x w latent grid, L layers, H heads,
hd head dim, S tokens per frame, N memory capacity, M context tokens, Lt task tokens,
Dt task width, K chunk length, A action dim.
"""

import copy
import logging
import os
import threading
import time
from typing import Callable, Hashable, Optional, Tuple
import warnings

from ahawam_ros.model.aha_wam import AhaWamModel, EulerPlan
import torch
from torch import nn

LOGGER = logging.getLogger(__name__)
COMPILE_ENV = 'AHAWAM_COMPILE'  # '0' disables the compiled paths (eager everywhere)


def compile_enabled(requested=None) -> bool:
    """Return whether to compile: `requested` when given, else the AHAWAM_COMPILE env var."""
    if requested is not None:
        return bool(requested)
    return os.environ.get(COMPILE_ENV, '1').strip().lower() not in ('0', 'false', 'no', 'off')


def compile_refusal(model: AhaWamModel) -> str:
    """Return why `model` cannot be compiled here ('' when it can)."""
    device = model.action_mean.device
    if device.type == 'meta':
        return 'the model is on the meta device (no weights to run)'
    if any(p.dtype != torch.float32 for p in model.parameters()):
        return 'only float32 weights are traced'
    return ''


def _frozen_copy(module: nn.Module) -> nn.Module:
    """Return a private, gradient-free copy: tracing never touches the policy's model."""
    module = copy.deepcopy(module).eval()
    module.requires_grad_(False)
    return module


class PlannerGraph(nn.Module):
    """
    Encode + one planner refresh against a padded rolling memory.

    Parameters
    ----------
    model : AhaWamModel
        Copied (its autoencoder, planner and statistics).

    """

    def __init__(self, model: AhaWamModel):
        super().__init__()
        self.model = _frozen_copy(model)

    def forward(self, images: torch.Tensor, steps: torch.Tensor, task_tokens: torch.Tensor,
                memory_keys: torch.Tensor, memory_values: torch.Tensor,
                memory_valid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Run the refresh.

        Parameters
        ----------
        images : torch.Tensor
            (1, V, H, W, 3) uint8.
        steps : torch.Tensor
            (1,) int64 control step of the frame.
        task_tokens : torch.Tensor
            (1, Lt, Dt).
        memory_keys, memory_values : torch.Tensor
            (L, 1, H, N S, hd) earlier refreshes, zero padding where not `memory_valid`.
        memory_valid : torch.Tensor
            (1, N S) bool.

        Returns
        -------
        latents : torch.Tensor
            (1, C, h, w) of the frame.
        keys, values : torch.Tensor
            (L, 1, H, S, hd) the frame's context.

        """
        latents = self.model.encode(images)
        keys, values = self.model.refresh(latents, steps, task_tokens,
                                          (memory_keys, memory_values), memory_valid)
        return latents, keys, values


class ExecutorGraph(nn.Module):
    """
    One executor update with a fixed number of Euler steps.

    Parameters
    ----------
    model : AhaWamModel
        Copied (autoencoder, OVCR, executor, statistics).
    plan : EulerPlan
        The noise levels and modulations of the N steps.
    from_latents : bool
        Take (1, C, h, w) latents instead of images (the synchronous baseline encodes once).

    """

    def __init__(self, model: AhaWamModel, plan: EulerPlan, from_latents: bool = False):
        super().__init__()
        self.model = _frozen_copy(model)
        self.from_latents = from_latents
        self.register_buffer('layer_mod', plan.layer_mod.detach().clone())  # (N, L, 6, Da)
        self.register_buffer('head_mod', plan.head_mod.detach().clone())  # (N, 2, Da)
        # Python floats, as the eager Euler loop uses them: identical arithmetic.
        self.deltas = (plan.sigmas[1:] - plan.sigmas[:-1]).tolist()

    def forward(self, frame: torch.Tensor, proprio: torch.Tensor, keys: torch.Tensor,
                values: torch.Tensor, task_tokens: torch.Tensor,
                noise: torch.Tensor) -> torch.Tensor:
        """
        Run the update.

        Parameters
        ----------
        frame : torch.Tensor
            (1, V, H, W, 3) uint8 images, or (1, C, h, w) latents with `from_latents`.
        proprio : torch.Tensor
            (1, A) float32 joint positions, robot units.
        keys, values : torch.Tensor
            (L, H, M, hd) planner context (read, not written).
        task_tokens : torch.Tensor
            (1, Lt, Dt).
        noise : torch.Tensor
            (1, K, A) starting noise.

        Returns
        -------
        torch.Tensor
            (1, K, A) actions in robot units.

        """
        model = self.model
        latents = frame if self.from_latents else model.encode(frame)
        keys, values = model.edit_context(keys[:, None], values[:, None], latents)
        cache = model.prepare_executor(keys, values, task_tokens,
                                       model.normalize_proprio(proprio))
        x = noise
        for i, delta in enumerate(self.deltas):  # unrolled in the trace
            velocity = model.executor.velocity(x, self.layer_mod[i], self.head_mod[i], cache)
            x = torch.add(x, velocity, alpha=delta)
        return model.denormalize_actions(x, proprio)


# The warnings a build is known to raise and that say nothing about this model (category,
# message regex matched at the message's start, module regex of where it is raised). Silenced
# around the build only, never process-wide: any other warning, from torch or from our code,
# still reaches the caller. docs/DESIGN.md ("Compiled hot path") says how we get off
# TorchScript; until then these are the price of a GIL-free graph.
BENIGN_BUILD_WARNINGS = (
    # The pinned torch deprecates TorchScript as a whole; the way off is measured in DESIGN.md.
    # (The Python 3.14+ variant, "is not supported ... and may break", is NOT silenced.)
    (DeprecationWarning,
     r'`torch\.jit\.(trace|trace_method|freeze|optimize_for_inference)` is deprecated\.',
     r'torch\.jit\.'),
    # Tuple-unpacking and zipping tensors along a leading dim the config fixes (the 6 layer
    # and 2 head modulations, the L layers): the trace unrolls exactly what eager runs.
    (torch.jit.TracerWarning, r'Iterating over a tensor might cause the trace to be incorrect',
     r'ahawam_ros\.model\.'),
    # Python branches on shapes (missing camera tiles, the batch of the memory mask), which
    # the policy checks on every call, so the constant the trace bakes in always holds. A
    # branch on tensor DATA would raise the same message: the compiled == eager tests across
    # a rolled memory (test/model/test_model_compiled.py) are what would catch one.
    (torch.jit.TracerWarning, r'Converting a tensor to a Python boolean might cause the trace '
                              r'to be incorrect', r'ahawam_ros\.model\.'),
)


def build_graph(module: nn.Module, example: Tuple[torch.Tensor, ...]) -> Callable:
    """
    Trace `module` on `example` inputs, freeze it and optimise it for inference.

    The known-benign warnings of the build (`BENIGN_BUILD_WARNINGS`) are silenced here, at
    their source; any other warning propagates.

    Returns
    -------
    callable
        A `torch.jit.ScriptModule` taking tensors like `example`.

    """
    # catch_warnings swaps the process-wide filter list (Python < 3.14): GraphSet builds one
    # graph at a time, and another thread warning meanwhile only loses these same messages.
    with torch.no_grad(), warnings.catch_warnings():
        for category, message, source in BENIGN_BUILD_WARNINGS:
            warnings.filterwarnings('ignore', message, category, source)
        traced = torch.jit.trace(module.eval(), example, check_trace=False)
        frozen = torch.jit.freeze(traced)
        return torch.jit.optimize_for_inference(frozen)


class GraphSet:
    """
    The compiled graphs of one policy, built on first use (or by a warm-up), with fallback.

    When compiling is disabled, refused or fails, `reason` says why (logged once) and `get`
    returns None: the caller runs eager. A failure disables every graph of the set, so that
    a policy never mixes backends within an episode.

    Parameters
    ----------
    model : AhaWamModel
        The policy's model (copied into each graph).
    enabled : bool
        False: eager only.

    """

    def __init__(self, model: AhaWamModel, enabled: bool):
        self.reason = '' if enabled else f'compiling is disabled ({COMPILE_ENV}=0 or ' \
                                         f'compiled=False)'
        if enabled:
            self.reason = compile_refusal(model)
        if self.reason:
            LOGGER.info('AHA-WAM runs eager: %s', self.reason)
        self.build_seconds: dict = {}
        self._graphs: dict = {}
        self._lock = threading.Lock()

    @property
    def backend(self) -> str:
        """Return 'torchscript' while the compiled paths are in use, else 'eager'."""
        return 'eager' if self.reason else 'torchscript'

    def get(self, key: Hashable, module: Callable[[], nn.Module],
            example: Callable[[], Tuple[torch.Tensor, ...]]) -> Optional[Callable]:
        """
        Return the graph of `key`, building it from `module()` traced on `example()`.

        Returns None when the set runs eager (see `reason`).
        """
        graph = self._graphs.get(key)
        if graph is not None or self.reason:
            return graph
        with self._lock:  # one build at a time; a second caller waits for the first
            if key not in self._graphs and not self.reason:
                started = time.perf_counter()
                try:
                    self._graphs[key] = build_graph(module(), example())
                except Exception as error:  # any tracing failure: fall back, say why once
                    self.reason = f'compiling {key} failed: {type(error).__name__}: {error}'
                    LOGGER.warning('AHA-WAM falls back to eager: %s', self.reason)
                    return None
                self.build_seconds[key] = time.perf_counter() - started
            return self._graphs.get(key)
