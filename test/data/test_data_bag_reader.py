"""Reading demonstration bags: alignment on the command clock, and clear errors on bad bags."""

from pathlib import Path
from typing import Dict, Iterable, Optional

from ahawam_ros.data.bag_reader import BagError, find_bags, read_episode
from ahawam_ros.data.features import FeatureConfig
from ahawam_ros.robot import JOINT_NAMES
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

STORE = get_typestore(Stores.ROS2_KILTED)
FEATURES = FeatureConfig(cameras=('top', 'left_wrist'), image_height=8, image_width=12)
MS = 1_000_000  # ns
PERIOD = 20 * MS  # 50 Hz control


def pixel(step: int, view: int) -> int:
    """Pixel value that encodes (step, view)."""
    return (2 * step + view) % 256


def joints(step: float) -> np.ndarray:
    """Joint j at step t is t + j / 100 (robot order)."""
    return step + np.arange(len(JOINT_NAMES)) / 100.0


def _header(stamp: int):
    sec, nanosec = divmod(stamp, 10 ** 9)
    time = STORE.types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)
    return STORE.types['std_msgs/msg/Header'](stamp=time, frame_id='')


def image_msg(stamp: int, value: int, height: int = 8, width: int = 12):
    return STORE.types['sensor_msgs/msg/Image'](
        header=_header(stamp), height=height, width=width, encoding='rgb8', is_bigendian=0,
        step=width * 3, data=np.full(height * width * 3, value, np.uint8))


def joint_msg(stamp: int, positions: np.ndarray, names=JOINT_NAMES):
    return STORE.types['sensor_msgs/msg/JointState'](
        header=_header(stamp), name=list(names), position=np.asarray(positions, np.float64),
        velocity=np.zeros(0), effort=np.zeros(0))


def command_msg(values: np.ndarray):
    layout = STORE.types['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0)
    return STORE.types['std_msgs/msg/Float64MultiArray'](layout=layout,
                                                         data=np.asarray(values, np.float64))


def timeline(steps: int):
    """
    Yield (topic, type, stamp, message) of a bag whose streams are not in lockstep.

    Command t at (t + 1) PERIOD encodes t + 0.5. Images of step t come 3 ms before it, plus a
    decoy 2 ms after it (which `nearest` would pick, `nearest previous` must not); joint
    states of step t come at the command's very stamp (as `demo_bags` writes them: `strictly
    before` would pick step t - 1), plus a decoy 1 ms after. A first command comes before any
    observation (it must be dropped).
    """
    image, joint, command = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/JointState',
                             'std_msgs/msg/Float64MultiArray')
    yield FEATURES.command_topic, command, 1 * MS, command_msg(joints(-1.0))
    for t in range(steps):
        base = (t + 1) * PERIOD
        for view, topic in enumerate(FEATURES.camera_topics().values()):
            yield topic, image, base - 3 * MS, image_msg(base - 3 * MS, pixel(t, view))
            yield topic, image, base + 2 * MS, image_msg(base + 2 * MS, 255)
        yield FEATURES.joint_state_topic, joint, base, joint_msg(base, joints(t))
        yield FEATURES.joint_state_topic, joint, base + 1 * MS, joint_msg(base, joints(-9.0))
        yield FEATURES.command_topic, command, base, command_msg(joints(t + 0.5))


def write_bag(path: Path, messages: Iterable, storage=StoragePlugin.MCAP,
              topics: Optional[Dict[str, str]] = None, task: str = 'insertion') -> Path:
    """Write `messages` (topic, type, stamp, msg); `topics` adds connections without any."""
    with Writer(path, version=9, storage_plugin=storage) as writer:
        writer.set_custom_data('ahawam.task', f'"{task}"')
        conns = {}
        for topic, msgtype in (topics or {}).items():
            conns[topic] = writer.add_connection(topic, msgtype, typestore=STORE)
        for topic, msgtype, stamp, msg in messages:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=STORE)
            writer.write(conns[topic], stamp, STORE.serialize_cdr(msg, msgtype))
    return path


@pytest.mark.parametrize('storage', [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_steps_follow_commands_with_nearest_previous_observations(tmp_path, storage):
    steps = 12
    episode = read_episode(write_bag(tmp_path / 'bag', timeline(steps), storage), FEATURES)
    assert len(episode) == steps  # the command before any observation is dropped
    assert episode.images.shape == (steps, 2, 8, 12, 3) and episode.images.dtype == np.uint8
    for t in range(steps):
        for view in range(2):
            assert np.all(episode.images[t, view] == pixel(t, view)), (t, view)
        np.testing.assert_allclose(episode.joint_positions[t], joints(t))
        np.testing.assert_allclose(episode.actions[t], joints(t + 0.5))
    np.testing.assert_array_equal(episode.timestamps, (np.arange(steps) + 1) * PERIOD)
    assert episode.task == 'insertion'  # the bag's recorded task wins over features.task
    assert episode.cameras == FEATURES.cameras and episode.joint_names == JOINT_NAMES


def test_joint_states_are_reordered_by_name(tmp_path):
    order = list(reversed(range(len(JOINT_NAMES))))
    names = [JOINT_NAMES[i] for i in order]
    messages = [(m[0], m[1], m[2], joint_msg(m[2], m[3].position[order], names))
                if m[0] == FEATURES.joint_state_topic else m for m in timeline(3)]
    episode = read_episode(write_bag(tmp_path / 'bag', messages), FEATURES)
    np.testing.assert_allclose(episode.joint_positions[2], joints(2))


def _without(topic: str):
    return [m for m in timeline(3) if m[0] != topic]


def _retyped(topic: str, msgtype: str, msg):
    return [(t, msgtype, s, msg) if t == topic else (t, ty, s, m)
            for t, ty, s, m in timeline(3)]


BAD_BAGS = {
    'missing topic': (lambda: _without(FEATURES.joint_state_topic), None,
                      ["lacks topic '/joint_states'", 'sensor_msgs/msg/JointState']),
    'missing camera': (lambda: _without('/cameras/left_wrist/image_raw'), None,
                       ["lacks topic '/cameras/left_wrist/image_raw'"]),
    'wrong type': (lambda: _retyped(FEATURES.command_topic, 'std_msgs/msg/String',
                                    STORE.types['std_msgs/msg/String'](data='x')), None,
                   ["'/joint_commands' has type std_msgs/msg/String",
                    'expected std_msgs/msg/Float64MultiArray']),
    'empty': (lambda: [], FEATURES.topic_types(), ["no messages on topic '/cameras/top"]),
    'wrong image size': (lambda: [(t, ty, s, image_msg(s, 1, 6, 12)) if ty.endswith('Image')
                                  else (t, ty, s, m) for t, ty, s, m in timeline(3)], None,
                         ['/cameras/top/image_raw', 'expected 8x12']),
    'short command': (lambda: [(t, ty, s, command_msg(np.zeros(3))) if t.endswith('commands')
                               else (t, ty, s, m) for t, ty, s, m in timeline(3)], None,
                      ['/joint_commands', 'expected 14 joints']),
}


@pytest.mark.parametrize('case', sorted(BAD_BAGS))
def test_bad_bags_fail_naming_the_problem(tmp_path, case):
    messages, topics, expected = BAD_BAGS[case]
    path = write_bag(tmp_path / 'bag', messages(), topics=topics)
    with pytest.raises(BagError) as info:
        read_episode(path, FEATURES)
    for text in expected + [str(path)]:
        assert text in str(info.value), (case, str(info.value))


@pytest.mark.parametrize('storage,suffix', [(StoragePlugin.MCAP, '.mcap'),
                                            (StoragePlugin.SQLITE3, '.db3')])
def test_truncated_bag_fails_clearly(tmp_path, storage, suffix):
    path = write_bag(tmp_path / 'bag', timeline(5), storage)
    (data,) = path.glob(f'*{suffix}')
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
    with pytest.raises(BagError, match='truncated or corrupt'):
        read_episode(path, FEATURES)


def test_missing_bag_and_no_bags(tmp_path):
    with pytest.raises(BagError, match='cannot open bag'):
        read_episode(tmp_path / 'nothing', FEATURES)
    assert find_bags(tmp_path) == []
    write_bag(tmp_path / 'b' / 'two', timeline(2))
    write_bag(tmp_path / 'a', timeline(2))
    (tmp_path / '.staging').mkdir()
    write_bag(tmp_path / '.staging' / 'c', timeline(2))
    assert find_bags(tmp_path) == [tmp_path / 'a', tmp_path / 'b' / 'two']


def test_links_to_bags_and_to_directories_of_bags_are_followed(tmp_path):
    """A directory of links picks a subset of recordings (a link back up is walked once)."""
    store = tmp_path / 'recordings'
    write_bag(store / 'run1' / 'ep0', timeline(3))
    write_bag(store / 'run1' / 'ep1', timeline(3))
    write_bag(store / 'run2' / 'ep2', timeline(4))
    subset = tmp_path / 'subset'
    subset.mkdir()
    (subset / 'first').symlink_to(store / 'run1' / 'ep0', target_is_directory=True)
    (subset / 'second_run').symlink_to(store / 'run2', target_is_directory=True)
    (subset / 'second_run_again').symlink_to(store / 'run2', target_is_directory=True)
    (subset / 'loop').symlink_to(subset, target_is_directory=True)
    assert find_bags(subset) == [subset / 'first', subset / 'second_run' / 'ep2']
    episode = read_episode(find_bags(subset)[1], FEATURES)
    assert len(episode) == len(read_episode(store / 'run2' / 'ep2', FEATURES))
    assert find_bags(store) == [store / 'run1' / 'ep0', store / 'run1' / 'ep1',
                                store / 'run2' / 'ep2']
