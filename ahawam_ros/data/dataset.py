"""
Training data: episodes from a directory of bags (cached) or from the simulator, as datasets.

- `load_episodes` decodes every bag under a directory, or every episode of a LeRobot dataset
  (`data/lerobot`), once (`EpisodeCache`), through a mapping when given
  (`DataConfig.mapping`, a YAML file: see data/mapping and data/lerobot/mapping), resizing
  frames to the model's view size as they are decoded when asked, and returns the episodes
  and their cache keys.
- `PolicyDataset` turns episodes into AHA-WAM training samples with the model's own
  `sample_builder.build_sample` (planner clip, history frames, per-chunk actions, proprio and
  frames at o + nK, task id). Starts s run over every episode with a stride.
- `FrameDataset` serves single steps' views for the autoencoder stage.

Both datasets are indexed by a *draw id*, `epoch * len(dataset) + i` (see `DrawSampler`):
the sample is `i mod len` and its random offset o is drawn from a generator seeded by
(seed, draw id), so a sample does not depend on worker processes, ranks or resumption.

Shapes: T steps, V views, H x W pixels, A joints (sample keys: `sample_builder`).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ahawam_ros.data.bag_files import find_bags
from ahawam_ros.data.bag_layout import Layout
from ahawam_ros.data.bag_reader import read_episode
from ahawam_ros.data.cache import cache_key, EpisodeCache
from ahawam_ros.data.demo_bags import METADATA_FILE, read_bag_metadata
from ahawam_ros.data.episode import Episode
from ahawam_ros.data.features import feature_preset
from ahawam_ros.data.hindsight import grasp_positions
from ahawam_ros.data.lerobot.mapping import load_dataset_mapping
from ahawam_ros.data.lerobot.meta import is_lerobot_dataset
from ahawam_ros.data.lerobot.reader import episode_builders
from ahawam_ros.data.mapping_yaml import load_mapping
from ahawam_ros.model.config import ModelConfig
from ahawam_ros.model.sample_builder import build_sample, sample_offset
import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler


PathLike = Union[str, Path]
FRAMES = 'frames'  # FrameDataset batch key: (B, V, H, W, 3) uint8


@dataclass
class DataConfig:
    """
    Where the demonstrations are and how they are decoded.

    Attributes
    ----------
    bags : str
        Directory holding rosbag2 bag directories or .mcap files (searched recursively), one
        bag, or a LeRobot dataset (v3.0 or v2.1: a directory with meta/info.json).
    cache_dir : str, optional
        Decoded-episode cache; `<bags>/.ahawam_cache` when omitted.
    feature_preset : str, optional
        FeatureConfig preset naming topics and cameras; each bag's recorded features if None.
    mapping : str, optional
        YAML topic and joint mapping file (a robot's own layout, e.g.
        config/mappings/aloha_interbotix.yaml), or for a LeRobot dataset its feature mapping
        (config/mappings/lerobot_aloha.yaml); excludes `feature_preset`.
    resize_images : bool
        Resize frames of another size to the model's view size (cv2 INTER_AREA, as the live
        nodes do) instead of failing.
    start_stride : int
        Control steps between consecutive sample starts within an episode.

    """

    bags: str = ''
    cache_dir: Optional[str] = None
    feature_preset: Optional[str] = None
    mapping: Optional[str] = None
    resize_images: bool = False
    start_stride: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.bags, str) or not self.bags:
            raise ValueError(f'DataConfig.bags = {self.bags!r}: must name a directory')
        if isinstance(self.start_stride, bool) or not isinstance(self.start_stride, int) \
                or self.start_stride < 1:
            raise ValueError(f'DataConfig.start_stride = {self.start_stride!r}: must be an '
                             'int >= 1')
        if self.feature_preset is not None:
            feature_preset(self.feature_preset)  # fails listing the valid presets
        if self.mapping is not None:
            if self.feature_preset is not None:
                raise ValueError('DataConfig: give feature_preset or mapping, not both')
            if self.is_dataset:
                load_dataset_mapping(self.mapping)  # fails naming the file and field
            else:
                load_mapping(self.mapping)

    @property
    def is_dataset(self) -> bool:
        """Whether `bags` is a LeRobot dataset rather than bags."""
        return is_lerobot_dataset(self.bags)

    @property
    def cache_path(self) -> Path:
        """Return the cache directory."""
        return Path(self.cache_dir) if self.cache_dir else Path(self.bags) / '.ahawam_cache'

    @property
    def features(self) -> Layout:
        """Return the mapping, else the FeatureConfig preset, else None (each bag's own)."""
        if self.is_dataset:
            return None  # a dataset's mapping is read by data/lerobot
        if self.mapping:
            return load_mapping(self.mapping)
        return feature_preset(self.feature_preset) if self.feature_preset else None


def check_episode(episode: Episode, config: ModelConfig, source: str = 'episode') -> None:
    """Fail naming `source` unless the episode's views, size, joints and task fit `config`."""
    ae = config.autoencoder
    want = (ae.num_views, ae.view_height, ae.view_width, 3)
    if tuple(episode.images.shape[1:]) != want:
        raise ValueError(f'{source}: frames (V, H, W, 3) = {tuple(episode.images.shape[1:])}, '
                         f'the model {config.name!r} expects {want} (cameras '
                         f'{episode.cameras}; resize with resize_images / --resize-images)')
    if len(episode.joint_names) != config.executor.action_dim:
        raise ValueError(f'{source}: {len(episode.joint_names)} joints, the model expects '
                         f'{config.executor.action_dim}')
    if episode.task not in config.task.task_names:
        raise ValueError(f"{source}: task {episode.task!r} is not one of the model's tasks "
                         f'{config.task.task_names}')
    position = episode.object_position
    if position is not None and position.shape[1] != config.objective.position_dim:
        raise ValueError(f'{source}: position target of {position.shape[1]} numbers, the '
                         f"model's position head has {config.objective.position_dim}")


def recorded_object_position(bag: Path, steps: int) -> Optional[np.ndarray]:
    """
    Return the (T, 3) object positions a simulated demonstration recorded, else None.

    Read from the bag's `episode.json` (`privileged_object_position`, written by
    `record_demos`); bags of real robots have none. A length that differs from the episode's
    `steps` is an error naming the bag.
    """
    if not (Path(bag) / METADATA_FILE).is_file():
        return None
    values = read_bag_metadata(bag).get('privileged_object_position')
    if values is None:
        return None
    position = np.asarray(values, dtype=np.float64)
    if position.shape != (steps, 3):
        raise ValueError(f'bag {bag}: privileged_object_position has shape {position.shape}, '
                         f'the episode has {steps} steps')
    return position


def _episode_builders(config: DataConfig, size: Optional[Tuple[int, int]],
                      control_rate_hz: float) -> List[Tuple[str, str, Callable[[], Episode]]]:
    """Return (cache key, source label, build) per episode of the bags or the dataset."""
    if config.is_dataset:
        return episode_builders(config.bags, config.mapping, size, control_rate_hz)
    bags = find_bags(config.bags)
    if not bags:
        raise FileNotFoundError(f'no rosbag2 bags (directories with metadata.yaml, or .mcap '
                                f'files) or LeRobot dataset (meta/info.json) under {config.bags}')
    layout = config.features
    out = []
    for bag in bags:
        def build(bag: Path = bag) -> Episode:
            episode = read_episode(bag, layout, resize_to=size)  # frames resized as decoded
            episode.object_position = recorded_object_position(bag, len(episode))
            return episode
        out.append((cache_key(bag, layout, size), f'bag {bag}', build))
    return out


def load_episodes(config: DataConfig, model: ModelConfig,
                  cache: Optional[EpisodeCache] = None) -> Tuple[List[Episode], List[str]]:
    """
    Decode (or read from the cache) every bag, or dataset episode, under `config.bags`.

    Each episode's `object_position` is the position target of `model.objective`: the grasp
    point(s) in hindsight when `grasp_loss_weight` > 0 (from its joints and commands, as
    `grasp_target` says), else the object's recorded position where a simulated
    demonstration has one.

    Returns
    -------
    episodes : list of Episode
        In bag path order, checked against `model` (`check_episode`).
    keys : list of str
        Their cache keys.

    """
    cache = cache or EpisodeCache(config.cache_path)
    ae = model.autoencoder
    size = (ae.view_height, ae.view_width) if config.resize_images else None
    episodes, keys = [], []
    for key, source, build in _episode_builders(config, size, model.control_rate_hz):
        episode = cache.get(key, build, source=source)
        if model.objective.grasp_loss_weight > 0:  # the position target: the grasp point(s)
            episode.object_position = grasp_positions(episode, model.objective.grasp_target)
        check_episode(episode, model, source=source)
        episodes.append(episode)
        keys.append(key)
    return episodes, keys


class PolicyDataset(Dataset):
    """
    AHA-WAM training samples over episodes, indexed by draw id (module docstring).

    Parameters
    ----------
    episodes : sequence of Episode
        Checked against `config`.
    config : ModelConfig
        Clip geometry, chunking, max offset O and task names.
    seed : int
        Seeds the per-draw offsets.
    start_stride : int
        Steps between sample starts; starts run over 0 .. max(T - K, 0).

    """

    def __init__(self, episodes: Sequence[Episode], config: ModelConfig, seed: int = 0,
                 start_stride: int = 1) -> None:
        if not episodes:
            raise ValueError('PolicyDataset needs at least one episode')
        for i, episode in enumerate(episodes):
            check_episode(episode, config, source=f'episode {i}')
        self.episodes = list(episodes)
        self.config = config
        self.seed = seed
        self.task_ids = [config.task.task_names.index(e.task) for e in self.episodes]
        chunk = config.executor.chunk_len
        self.windows = np.array([(e, s) for e, episode in enumerate(self.episodes)
                                 for s in range(0, max(len(episode) - chunk, 0) + 1,
                                                start_stride)], dtype=np.int64)  # (N, 2)

    def __len__(self) -> int:
        return len(self.windows)

    def offset(self, draw: int) -> int:
        """Return the offset o of draw id `draw`."""
        rng = np.random.default_rng((self.seed, int(draw)))
        return sample_offset(rng, self.config.objective.max_offset)

    def __getitem__(self, draw: int) -> Dict[str, np.ndarray]:
        """Return the sample of draw id `draw` (keys and shapes: `sample_builder`)."""
        index, start = self.windows[int(draw) % len(self.windows)]
        episode = self.episodes[index]
        return build_sample(episode.images, episode.joint_positions, episode.actions,
                            int(start), self.offset(draw), self.config, self.task_ids[index],
                            episode.object_position)


class FrameDataset(Dataset):
    """Every step's views, (V, H, W, 3) uint8, for the autoencoder; indexed by draw id."""

    def __init__(self, episodes: Sequence[Episode]) -> None:
        if not episodes:
            raise ValueError('FrameDataset needs at least one episode')
        self.episodes = list(episodes)
        self.index = np.array([(e, t) for e, episode in enumerate(self.episodes)
                               for t in range(len(episode))], dtype=np.int64)  # (N, 2)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, draw: int) -> Dict[str, np.ndarray]:
        episode, step = self.index[int(draw) % len(self.index)]
        return {FRAMES: np.asarray(self.episodes[episode].images[step])}


def collate_frames(samples: Sequence[Dict[str, np.ndarray]]) -> Dict[str, torch.Tensor]:
    """Stack FrameDataset samples to {'frames': (B, V, H, W, 3) uint8}."""
    return {FRAMES: torch.from_numpy(np.stack([s[FRAMES] for s in samples]))}


class DrawSampler(DistributedSampler):
    """
    `DistributedSampler` that yields draw ids `epoch * len(dataset) + i` instead of i.

    Same shuffling and rank split as its parent (drop_last: every rank gets as many).
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 shuffle: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed, drop_last=True)

    def __iter__(self) -> Iterator[int]:
        base = self.epoch * len(self.dataset)
        return (base + i for i in super().__iter__())


def epoch_batches(sampler: DrawSampler, epoch: int, batch_size: int,
                  skip: int = 0) -> List[List[int]]:
    """Return epoch `epoch`'s full batches of draw ids, without the first `skip` batches."""
    sampler.set_epoch(epoch)
    draws = list(sampler)
    count = len(draws) // batch_size
    return [draws[i * batch_size:(i + 1) * batch_size] for i in range(skip, count)]
