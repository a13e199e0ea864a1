"""
One LeRobot episode as an `Episode`: its rows, its frames, its task, on the control clock.

Rows come from the episode's data parquet (v3.0: the rows of its `episode_index` in a file
shared with other episodes), frames from each view's video at `from_timestamp + timestamp`
(`video`), or for an 'image' feature (a dataset recorded without videos) from the PNG or
JPEG bytes in its rows. What is checked, each failure a `DatasetError` naming the file and the
field: rows against the metadata's length, `frame_index` 0..T-1, timestamps on the 1/fps grid,
each vector's values per frame against info.json's shape, every mapped feature present,
every frame decoded at its time and of info.json's size, the task mapped to a policy task.

The dataset's fps against the policy's control rate: equal, it is read as is; a whole
multiple k (a 100 fps dataset for a 50 Hz policy), every k-th row is kept, said in the log;
anything else is refused (resample the dataset, or train a model at the dataset's rate).

Shapes: T steps, V views, H x W pixels, A joints.
"""

import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ahawam_ros.data.cache import CACHE_VERSION
from ahawam_ros.data.episode import Episode
from ahawam_ros.data.lerobot.mapping import (DatasetMapping, default_mapping,
                                             load_dataset_mapping, value_columns, VectorSource)
from ahawam_ros.data.lerobot.meta import (DatasetError, DatasetIndex, EpisodeEntry, IMAGE,
                                          open_dataset, PathLike)
from ahawam_ros.data.lerobot.video import decode_frames, VideoError
import numpy as np

LOG = logging.getLogger(__name__)
ROW_COLUMNS = ('timestamp', 'frame_index', 'episode_index', 'task_index')


def row_stride(fps: float, control_rate_hz: Optional[float], where: str) -> int:
    """Return k: every k-th row is a control step (module docstring); raise if none fits."""
    if control_rate_hz is None:
        return 1
    ratio = fps / control_rate_hz
    if ratio >= 1 and abs(ratio - round(ratio)) < 1e-6:
        return int(round(ratio))
    raise DatasetError(f"{where}: fps {fps:g} is not the policy's control rate "
                       f'{control_rate_hz:g} Hz nor a whole multiple of it: resample the '
                       'dataset, or train a model at its rate')


def _vectors(table, key: str, size: int, fail) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc
    column = table.column(key).combine_chunks()
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type) \
            or pa.types.is_fixed_size_list(column.type):
        lengths = np.asarray(pc.list_value_length(column).fill_null(-1))
        if np.any(lengths != size):
            wrong = int(np.flatnonzero(lengths != size)[0])
            raise fail(f'feature {key!r} has {lengths[wrong]} values in its row {wrong}, '
                       f'info.json says {size}')
        values = np.asarray(column.flatten(), dtype=np.float64)
    elif size == 1:
        values = np.asarray(column.fill_null(np.nan), dtype=np.float64)
    else:
        raise fail(f'feature {key!r} is a {column.type} column, info.json says {size} values')
    values = values.reshape(len(column), size)
    if not np.all(np.isfinite(values)):
        raise fail(f'feature {key!r} has non-finite values (row '
                   f'{int(np.flatnonzero(~np.isfinite(values).all(1))[0])})')
    return values


def read_rows(index: DatasetIndex, entry: EpisodeEntry, keys: Sequence[str]
              ) -> Dict[str, np.ndarray]:
    """
    Return the episode's rows: ROW_COLUMNS and each feature of `keys` as (T, size) float64.

    Raises DatasetError for a missing or damaged parquet, a missing column, rows that do not
    match the metadata (count, frame_index, timestamps on the fps grid) or a wrong shape.
    """
    import pyarrow.parquet as pq

    def fail(what: str) -> DatasetError:
        return index.fail(entry.data_path, f'episode {entry.index}: {what}')

    if not entry.data_path.is_file():
        raise DatasetError(f'dataset {index.root}: missing file '
                           f"{entry.data_path.relative_to(index.root)} (episode {entry.index}'s "
                           'rows)')
    try:
        schema = pq.read_schema(entry.data_path)
        absent = [k for k in (*ROW_COLUMNS, *keys) if k not in schema.names]
        if absent:
            raise fail(f'no column(s) {absent}')
        # the episode's rows only (row groups of other episodes are skipped unread)
        table = pq.read_table(entry.data_path, columns=[*ROW_COLUMNS, *keys],
                              filters=[('episode_index', '=', entry.index)])
    except DatasetError:
        raise
    except Exception as error:  # pyarrow's own errors for a damaged file
        raise fail(f'not a readable parquet file ({" ".join(str(error).split())})') from None
    if table.num_rows != entry.length:
        raise fail(f'{table.num_rows} rows, the metadata says length {entry.length}')
    frame_index = np.asarray(table.column('frame_index'))
    if not np.array_equal(frame_index, np.arange(entry.length)):
        raise fail('frame_index is not 0, 1, 2, ... in row order')
    timestamps = np.asarray(table.column('timestamp'), dtype=np.float64)
    off = np.abs(timestamps - frame_index / index.fps)
    if np.any(off > 0.25 / index.fps):
        row = int(np.argmax(off))
        raise fail(f'timestamp {timestamps[row]:.4f} s of frame {row} is off the '
                   f'{index.fps:g} fps grid ({frame_index[row] / index.fps:.4f} s)')
    rows = {name: np.asarray(table.column(name)) for name in ROW_COLUMNS}
    rows['timestamp'] = timestamps
    for key in keys:
        if index.features[key].dtype == IMAGE:
            rows[key] = _encoded_images(table, key, fail)
        else:
            rows[key] = _vectors(table, key, int(np.prod(index.features[key].shape)), fail)
    return rows


def _encoded_images(table, key: str, fail) -> np.ndarray:
    """Return an 'image' feature's encoded frames (PNG or JPEG bytes), an object (T,) array."""
    import pyarrow as pa
    column = table.column(key).combine_chunks()
    if not pa.types.is_struct(column.type) or column.type.get_field_index('bytes') < 0:
        raise fail(f'image feature {key!r} is a {column.type} column, not {{bytes, path}}')
    data = column.field('bytes').to_pylist()
    missing = [row for row, value in enumerate(data) if not value]
    if missing:
        raise fail(f'image feature {key!r} has no bytes in row {missing[0]} (images stored by '
                   'path are not read: embed them)')
    return np.asarray(data, dtype=object)


def _map(index: DatasetIndex, sources: Sequence[VectorSource], rows: Dict[str, np.ndarray],
         joint_names: Sequence[str], where: str) -> np.ndarray:
    out = np.empty((len(rows['timestamp']), len(joint_names)))
    for source in sources:
        columns, scales, offsets = value_columns(index, source, where)
        targets = [list(joint_names).index(j.joint) for j in source.joints]
        out[:, targets] = rows[source.feature][:, columns] * scales + offsets
    return out


def _frames(index: DatasetIndex, entry: EpisodeEntry, feature: str, times: np.ndarray,
            encoded: Optional[np.ndarray], resize_to: Optional[Tuple[int, int]]) -> np.ndarray:
    """Return (T, H, W, 3) frames of a video feature at `times`, or of `encoded` images."""
    import cv2
    spec = index.features[feature]
    height, width = spec.image_hw()

    def convert(frame: np.ndarray) -> np.ndarray:
        if frame.shape[:2] != (height, width):
            raise VideoError(f'a frame is {frame.shape[1]}x{frame.shape[0]}, info.json says '
                             f'{feature} is {width}x{height}')
        if resize_to and frame.shape[:2] != tuple(resize_to):
            return cv2.resize(frame, (resize_to[1], resize_to[0]), interpolation=cv2.INTER_AREA)
        return frame

    if not spec.is_video:  # an 'image' feature: encoded frames in the rows
        try:
            return np.stack([convert(_decode_image(data)) for data in encoded])
        except VideoError as error:
            raise index.fail(entry.data_path, f'episode {entry.index}, {feature}: {error}'
                             ) from None
    span = entry.videos[feature]
    try:
        frames = decode_frames(span.path, span.from_s + times, 0.25 / index.fps, convert)
    except VideoError as error:
        raise index.fail(span.path, f'episode {entry.index}, {feature}: {error}') from None
    return frames


def _decode_image(data: bytes) -> np.ndarray:
    import cv2
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise VideoError('a frame does not decode (not a PNG or JPEG image)')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_dataset_episode(index: DatasetIndex, entry: EpisodeEntry, mapping: DatasetMapping,
                         resize_to: Optional[Tuple[int, int]] = None,
                         control_rate_hz: Optional[float] = None) -> Episode:
    """
    Read one episode (module docstring) as an Episode on the control clock.

    Parameters
    ----------
    index, entry : DatasetIndex, EpisodeEntry
        The opened dataset (`meta.open_dataset`) and the episode.
    mapping : DatasetMapping
        Which features feed which view and joint.
    resize_to : (int, int), optional
        (H, W) every frame is resized to as it is decoded (cv2 INTER_AREA).
    control_rate_hz : float, optional
        The policy's control rate: rows are kept at it (`row_stride`); all rows when None.

    Returns
    -------
    Episode
        images uint8 (T, V, H, W, 3), joint_positions and actions float64 (T, A) in
        `mapping.joint_names` order, timestamps int64 (T,) ns from the episode's start (on
        the fps grid: frame_index / fps).

    """
    where = f'dataset {index.root}: episode {entry.index}'
    stride = row_stride(index.fps, control_rate_hz, f'dataset {index.root}: meta/info.json')
    if stride > 1:
        LOG.info('%s: %g fps, keeping every %d-th frame for %g Hz', where, index.fps, stride,
                 control_rate_hz)
    keys = sorted({s.feature for s in (*mapping.joint_states, *mapping.commands)})
    missing = [k for k in keys if k not in index.features]
    if missing:
        raise DatasetError(f'dataset {index.root}: meta/info.json: the mapping reads '
                           f'feature(s) {missing}, the dataset has {sorted(index.features)}')
    views = index.image_keys
    wrong = [k for k in mapping.camera_features if k not in views]
    if wrong:
        raise DatasetError(f'dataset {index.root}: meta/info.json: the mapping reads frames of '
                           f"{wrong}, the dataset's video and image features are {views}")
    images = [k for k in mapping.camera_features if index.features[k].dtype == IMAGE]
    rows = {k: v[::stride] for k, v in read_rows(index, entry, keys + images).items()}
    joints = _map(index, mapping.joint_states, rows, mapping.joint_names, where)
    actions = _map(index, mapping.commands, rows, mapping.joint_names, where)
    views = [_frames(index, entry, feature, rows['timestamp'], rows.get(feature), resize_to)
             for feature in mapping.camera_features]
    text = index.tasks.get(int(rows['task_index'][0]))
    task = mapping.policy_task(text) if text is not None else None
    if task is None:
        raise DatasetError(f'{where}: its task {text!r} maps to no policy task: list it under '
                           'tasks: in the mapping, or give task: for every task')
    return Episode(images=np.stack(views, axis=1), joint_positions=joints, actions=actions,
                   timestamps=np.round(rows['frame_index'] * (1e9 / index.fps)).astype(np.int64),
                   task=task,
                   cameras=mapping.cameras, joint_names=mapping.joint_names)


def _fingerprint(root: Path) -> list:
    """[relative name, size, mtime_ns] of every file of the dataset (not caches beside it)."""
    files = sorted(p for sub in ('meta', 'data', 'videos') for p in (root / sub).rglob('*')
                   if p.is_file())
    return [[str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def episode_builders(root: PathLike, mapping_file: Optional[str],
                     resize_to: Optional[Tuple[int, int]], control_rate_hz: Optional[float]
                     ) -> List[Tuple[str, str, Callable[[], Episode]]]:
    """
    Return (cache key, source label, build) for every episode of the dataset at `root`.

    The dataset's metadata and the mapping are read and checked now; `build()` reads one
    episode (`read_dataset_episode`). The key hashes the dataset's files, the episode, the
    mapping, the image size and the control rate, so a change to any gives a new entry.
    """
    index = open_dataset(root)
    mapping = load_dataset_mapping(mapping_file) if mapping_file else default_mapping(index)
    row_stride(index.fps, control_rate_hz, f'dataset {index.root}: meta/info.json')
    files = _fingerprint(index.root)
    out = []
    for entry in index.episodes:
        desc = {'version': CACHE_VERSION, 'dataset': str(index.root), 'files': files,
                'episode': entry.index, 'mapping': mapping.to_dict(),
                'image_size': list(resize_to) if resize_to else None,
                'control_rate_hz': control_rate_hz}
        key = hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:32]
        out.append((key, f'dataset {index.root} episode {entry.index}',
                    functools.partial(read_dataset_episode, index, entry, mapping, resize_to,
                                      control_rate_hz)))
    return out
