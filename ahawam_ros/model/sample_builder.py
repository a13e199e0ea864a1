"""
Training samples from episodes: a pure function, and the batch keys it produces.

One sample is anchored at a start step s (the planner frame) and carries a horizon-adaptive
offset o ~ U{0..O}:

- clip frames at s + f * frame_stride, f = 0..F (frame 0 clean, the rest are denoised);
- history frames at s - j * history_stride, j = N..1 (oldest first), masked when < 0;
- chunk n (n = 0..Nc-1) starts at c_n = s + o + n K: action targets at c_n + k (k < K),
  chunk-start frame and chunk-start proprio at c_n, and the task object's position at c_n
  when the episode has it (privileged simulator state: an auxiliary training target only).

Steps past the episode end are clamped to the last step and masked (clip frames, actions);
masked actions repeat the last action. Values stay in robot units (the model normalises).

Shapes (one sample; `collate_samples` adds a leading B): F future frames, N history frames,
Nc chunks, K chunk length, V views, H x W pixels, A action dim.
"""

from typing import Dict, Optional, Sequence

from ahawam_ros.model.config import ModelConfig
import numpy as np
import torch

CLIP_FRAMES = 'clip_frames'  # (1 + F, V, H, W, 3) uint8, frames at s + f * frame_stride
CLIP_STEPS = 'clip_steps'  # (1 + F,) int64 control steps of the clip frames
CLIP_MASK = 'clip_mask'  # (1 + F,) bool, False past the episode end
HISTORY_FRAMES = 'history_frames'  # (N, V, H, W, 3) uint8, oldest first
HISTORY_STEPS = 'history_steps'  # (N,) int64
HISTORY_MASK = 'history_mask'  # (N,) bool, False before the episode start
CHUNK_FRAMES = 'chunk_frames'  # (Nc, V, H, W, 3) uint8, frames at s + o + n K
CHUNK_PROPRIO = 'chunk_proprio'  # (Nc, A) float32, joint positions at s + o + n K
CHUNK_STEPS = 'chunk_steps'  # (Nc,) int64, s + o + n K
ACTIONS = 'actions'  # (Nc, K, A) float32, actions at s + o + n K + k
ACTION_MASK = 'action_mask'  # (Nc, K) bool, False for padding past the episode end
OBJECT_POSITION = 'object_position'  # (Nc, P) float32, positions at s + o + n K (aux; NaN: none)
OBJECT_MASK = 'object_mask'  # (Nc,) bool, False where the episode has no object position
OFFSET = 'offset'  # () int64, o
TASK_ID = 'task_id'  # () int64, index into config.task.task_names

BATCH_KEYS = (CLIP_FRAMES, CLIP_STEPS, CLIP_MASK, HISTORY_FRAMES, HISTORY_STEPS, HISTORY_MASK,
              CHUNK_FRAMES, CHUNK_PROPRIO, CHUNK_STEPS, ACTIONS, ACTION_MASK, OBJECT_POSITION,
              OBJECT_MASK, OFFSET, TASK_ID)


def sample_offset(rng: np.random.Generator, max_offset: int) -> int:
    """Draw the horizon-adaptive offset o ~ U{0..max_offset}."""
    return int(rng.integers(0, max_offset + 1))


def _gather(array: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """array[steps] with steps clamped into the episode."""
    return array[np.clip(steps, 0, len(array) - 1)]


def build_sample(frames: np.ndarray, joint_positions: np.ndarray, actions: np.ndarray,
                 start: int, offset: int, config: ModelConfig, task_id: int = 0,
                 object_position: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """
    Build one training sample from an episode.

    Parameters
    ----------
    frames : np.ndarray
        (T, V, H, W, 3) uint8 camera frames of the episode.
    joint_positions : np.ndarray
        (T, A) joint positions (robot units).
    actions : np.ndarray
        (T, A) actions (absolute joint targets) taken at each step.
    start : int
        s, the planner frame's step, 0 <= s < T.
    offset : int
        o, 0 <= o (normally <= config.objective.max_offset).
    config : ModelConfig
        Supplies F, frame_stride, N, history_stride, Nc and K.
    task_id : int
        Index of the episode's task in `config.task.task_names`.
    object_position : np.ndarray, optional
        (T, P) position target (`objective.position_dim` numbers; NaN where a slot has no
        object): NaN and a False mask when omitted.

    Returns
    -------
    dict of str to np.ndarray
        Keyed by the module constants above (shapes there).

    """
    length = len(frames)
    if not (len(joint_positions) == len(actions) == length):
        raise ValueError(f'episode arrays differ in length: frames {length}, joints '
                         f'{len(joint_positions)}, actions {len(actions)}')
    if not 0 <= start < length:
        raise ValueError(f'start {start} outside the episode (0..{length - 1})')
    if offset < 0:
        raise ValueError(f'offset must be >= 0, got {offset}')
    planner, executor = config.planner, config.executor
    clip = start + planner.frame_stride * np.arange(planner.num_future_frames + 1)  # (1 + F,)
    history = start - planner.history_stride * np.arange(planner.memory_size, 0, -1)  # (N,)
    chunks = start + offset + executor.chunk_len * np.arange(executor.num_chunks)  # (Nc,)
    targets = chunks[:, None] + np.arange(executor.chunk_len)[None, :]  # (Nc, K)
    if object_position is None:
        objects = np.full((len(chunks), config.objective.position_dim), np.nan, np.float32)
    else:
        objects = _gather(object_position, chunks).astype(np.float32)
    return {
        CLIP_FRAMES: _gather(frames, clip),
        CLIP_STEPS: clip.astype(np.int64),
        CLIP_MASK: clip < length,
        HISTORY_FRAMES: _gather(frames, history),
        HISTORY_STEPS: history.astype(np.int64),
        HISTORY_MASK: history >= 0,
        CHUNK_FRAMES: _gather(frames, chunks),
        CHUNK_PROPRIO: _gather(joint_positions, chunks).astype(np.float32),
        CHUNK_STEPS: chunks.astype(np.int64),
        ACTIONS: _gather(actions, targets).astype(np.float32),
        ACTION_MASK: targets < length,
        OBJECT_POSITION: objects,
        OBJECT_MASK: np.full(len(chunks), object_position is not None),
        OFFSET: np.asarray(offset, dtype=np.int64),
        TASK_ID: np.asarray(task_id, dtype=np.int64),
    }


def collate_samples(samples: Sequence[Dict[str, np.ndarray]]) -> Dict[str, torch.Tensor]:
    """Stack samples into a batch of tensors with a leading B axis."""
    return {key: torch.from_numpy(np.stack([s[key] for s in samples])) for key in BATCH_KEYS}
