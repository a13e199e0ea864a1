"""
Episodes (from bags, or any `Episode`s) written as a LeRobot v3.0 dataset.

The layout LeRobot 0.4's own writer produces, so its tools and its `LeRobotDataset` load it:

    meta/info.json                          codebase_version v3.0, fps, features, paths
    meta/tasks.parquet                      task string (the pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet  one row per episode: where its rows and frames
                                            are, its tasks and length, per-feature stats
    meta/stats.json                         per-feature stats over the dataset
    data/chunk-000/file-000.parquet         every row: observation.state, action (float32
                                            lists of A), timestamp, frame_index,
                                            episode_index, index, task_index
    videos/observation.images.<view>/chunk-000/file-000.mp4
                                            every episode's frames of a view, one after the
                                            other (an episode starts at its from_timestamp)

Rows sit on the fps grid (timestamp = frame_index / fps): an episode's steps are its control
steps. Task strings are the policy task names, so `mapping.default_mapping` reads the
dataset back with no mapping file. Videos are H.264 (libx264, yuv420p, CRF 23, a keyframe
every 2 frames as LeRobot writes them, for random access), which every LeRobot reader decodes.
LeRobot's own default, AV1 (`codec='libsvtav1'`, CRF 30), is smaller but not the default here:
SVT-AV1 run as root switches the encoding thread and its own threads to SCHED_FIFO priority
99, and even with those put back (`demote_realtime_threads`) native threads the process
starts later (the DDS threads of an rclpy context) come up real-time: use it only in a process
of its own (`ahawam export-lerobot --codec libsvtav1` is one). The directory is built beside
`out` and renamed into place: a failure leaves nothing half-written.

Shapes: T steps, V views, H x W pixels, A joints.
"""

from fractions import Fraction
import json
import os
from pathlib import Path
import shutil
from typing import Any, Dict, Iterable, List, Optional

from ahawam_ros.data.episode import Episode
from ahawam_ros.data.lerobot.mapping import ACTION_FEATURE, IMAGE_PREFIX, STATE_FEATURE
from ahawam_ros.data.lerobot.meta import INFO_FILE, V30
from ahawam_ros.thread_policy import demote_realtime_threads, realtime_threads
import numpy as np

DATA_PATH = 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
VIDEO_PATH = 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4'
EPISODES_FILE = Path('meta') / 'episodes' / 'chunk-000' / 'file-000.parquet'
TASKS_FILE = Path('meta') / 'tasks.parquet'
STATS_FILE = Path('meta') / 'stats.json'
DEFAULT_CODEC = 'libx264'
CODEC_NAMES = {'libsvtav1': 'av1', 'libaom-av1': 'av1', 'libx264': 'h264', 'h264': 'h264'}
CRF = {'libsvtav1': '30', 'libaom-av1': '30'}  # LeRobot's AV1 setting; H.264: 23
_INDEX_FEATURES = {'timestamp': 'float32', 'frame_index': 'int64', 'episode_index': 'int64',
                   'index': 'int64', 'task_index': 'int64'}


class _VideoWriter:
    """One mp4 of a view: frames appended episode after episode, pts = frame number."""

    def __init__(self, path: Path, fps: float, height: int, width: int, codec: str):
        import av
        os.environ.setdefault('SVT_LOG', '1')  # SVT-AV1 prints its banner otherwise
        self._keep = realtime_threads()  # real-time before the encoder: not its doing
        path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(path), mode='w')
        self.stream = self.container.add_stream(codec, rate=Fraction(fps).limit_denominator())
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, 'yuv420p'
        self.stream.options = {'crf': CRF.get(codec, '23'), 'g': '2'}
        self.frames = 0

    def write(self, images: np.ndarray) -> None:
        import av
        for image in images:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format='rgb24')
            frame.pts = self.frames
            self.frames += 1
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            if self.frames == 1:  # the encoder has started (and its threads with it)
                demote_realtime_threads(self._keep)

    def close(self) -> None:
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
            self.container.close()
        finally:
            demote_realtime_threads(self._keep)


def _stats(values: np.ndarray) -> Dict[str, list]:
    """Per-value min, max, mean, std and count over the rows of (N, D) `values`."""
    return {'min': values.min(0).tolist(), 'max': values.max(0).tolist(),
            'mean': values.mean(0).tolist(), 'std': values.std(0).tolist(),
            'count': [int(len(values))]}


def _image_stats(images: np.ndarray) -> Dict[str, list]:
    """Per-channel stats of uint8 (T, H, W, 3) frames in [0, 1], shaped (3, 1, 1) as LeRobot's."""
    pixels = images.reshape(-1, 3).astype(np.float64) / 255.0
    return {k: [[[v]] for v in values] if k != 'count' else values
            for k, values in _stats(pixels).items()}


def _features(episode: Episode, fps: float, codec: str) -> Dict[str, Any]:
    height, width = episode.images.shape[2:4]
    video_info = {'video.height': height, 'video.width': width,
                  'video.codec': CODEC_NAMES.get(codec, codec), 'video.pix_fmt': 'yuv420p',
                  'video.is_depth_map': False, 'video.fps': fps, 'video.channels': 3,
                  'has_audio': False}
    features: Dict[str, Any] = {
        f'{IMAGE_PREFIX}{camera}': {'dtype': 'video', 'shape': [height, width, 3],
                                    'names': ['height', 'width', 'channels'],
                                    'info': dict(video_info)}
        for camera in episode.cameras}
    for key in (STATE_FEATURE, ACTION_FEATURE):
        features[key] = {'dtype': 'float32', 'shape': [len(episode.joint_names)],
                         'names': list(episode.joint_names)}
    for key, dtype in _INDEX_FEATURES.items():
        features[key] = {'dtype': dtype, 'shape': [1], 'names': None}
    return features


def _tasks_table(tasks: List[str]):
    """Return the tasks table with the task string as its pandas index (what LeRobot reads)."""
    import pyarrow as pa
    table = pa.table({'task_index': pa.array(range(len(tasks)), pa.int64()),
                      '__index_level_0__': pa.array(tasks, pa.string())})
    pandas_meta = {
        'index_columns': ['__index_level_0__'],
        'column_indexes': [{'name': None, 'field_name': None, 'pandas_type': 'unicode',
                            'numpy_type': 'object', 'metadata': {'encoding': 'UTF-8'}}],
        'columns': [{'name': 'task_index', 'field_name': 'task_index', 'pandas_type': 'int64',
                     'numpy_type': 'int64', 'metadata': None},
                    {'name': None, 'field_name': '__index_level_0__', 'pandas_type': 'unicode',
                     'numpy_type': 'object', 'metadata': None}],
        'creator': {'library': 'pyarrow', 'version': pa.__version__},
        'pandas_version': '2.3.3'}
    return table.replace_schema_metadata({'pandas': json.dumps(pandas_meta)})


def _vector_column(values: np.ndarray):
    import pyarrow as pa
    flat = pa.array(values.astype(np.float32).reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1]).cast(
        pa.list_(pa.float32()))


class DatasetWriter:
    """
    Write episodes one at a time into a LeRobot v3.0 dataset (module docstring).

    Parameters
    ----------
    out : Path
        The dataset directory (must not exist).
    fps : float
        The episodes' step rate (the policy's control rate).
    robot_type : str
        info.json's robot_type.
    codec : str
        PyAV encoder of the videos ('libsvtav1', 'libx264', ...).

    """

    def __init__(self, out: Path, fps: float, robot_type: str = 'aloha',
                 codec: str = DEFAULT_CODEC):
        self.out = Path(out)
        if self.out.exists():
            raise FileExistsError(f'{self.out} exists: choose another --out')
        self.fps, self.robot_type, self.codec = float(fps), robot_type, codec
        self.staging = self.out.parent / f'.{self.out.name}.partial-{os.getpid()}'
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        self.features: Optional[Dict[str, Any]] = None
        self.videos: Dict[str, Optional[_VideoWriter]] = {}  # None once closed
        self.columns: Dict[str, List[Any]] = {}
        self.episodes: List[Dict[str, Any]] = []
        self.tasks: List[str] = []
        self.rows = 0

    def add(self, episode: Episode) -> None:
        """Append one episode (its frames encoded now, its rows kept for `close`)."""
        features = _features(episode, self.fps, self.codec)
        if self.features is None:
            self.features = features
            for key in features:
                if features[key]['dtype'] == 'video':
                    height, width = features[key]['shape'][:2]
                    self.videos[key] = _VideoWriter(self.staging / VIDEO_PATH.format(
                        video_key=key, chunk_index=0, file_index=0), self.fps, height, width,
                        self.codec)
        elif features != self.features:
            raise ValueError(f'episode {len(self.episodes)}: its cameras, size or joints differ '
                             "from the first episode's")
        if episode.task not in self.tasks:
            self.tasks.append(episode.task)
        steps, index = len(episode), len(self.episodes)
        row = {'episode_index': index, 'tasks': [episode.task], 'length': steps,
               'data/chunk_index': 0, 'data/file_index': 0,
               'dataset_from_index': self.rows, 'dataset_to_index': self.rows + steps}
        for view, (key, video) in enumerate(self.videos.items()):
            start = video.frames / self.fps
            video.write(episode.images[:, view])
            row.update({f'videos/{key}/chunk_index': 0, f'videos/{key}/file_index': 0,
                        f'videos/{key}/from_timestamp': start,
                        f'videos/{key}/to_timestamp': video.frames / self.fps})
            for stat, value in _image_stats(episode.images[:, view]).items():
                row[f'stats/{key}/{stat}'] = value
        frame_index = np.arange(steps)
        columns = {STATE_FEATURE: episode.joint_positions, ACTION_FEATURE: episode.actions,
                   'timestamp': (frame_index / self.fps)[:, None],
                   'frame_index': frame_index[:, None],
                   'episode_index': np.full((steps, 1), index),
                   'index': self.rows + frame_index[:, None],
                   'task_index': np.full((steps, 1), self.tasks.index(episode.task))}
        for key, values in columns.items():
            self.columns.setdefault(key, []).append(values)
            for stat, value in _stats(np.asarray(values, np.float64)).items():
                row[f'stats/{key}/{stat}'] = value
        row.update({'meta/episodes/chunk_index': 0, 'meta/episodes/file_index': 0})
        self.episodes.append(row)
        self.rows += steps

    def _write_tables(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq
        data = {}
        for key, parts in self.columns.items():
            values = np.concatenate(parts)
            if key in (STATE_FEATURE, ACTION_FEATURE):
                data[key] = _vector_column(values)
            else:
                data[key] = pa.array(values[:, 0].astype(self.features[key]['dtype']))
        path = self.staging / DATA_PATH.format(chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(data), path)
        (self.staging / EPISODES_FILE).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.episodes), self.staging / EPISODES_FILE)
        pq.write_table(_tasks_table(self.tasks), self.staging / TASKS_FILE)

    def _dataset_stats(self) -> Dict[str, Any]:
        stats = {key: _stats(np.concatenate(parts).astype(np.float64))
                 for key, parts in self.columns.items()}
        for key in self.videos:  # frame stats pooled over episodes, weighted by length
            rows = self.episodes
            weights = np.array([e['length'] for e in rows], np.float64)
            means = np.array([np.asarray(e[f'stats/{key}/mean'])[:, 0, 0] for e in rows])
            stds = np.array([np.asarray(e[f'stats/{key}/std'])[:, 0, 0] for e in rows])
            mean = np.average(means, axis=0, weights=weights)
            std = np.sqrt(np.average(stds ** 2 + (means - mean) ** 2, axis=0, weights=weights))
            stats[key] = {
                'min': np.min([e[f'stats/{key}/min'] for e in rows], axis=0).tolist(),
                'max': np.max([e[f'stats/{key}/max'] for e in rows], axis=0).tolist(),
                'mean': mean[:, None, None].tolist(), 'std': std[:, None, None].tolist(),
                'count': [int(weights.sum())]}
        return stats

    def close(self) -> Path:
        """Finish the videos and tables, write the metadata, move the dataset into place."""
        if not self.episodes:
            self.abort()
            raise ValueError('no episodes to write')
        try:
            for video in self.videos.values():
                video.close()
            self.videos = dict.fromkeys(self.videos)  # closed (keys kept: the views)
            self._write_tables()
            info = {
                'codebase_version': V30, 'robot_type': self.robot_type,
                'total_episodes': len(self.episodes), 'total_frames': self.rows,
                'total_tasks': len(self.tasks), 'chunks_size': 1000,
                'data_files_size_in_mb': 100, 'video_files_size_in_mb': 500,
                'fps': self.fps if self.fps != int(self.fps) else int(self.fps),
                'splits': {'train': f'0:{len(self.episodes)}'}, 'data_path': DATA_PATH,
                'video_path': VIDEO_PATH, 'features': self.features}
            (self.staging / STATS_FILE).write_text(json.dumps(self._dataset_stats(), indent=4))
            (self.staging / INFO_FILE).write_text(json.dumps(info, indent=4))
            self.staging.rename(self.out)
        except BaseException:
            self.abort()
            raise
        return self.out

    def abort(self) -> None:
        """Close the encoders and remove what was written."""
        for video in filter(None, self.videos.values()):
            try:
                video.close()
            except Exception:  # an encoder that already failed: nothing more to save
                pass
        self.videos = {}
        shutil.rmtree(self.staging, ignore_errors=True)


def write_dataset(episodes: Iterable[Episode], out: Path, fps: float,
                  codec: str = DEFAULT_CODEC, robot_type: str = 'aloha') -> Path:
    """Write `episodes` as a LeRobot v3.0 dataset at `out` (all or nothing); return `out`."""
    writer = DatasetWriter(out, fps, robot_type, codec)
    try:
        for episode in episodes:
            writer.add(episode)
    except BaseException:
        writer.abort()
        raise
    return writer.close()
