"""
Decoded-episode cache: bags are decoded once, later epochs and runs read memory-mapped arrays.

One entry per bag, `<cache_dir>/<key>/` with `images.npy` (uint8 (T, V, H, W, 3), opened as
a read-only memmap), `joint_positions.npy`, `actions.npy`, `timestamps.npy`, `meta.json` and,
for simulated demonstrations, `object_position.npy`.
The key hashes the bag's absolute path, the name, size and mtime of every file in it, the
FeatureConfig or TopicMapping (or 'recorded') and the target image size, so editing a bag,
re-recording it or changing the features gives a new entry. Entries are written to a
temporary folder and renamed into place, so concurrent writers (data-parallel ranks) never see
half an entry.

Shapes: T steps, V cameras, H x W pixels, A joints.
"""

import hashlib
import json
import os
from pathlib import Path
import shutil
from typing import Callable, Optional, Tuple, Union

from ahawam_ros.data.bag_layout import Layout
from ahawam_ros.data.episode import Episode
import numpy as np


CACHE_VERSION = 3  # bump when the entry layout or the decoding changes (3: object_position)
ARRAYS = ('images', 'joint_positions', 'actions', 'timestamps')
OPTIONAL_ARRAYS = ('object_position',)  # stored only when the episode has them
META_FILE = 'meta.json'
PathLike = Union[str, Path]


def bag_fingerprint(path: PathLike) -> list:
    """Return [relative name, size, mtime_ns] of every file of a bag (file or directory)."""
    path = Path(path)
    files = sorted(p for p in path.rglob('*') if p.is_file()) if path.is_dir() else [path]
    out = []
    for file in files:
        stat = file.stat()
        out.append([str(file.relative_to(path)) if path.is_dir() else file.name,
                    stat.st_size, stat.st_mtime_ns])
    return out


def cache_key(path: PathLike, features: Layout,
              image_size: Optional[Tuple[int, int]] = None) -> str:
    """Return the hex key of a bag's entry (see the module docstring)."""
    desc = {
        'version': CACHE_VERSION, 'bag': str(Path(path).resolve()),
        'files': bag_fingerprint(path),
        'features': features.to_dict() if features is not None else 'recorded',
        'image_size': list(image_size) if image_size else None,
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:32]


def save_entry(directory: PathLike, episode: Episode, source: str = '') -> None:
    """Write `episode` as a cache entry at `directory` (atomically; keeps an existing one)."""
    directory = Path(directory)
    tmp = directory.parent / f'.{directory.name}.tmp{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ARRAYS + OPTIONAL_ARRAYS:
        if getattr(episode, name) is not None:
            np.save(tmp / f'{name}.npy', np.ascontiguousarray(getattr(episode, name)))
    meta = {'task': episode.task, 'cameras': list(episode.cameras),
            'joint_names': list(episode.joint_names), 'source': source,
            'num_steps': len(episode)}
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + '\n')
    try:
        tmp.rename(directory)
    except OSError:  # another process finished the same entry first: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)


def load_entry(directory: PathLike) -> Episode:
    """Open a cache entry: images memory-mapped read-only, the small arrays in memory."""
    directory = Path(directory)
    meta = json.loads((directory / META_FILE).read_text())
    arrays = {name: np.load(directory / f'{name}.npy', mmap_mode='r' if name == 'images'
                            else None) for name in ARRAYS}
    arrays.update({name: np.load(directory / f'{name}.npy') for name in OPTIONAL_ARRAYS
                   if (directory / f'{name}.npy').is_file()})
    return Episode(task=meta['task'], cameras=tuple(meta['cameras']),
                   joint_names=tuple(meta['joint_names']), **arrays)


class EpisodeCache:
    """
    Decoded episodes on disk, keyed by bag content and decoding settings.

    Parameters
    ----------
    root : str or Path
        The cache directory (created on first write).

    """

    def __init__(self, root: PathLike) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def entry_dir(self, key: str) -> Path:
        """Return the directory of the entry with `key`."""
        return self.root / key

    def get(self, key: str, build: Callable[[], Episode], source: str = '') -> Episode:
        """Return the cached episode of `key`, building and storing it on a miss."""
        directory = self.entry_dir(key)
        if (directory / META_FILE).is_file():
            self.hits += 1
            return load_entry(directory)
        self.misses += 1
        save_entry(directory, build(), source)
        return load_entry(directory)
