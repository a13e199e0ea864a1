"""
The losses of an executor-stage step, compiled by `torch.compile` (inductor) where it can be.

Why: a stage 3 step on 2 CPU cores is bound by element-wise work over the context-sized
(L, B, H, M, hd) tensors (OVCR's edit, the context adapter's projection and norms, their
gradients) and by the dispatch of some thousand small ops; inductor fuses them. Measured on
the `small` preset, batch 64, 2 threads (AMD EPYC, AVX2, beside niced demonstration
recording): 260 ms a step eager, 162 ms compiled (1.6x), after about 130 s of compiling on the
first step. The runtime does not compile this way (`model/compiled.py`: a start-up cannot wait
minutes); a stage of thousands of steps can.

`AHAWAM_COMPILE=0` (`model/compiled.py`) keeps the stage eager, as the test suite does. A
compile that fails is logged once and the stage goes on eagerly: the eager `chunk_losses` is
the reference the compiled one is tested against (test_train_executor_stage.py).
"""

import logging
from typing import Callable, Tuple

from ahawam_ros.model.compiled import compile_enabled, COMPILE_ENV
from ahawam_ros.model.losses import chunk_losses
import torch

LOGGER = logging.getLogger(__name__)


class StageLosses:
    """
    `chunk_losses` (same arguments, same results), compiled on its first call when enabled.

    Parameters
    ----------
    enabled : bool, optional
        Compile (default: the AHAWAM_COMPILE env var, on unless '0').

    Attributes
    ----------
    backend : str
        'inductor' or 'eager'; a failed compile turns it to 'eager'.

    """

    def __init__(self, enabled=None):
        self.backend = 'inductor' if compile_enabled(enabled) else 'eager'
        self._losses: Callable[..., Tuple[torch.Tensor, torch.Tensor]] = chunk_losses
        if self.backend == 'inductor':
            # dynamic=False: one batch shape per stage, specialised; a new one recompiles.
            self._losses = torch.compile(chunk_losses, dynamic=False)

    def describe(self) -> str:
        """Say how the losses run, for the stage's start-up line."""
        if self.backend == 'inductor':
            return (f'losses compiled by torch.compile (inductor, on the first step; '
                    f'{COMPILE_ENV}=0 runs them eagerly)')
        return 'losses eager'

    def __call__(self, *args, **kwargs) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return `chunk_losses(*args, **kwargs)`."""
        if self.backend == 'inductor':
            try:
                return self._losses(*args, **kwargs)
            except Exception as error:  # noqa: B902 (a compiler error of any kind)
                message = (f'stage 3: compiling the losses failed ({type(error).__name__}: '
                           f'{error}); the stage goes on eagerly')
                LOGGER.warning(message)
                print(message, flush=True)
                self.backend, self._losses = 'eager', chunk_losses
        return self._losses(*args, **kwargs)
