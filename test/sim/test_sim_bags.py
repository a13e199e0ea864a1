"""Demonstration bags: written with rosbags (mcap), read back with rosbags, and the CLI."""

import json

import numpy as np
import pytest

pytest.importorskip('gym_aloha', reason='the simulator (requirements/sim.txt) is not installed')

from ahawam_ros.data.demo_bags import (  # noqa: E402, I100
    read_bag_metadata, write_episode_bag, write_episode_bag_atomic)
from ahawam_ros.data.features import FeatureConfig  # noqa: E402
from ahawam_ros.robot import JOINT_NAMES  # noqa: E402
from ahawam_ros.sim import record_demos  # noqa: E402
from ahawam_ros.sim.aloha_env import SimConfig  # noqa: E402
from ahawam_ros.sim.scripted_expert import ScriptedExpert  # noqa: E402
from rosbags.rosbag2 import Reader  # noqa: E402
from rosbags.typesys import get_typestore, Stores  # noqa: E402

pytestmark = pytest.mark.sim
FEATURES = FeatureConfig(cameras=('top', 'left_wrist'), image_height=24, image_width=32)
STEPS = 30


@pytest.fixture(scope='module')
def episode():
    """Record the first STEPS steps of a scripted demonstration, too short to succeed."""
    config = SimConfig(cameras=FEATURES.cameras, image_height=24, image_width=32,
                       episode_len=STEPS)
    with ScriptedExpert(config) as expert:
        return expert.record(9, expert.joint_commands(9))


def _read(path):
    store = get_typestore(Stores.ROS2_KILTED)
    messages = {}
    with Reader(path) as reader:
        types = {topic: info.msgtype for topic, info in reader.topics.items()}
        counts = {topic: info.msgcount for topic, info in reader.topics.items()}
        custom = reader.storage.metadata.custom
        for connection, stamp, raw in reader.messages():
            message = store.deserialize_cdr(raw, connection.msgtype)
            messages.setdefault(connection.topic, []).append((stamp, message))
    return types, counts, custom, messages


def test_bag_round_trip(episode, tmp_path):
    path = write_episode_bag(episode, tmp_path / 'bag', FEATURES, trajectory_horizon=3)
    assert len(list(path.glob('*.mcap'))) == 1
    types, counts, custom, messages = _read(path)
    assert types == FEATURES.topic_types()
    assert counts == {topic: STEPS for topic in FEATURES.topic_types()}
    stamps = np.round(episode.time * 1e9).astype(int)
    for topic in types:
        assert [stamp for stamp, _ in messages[topic]] == list(stamps)

    for camera, topic in FEATURES.camera_topics().items():
        _, image = messages[topic][7]
        assert (image.height, image.width, image.encoding) == (24, 32, 'rgb8')
        assert image.header.frame_id == f'{camera}_optical_frame'
        np.testing.assert_array_equal(image.data.reshape(24, 32, 3), episode.images[camera][7])
    _, state = messages['/joint_states'][5]
    assert list(state.name) == list(JOINT_NAMES)
    assert state.header.stamp.sec == 0 and state.header.stamp.nanosec == 100_000_000
    np.testing.assert_array_equal(state.position, episode.qpos[5])
    np.testing.assert_array_equal(state.velocity, episode.qvel[5])
    _, command = messages['/joint_commands'][5]
    np.testing.assert_array_equal(command.data, episode.actions[5])
    assert command.layout.dim[0].size == 14

    _, trajectory = messages['/joint_trajectory'][5]
    assert list(trajectory.joint_names) == list(JOINT_NAMES)
    assert len(trajectory.points) == 3
    np.testing.assert_array_equal(trajectory.points[1].positions, episode.actions[6])
    assert trajectory.points[1].time_from_start.nanosec == 40_000_000
    assert len(messages['/joint_trajectory'][-1][1].points) == 1  # truncated at the end
    rewards = [m.data for _, m in messages['/sim/reward']]
    np.testing.assert_array_equal(rewards, episode.reward)

    assert json.loads(custom['ahawam.seed']) == 9
    assert json.loads(custom['ahawam.task']) == 'transfer_cube'
    metadata = read_bag_metadata(path)
    assert metadata['success'] is False and metadata['num_steps'] == STEPS
    assert FeatureConfig.from_dict(metadata['features']) == FEATURES


def test_writer_checks_the_episode_against_the_features(episode, tmp_path):
    wrong = FeatureConfig(cameras=('top',), image_height=48, image_width=64)
    with pytest.raises(ValueError, match='top'):
        write_episode_bag(episode, tmp_path / 'bag', wrong)


def test_atomic_write_replaces_a_stale_partial_bag(episode, tmp_path):
    (tmp_path / '.bag.partial' / 'junk').mkdir(parents=True)
    path = write_episode_bag_atomic(episode, tmp_path / 'bag', FEATURES, compress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag']
    assert _read(path)[1]['/sim/reward'] == STEPS


def test_record_demos_cli_writes_successful_episodes(tmp_path, capsys):
    argv = ['--task', 'transfer_cube', '--episodes', '1', '--seed', '5', '--out', str(tmp_path),
            '--cameras', 'top', '--height', '24', '--width', '32']
    assert record_demos.main(argv) == 0
    bag = tmp_path / 'transfer_cube_seed000005'
    metadata = read_bag_metadata(bag)
    assert metadata['success'] is True and metadata['seed'] == 5
    types, counts, _, messages = _read(bag)
    assert counts['/cameras/top/image_raw'] == 400
    assert max(m.data for _, m in messages['/sim/reward']) == 4.0
    assert '1/1 successful episodes (100%)' in capsys.readouterr().out
    assert record_demos.main(argv) == 0  # a second run keeps the bag
    assert 'kept existing' in capsys.readouterr().out
    # The cube's position at every step, for training-time auxiliary targets only.
    position = np.asarray(metadata['privileged_object_position'])
    assert position.shape == (400, 3) and metadata['action_noise'] == 0.0
    assert np.ptp(position[:, 2]) > 0.05  # lifted in the handover


def test_record_demos_cli_injects_noise_on_every_kth_seed(tmp_path):
    argv = ['--task', 'transfer_cube', '--episodes', '2', '--seed', '5', '--out', str(tmp_path),
            '--cameras', 'top', '--height', '24', '--width', '32', '--action-noise', '0.03',
            '--noisy-every', '2']
    assert record_demos.main(argv) == 0
    noise = {seed: read_bag_metadata(tmp_path / f'transfer_cube_seed{seed:06d}')['action_noise']
             for seed in (5, 6)}
    assert noise == {5: 0.0, 6: 0.03}
    assert record_demos.main(argv[:-2] + ['--noisy-every', '0']) == 2
