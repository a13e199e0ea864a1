"""
The index of a LeRobot dataset directory: features, fps, tasks, and where each episode lives.

Two on-disk versions are read (LeRobot's `codebase_version`):

- v3.0: `meta/info.json`; `meta/tasks.parquet` (task string -> task_index);
  `meta/episodes/chunk-*/file-*.parquet`, one row per episode (`length`, `tasks`,
  `data/chunk_index`, `data/file_index`, `dataset_from_index`, `dataset_to_index`, and per
  video key `videos/<key>/chunk_index`, `file_index`, `from_timestamp`, `to_timestamp`).
  Several episodes share one data parquet and one mp4 per video key: an episode's rows are
  those with its `episode_index`, its frames start at `from_timestamp` in the file.
- v2.1: `meta/info.json`; `meta/tasks.jsonl`; `meta/episodes.jsonl` (`episode_index`,
  `tasks`, `length`); one parquet and one mp4 per video key per episode, at the paths
  `info.json` gives (`episode_chunk` = episode_index // chunks_size), frames from 0 s.

`open_dataset` reads and checks all of it (not the rows or frames: `reader`), raising
`DatasetError` naming the file and the field.
"""

from dataclasses import dataclass
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

PathLike = Union[str, Path]
INFO_FILE = Path('meta') / 'info.json'
V30, V21 = 'v3.0', 'v2.1'
VERSIONS = (V30, V21)
VIDEO, IMAGE = 'video', 'image'  # frames in mp4 files / encoded in the rows


class DatasetError(ValueError):
    """A LeRobot dataset that cannot be read as it says it is; the message names the file."""


def is_lerobot_dataset(path: PathLike) -> bool:
    """Whether `path` is a directory with a LeRobot `meta/info.json`."""
    return (Path(path) / INFO_FILE).is_file()


@dataclass(frozen=True)
class Feature:
    """
    One feature of `info.json`.

    Attributes
    ----------
    key : str
        e.g. 'observation.state', 'observation.images.cam_high'.
    dtype : str
        'video', 'image', 'float32', 'int64', ...
    shape : tuple of int
        Per-frame shape ((H, W, 3) for a video in LeRobot's HWC naming, (A,) for a vector).
    names : tuple of str, optional
        Names of a vector's values (the 'names' list, or the one list of a {'motors': [...]}
        dict), else None.

    """

    key: str
    dtype: str
    shape: Tuple[int, ...]
    names: Optional[Tuple[str, ...]] = None

    @property
    def is_video(self) -> bool:
        """Whether the frames live in mp4 files."""
        return self.dtype == VIDEO

    def image_hw(self) -> Tuple[int, int]:
        """Return a video's (H, W), from its shape and names (HWC, or CHW where named so)."""
        names = self.names or ()
        if len(self.shape) == 3 and names[:1] == ('channels',):
            return self.shape[1], self.shape[2]
        return self.shape[0], self.shape[1]


@dataclass(frozen=True)
class VideoSpan:
    """Where an episode's frames of one video key are: the file and its first frame's time."""

    path: Path
    from_s: float


@dataclass(frozen=True)
class EpisodeEntry:
    """
    One episode of the index.

    Attributes
    ----------
    index : int
        Its `episode_index`.
    length : int
        Frames (rows) it has.
    data_path : Path
        The parquet holding its rows (with other episodes' in v3.0).
    videos : dict
        Video key -> VideoSpan.

    """

    index: int
    length: int
    data_path: Path
    videos: Dict[str, VideoSpan]


@dataclass(frozen=True)
class DatasetIndex:
    """
    A LeRobot dataset, opened: `open_dataset`.

    Attributes
    ----------
    root : Path
        The dataset directory.
    version : str
        'v3.0' or 'v2.1'.
    fps : float
        Frames per second of every feature.
    features : dict
        Key -> Feature, in info.json's order.
    tasks : dict
        task_index -> task string.
    episodes : tuple of EpisodeEntry
        In episode_index order.

    """

    root: Path
    version: str
    fps: float
    features: Dict[str, Feature]
    tasks: Dict[int, str]
    episodes: Tuple[EpisodeEntry, ...]

    def fail(self, file: PathLike, what: str) -> DatasetError:
        """Return a DatasetError naming `file` (relative to the root) and `what`."""
        return DatasetError(f'dataset {self.root}: {_relative(self.root, file)}: {what}')

    def episode(self, index: int) -> EpisodeEntry:
        """Return the episode with `episode_index` `index`."""
        for entry in self.episodes:
            if entry.index == index:
                return entry
        raise DatasetError(f'dataset {self.root}: no episode {index} (it has '
                           f'{[e.index for e in self.episodes]})')

    @property
    def video_keys(self) -> List[str]:
        """Return the keys of the video features, in info.json's order."""
        return [key for key, feature in self.features.items() if feature.is_video]

    @property
    def image_keys(self) -> List[str]:
        """Return the keys of every feature holding frames (video or image), in order."""
        return [k for k, f in self.features.items() if f.dtype in (VIDEO, IMAGE)]


def _relative(root: Path, file: PathLike) -> str:
    file = Path(file)
    return str(file.relative_to(root)) if root in file.parents else str(file)


def _names(value: Any) -> Optional[Tuple[str, ...]]:
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _field(values: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in values:
        raise DatasetError(f'{where}: no field {name!r}')
    value = values[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DatasetError(f'{where}: field {name!r} = {value!r} is not a {kind.__name__}')
    return value


def _features(info: Mapping[str, Any], where: str) -> Dict[str, Feature]:
    out = {}
    for key, spec in _field(info, 'features', dict, where).items():
        here = f'{where}: features.{key}'
        if not isinstance(spec, dict):
            raise DatasetError(f'{here}: expected a mapping, got {spec!r}')
        shape = spec.get('shape')
        if not isinstance(shape, list) or not all(isinstance(s, int) and s > 0 for s in shape):
            raise DatasetError(f'{here}: shape {shape!r} is not a list of positive ints')
        out[key] = Feature(key, str(_field(spec, 'dtype', str, here)), tuple(shape),
                           _names(spec.get('names')))
    return out


def _read_json(path: Path, root: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError:
        raise DatasetError(f'dataset {root}: missing file {_relative(root, path)}') from None
    except ValueError as error:
        raise DatasetError(f'dataset {root}: {_relative(root, path)}: not valid JSON '
                           f'({error})') from None


def _read_jsonl(path: Path, root: Path) -> List[Dict[str, Any]]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        raise DatasetError(f'dataset {root}: missing file {_relative(root, path)}') from None
    rows = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as error:
                raise DatasetError(f'dataset {root}: {_relative(root, path)} line {number}: '
                                   f'not valid JSON ({error})') from None
    return rows


def _read_parquet_rows(path: Path, root: Path) -> List[Dict[str, Any]]:
    import pyarrow.parquet as pq  # heavy: only where a dataset is read
    try:
        return pq.read_table(path).to_pylist()
    except FileNotFoundError:
        raise DatasetError(f'dataset {root}: missing file {_relative(root, path)}') from None
    except Exception as error:  # pyarrow raises its own kinds for a damaged file
        raise DatasetError(f'dataset {root}: {_relative(root, path)}: not a readable parquet '
                           f'file ({" ".join(str(error).split())})') from None


def _format(template: str, where: str, **values: Any) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as error:
        raise DatasetError(f'{where}: path template {template!r} cannot be filled '
                           f'({error!r})') from None


def _tasks_v30(root: Path) -> Dict[int, str]:
    path = root / 'meta' / 'tasks.parquet'
    tasks = {}
    for row in _read_parquet_rows(path, root):
        text = row.get('task', row.get('__index_level_0__'))
        if not isinstance(text, str) or not isinstance(row.get('task_index'), int):
            raise DatasetError(f'dataset {root}: meta/tasks.parquet: row {row!r} lacks a task '
                               'string or task_index')
        tasks[row['task_index']] = text
    return tasks


def _episodes_v30(root: Path, info: Mapping[str, Any], videos: List[str]) -> List[EpisodeEntry]:
    files = sorted((root / 'meta' / 'episodes').glob('chunk-*/file-*.parquet'))
    if not files:
        raise DatasetError(f'dataset {root}: missing file meta/episodes/chunk-*/file-*.parquet')
    data_path = _field(info, 'data_path', str, f'dataset {root}: meta/info.json')
    video_path = info.get('video_path') or ''
    entries = []
    for file in files:
        for row in _read_parquet_rows(file, root):
            where = (f'dataset {root}: {_relative(root, file)}: episode '
                     f'{row.get("episode_index")}')
            index = _field(row, 'episode_index', int, where)
            data = root / _format(data_path, where, chunk_index=_field(
                row, 'data/chunk_index', int, where), file_index=_field(
                row, 'data/file_index', int, where))
            spans = {}
            for key in videos:
                spans[key] = VideoSpan(root / _format(
                    video_path, where, video_key=key,
                    chunk_index=_field(row, f'videos/{key}/chunk_index', int, where),
                    file_index=_field(row, f'videos/{key}/file_index', int, where)),
                    _field(row, f'videos/{key}/from_timestamp', float, where))
            entries.append(EpisodeEntry(index, _field(row, 'length', int, where), data, spans))
    return entries


def _episodes_v21(root: Path, info: Mapping[str, Any], videos: List[str]) -> List[EpisodeEntry]:
    where_info = f'dataset {root}: meta/info.json'
    data_path = _field(info, 'data_path', str, where_info)
    video_path = info.get('video_path') or ''
    chunks = _field(info, 'chunks_size', int, where_info)
    entries = []
    for row in _read_jsonl(root / 'meta' / 'episodes.jsonl', root):
        where = f'dataset {root}: meta/episodes.jsonl: episode {row.get("episode_index")}'
        index = _field(row, 'episode_index', int, where)
        chunk = index // max(chunks, 1)
        data = root / _format(data_path, where, episode_chunk=chunk, episode_index=index)
        spans = {key: VideoSpan(root / _format(video_path, where, episode_chunk=chunk,
                                               video_key=key, episode_index=index), 0.0)
                 for key in videos}
        entries.append(EpisodeEntry(index, _field(row, 'length', int, where), data, spans))
    return entries


def open_dataset(root: PathLike) -> DatasetIndex:
    """
    Read a LeRobot dataset's metadata (module docstring); rows and frames are read later.

    Raises
    ------
    DatasetError
        No or malformed info.json, an unsupported codebase_version, a missing or damaged
        metadata file, a field missing from an episode's row, no episodes.

    """
    root = Path(root).resolve()
    info = _read_json(root / INFO_FILE, root)
    where = f'dataset {root}: meta/info.json'
    if not isinstance(info, dict):
        raise DatasetError(f'{where}: expected a JSON object')
    version = _field(info, 'codebase_version', str, where)
    if version not in VERSIONS:
        raise DatasetError(f'{where}: codebase_version {version!r} is not one this package '
                           f'reads ({list(VERSIONS)}; convert it with lerobot first)')
    fps = _field(info, 'fps', float, where)
    if not fps > 0:
        raise DatasetError(f'{where}: fps {fps!r} must be > 0')
    features = _features(info, where)
    videos = [key for key, feature in features.items() if feature.is_video]
    if version == V30:
        tasks = _tasks_v30(root)
        episodes = _episodes_v30(root, info, videos)
    else:
        tasks = {}
        for row in _read_jsonl(root / 'meta' / 'tasks.jsonl', root):
            tasks[_field(row, 'task_index', int, f'dataset {root}: meta/tasks.jsonl')] = \
                _field(row, 'task', str, f'dataset {root}: meta/tasks.jsonl')
        episodes = _episodes_v21(root, info, videos)
    if not episodes:
        raise DatasetError(f'dataset {root}: no episodes in its meta/ files')
    episodes.sort(key=lambda e: e.index)
    return DatasetIndex(root, version, fps, features, tasks, tuple(episodes))
