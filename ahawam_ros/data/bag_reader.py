"""
Read a rosbag2 demonstration (directory or bare .mcap file) into an `Episode`.

The recorded commands define the steps: step t is the t-th command sample (the command
actually sent; with per-arm command topics, the t-th merged sample, see `joint_merge`). Each
step takes the nearest previous (at or before its log time) image of every camera and merged
joint state; commands sent before every stream has produced a value are dropped. Which topics
feed which camera and joint comes from a `TopicMapping` (`mapping`), or from the default
layout of a `FeatureConfig`: the bag's own recorded features (`ahawam.features` custom data,
written by `demo_bags`) when none is given, else the default preset. A camera topic carries
raw `sensor_msgs/Image` (rgb8/bgr8) or `sensor_msgs/CompressedImage` (jpeg/png). A bag that
lacks a topic, carries a different message type, has no messages on a topic, is truncated,
has fewer messages than it records, or holds malformed messages raises `BagError` naming the
bag, the topic and what was expected.

Shapes: T steps, V cameras, H x W pixels, A joints.
"""

import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from ahawam_ros.data.bag_files import BagError, find_bags, open_bag  # noqa: F401 - re-exported
from ahawam_ros.data.bag_layout import BagLayout, CAMERA, COMMAND, Layout, STATE
from ahawam_ros.data.episode import Episode
import numpy as np
from rosbags.rosbag2 import Reader

PathLike = Union[str, Path]
Stream = Tuple[np.ndarray, List[np.ndarray]]  # int64 (N,) log times, N values
LOG = logging.getLogger(__name__)
# A command paired with an older frame than this trains on what the camera no longer shows.
STALE_FRAME_S = 1.0


def _sorted(times: List[int], values: List[np.ndarray]) -> Stream:
    order = np.argsort(np.asarray(times, np.int64), kind='stable')
    return np.asarray(times, np.int64)[order], [values[i] for i in order]


def _read_messages(reader: Reader, layout: BagLayout) -> Tuple[List[Stream], Dict[str, list]]:
    """Return each camera's stream and, per joint role, [(time, seq, topic index, partial)]."""
    frames: List[Tuple[List[int], List[np.ndarray]]] = [([], []) for _ in layout.camera_topics]
    partials: Dict[str, list] = {STATE: [], COMMAND: []}
    for stamp, role, index, value in layout.read(reader, int(reader.start_time)):
        if role == CAMERA:
            frames[index][0].append(stamp)
            frames[index][1].append(value)
        else:
            partials[role].append((stamp, len(partials[role]), index, value))
    return [_sorted(*stream) for stream in frames], partials


def _merge(layout: BagLayout, partials: Dict[str, list]) -> Dict[str, Stream]:
    """Return the merged (A,) joint-state and command samples, in time order."""
    mergers = layout.mergers()
    merged = {}
    for role, items in partials.items():
        times, values = [], []
        for stamp, _, index, (joints, positions) in sorted(items, key=lambda x: x[:2]):
            sample = mergers[role].push(index, stamp, joints, positions)
            if sample is not None:
                times.append(stamp)
                values.append(sample)
        if not times:
            group = layout.mapping.joint_states if role == STATE else layout.mapping.commands
            raise BagError(f'bag {layout.path}: no complete {role} sample: the topics '
                           f'{[t.topic for t in group]} never all had a value within max_skew '
                           f'{layout.mapping.max_skew} s')
        merged[role] = (np.asarray(times, np.int64), values)
    note = layout.merge_problems(mergers)
    if note:
        LOG.warning(note)
    return merged


def _check_sizes(layout: BagLayout, cameras: List[Stream]) -> None:
    """Raise BagError unless every frame of every camera has one size."""
    first = cameras[0][1][0].shape
    for topic, (_, frames) in zip(layout.camera_topics, cameras):
        odd = next((f.shape for f in frames if f.shape != first), None)
        if odd is not None:
            raise BagError(f'bag {layout.path}: {topic!r} has frames of {odd[0]}x{odd[1]}, '
                           f'another camera {first[0]}x{first[1]} (resize them: '
                           'resize_images / --resize-images)')


def _previous(times: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Index of the last of `times` (sorted) at or before each of `at`; -1 when none."""
    return np.searchsorted(times, at, side='right') - 1


def _warn_stale_frames(bag: BagLayout, cameras: List[Stream], index: List[np.ndarray],
                       command_times: np.ndarray, steps: np.ndarray) -> None:
    """Warn when commands are paired with a camera's frame older than STALE_FRAME_S."""
    for topic, (times, _), frame in zip(bag.camera_topics, cameras, index):
        ages = (command_times[steps] - np.asarray(times)[frame[steps]]) * 1e-9  # (T,) s
        stale = int(np.count_nonzero(ages > STALE_FRAME_S))
        if stale:
            LOG.warning('bag %s: %d of %d commands are paired with a frame of %s older than '
                        '%g s (up to %.1f s): did the camera stop?', bag.path, stale,
                        len(steps), topic, STALE_FRAME_S, float(ages.max()))


def read_episode(path: PathLike, layout: Layout = None,
                 resize_to: Optional[Tuple[int, int]] = None) -> Episode:
    """
    Read one bag into an `Episode` aligned on the command clock.

    Parameters
    ----------
    path : str or Path
        A rosbag2 directory (mcap or sqlite3 storage) or a bare .mcap file.
    layout : TopicMapping or FeatureConfig, optional
        Which topics feed which camera and joint; see `BagLayout`.
    resize_to : (int, int), optional
        (H, W) every frame is resized to as it is decoded (cv2 INTER_AREA).

    Returns
    -------
    Episode
        images uint8 (T, V, H, W, 3), joint_positions and actions float64 (T, A), timestamps
        int64 (T,) (the command samples' log times); the task is the bag's recorded task,
        else the mapping's.

    Raises
    ------
    BagError
        Missing topic or joint, wrong message type, empty topic, truncated or damaged bag,
        malformed message.

    """
    path = Path(path)
    reader = open_bag(path)
    try:
        bag = BagLayout(reader, path, layout, resize_to)
        cameras, partials = _read_messages(reader, bag)
    finally:
        reader.close()
    merged = _merge(bag, partials)
    command_times, commands = merged[COMMAND]
    observed = [*cameras, merged[STATE]]
    index = [_previous(times, command_times) for times, _ in observed]  # (N,) each
    keep = np.all([i >= 0 for i in index], axis=0)  # (N,) every stream has spoken
    if not keep.any():
        raise BagError(f'bag {path}: no command is preceded by an image of every camera and a '
                       'joint state')
    steps = np.flatnonzero(keep)
    _warn_stale_frames(bag, cameras, index, command_times, steps)
    _check_sizes(bag, cameras)
    images = np.stack([np.stack([frames[i[s]] for (_, frames), i in zip(cameras, index)])
                       for s in steps])  # (T, V, H, W, 3)
    states, state_index = merged[STATE][1], index[-1]
    return Episode(images=images, joint_positions=np.stack([states[state_index[s]]
                                                            for s in steps]),
                   actions=np.stack([commands[s] for s in steps]),
                   timestamps=command_times[steps], task=bag.task,
                   cameras=bag.mapping.cameras, joint_names=bag.mapping.joint_names)
