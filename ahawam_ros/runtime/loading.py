"""
Build the policy a process runs: from a checkpoint directory, or a scripted stand-in.

One process (the bringup hosting planner and executor nodes) shares ONE policy object per
(checkpoint, device): both experts then live in the same weights, and the planner context
handed over by reference is always compatible with the executor that reads it.
"""

from pathlib import Path
import sys
import threading
from typing import Callable, Dict, Optional, Tuple

from ahawam_ros.runtime.policy_api import ChunkPolicy, FakePolicy

FAKE = 'fake'
CHECKPOINT_POLICY, EXPERT_POLICY = 'checkpoint', 'expert'
POLICY_KINDS = (CHECKPOINT_POLICY, EXPERT_POLICY)  # what `--policy` selects
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / 'checkpoints' / 'default'

_CACHE: Dict[Tuple[str, str], ChunkPolicy] = {}
_LOCK = threading.Lock()


def resolve_checkpoint(checkpoint: str) -> str:
    """Return the checkpoint to load: `checkpoint`, or the packaged default when empty."""
    if checkpoint:
        return checkpoint
    if not DEFAULT_CHECKPOINT.is_dir():
        raise FileNotFoundError(
            f'no checkpoint given and the packaged default is missing ({DEFAULT_CHECKPOINT}); '
            'pass checkpoint:=<dir> or train one with `ahawam train`')
    return str(DEFAULT_CHECKPOINT)


def _build(checkpoint: str, device: str) -> ChunkPolicy:
    if checkpoint == FAKE:
        return FakePolicy(chunk_len=16, action_dim=14, control_period=0.02)
    from ahawam_ros.model.policy import AhaWamPolicy
    return AhaWamPolicy.from_checkpoint(checkpoint, device=device)


def load_policy(checkpoint: str = '', device: str = 'cpu') -> ChunkPolicy:
    """Return the process-wide policy for (checkpoint, device), loading it once."""
    key = (resolve_checkpoint(checkpoint) if checkpoint != FAKE else FAKE, device)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _build(*key)
        return _CACHE[key]


def condition_on_task(policy: ChunkPolicy, task: str) -> bool:
    """
    Condition `policy` on `task` from its next plan on; return whether that changed it.

    An empty `task`, or a policy without tasks (the stand-in, the scripted expert), changes
    nothing; a task the checkpoint was not made for raises ValueError listing its tasks.
    """
    if not task or not hasattr(policy, 'set_task') or getattr(policy, 'task_name', '') == task:
        return False
    policy.set_task(task)
    return True


def is_checkpoint_error(error: BaseException) -> bool:
    """
    Return whether `error` is a malformed checkpoint (`model.checkpoint.CheckpointError`).

    Command line tools and node executables answer one with its one-line message and exit
    code 2. The class is looked up, not imported: only a process that loaded the checkpoint
    module (and torch with it) can have raised one.
    """
    checkpoint = sys.modules.get('ahawam_ros.model.checkpoint')
    return checkpoint is not None and isinstance(error, checkpoint.CheckpointError)


def select_policy(kind: str, checkpoint: str = '', device: str = 'cpu',
                  expert: Optional[Callable[[], ChunkPolicy]] = None) -> ChunkPolicy:
    """
    Return the policy `kind` names: the checkpoint's, or the privileged scripted expert.

    The expert reads the simulator's episode (evaluation only), so the runtime does not build
    it: the caller that owns the simulator (eval-sim, the demo) passes its factory `expert`.
    """
    if kind == CHECKPOINT_POLICY:
        return load_policy(checkpoint, device)
    if kind == EXPERT_POLICY:
        if expert is None:
            raise ValueError('policy expert needs the simulator: only eval-sim and the demo '
                             'can run it')
        return expert()
    raise ValueError(f'unknown policy {kind!r}; valid: {", ".join(POLICY_KINDS)}')


def policy_image_hw(policy: ChunkPolicy, height: int = 0, width: int = 0) -> Tuple[int, int]:
    """Return the per-camera (H, W) to feed `policy`: the given size, else the policy's own."""
    if height > 0 and width > 0:
        return height, width
    size = getattr(policy, 'image_size', None)
    if size is None:
        raise ValueError('the policy does not declare its input image size: set image_height '
                         'and image_width')
    return int(size[0]), int(size[1])
