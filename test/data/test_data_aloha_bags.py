"""Training data from real-robot bags: the ALOHA layout, bare .mcap files, damaged storage."""

from pathlib import Path
import shutil
import struct

from ahawam_ros.data.bag_files import find_bags
from ahawam_ros.data.bag_reader import BagError, read_episode
from ahawam_ros.data.dataset import DataConfig, load_episodes
from ahawam_ros.data.mapping_yaml import load_mapping
from ahawam_ros.model.presets import tiny
from ahawam_ros.robot import JOINT_NAMES
from ahawam_ros.train import cli
from bag_fixtures import PERIOD_NS, write_bag
from bag_fixtures_aloha import aloha_messages, episode_values, twin_features
from bag_fixtures_aloha import twin_messages
import numpy as np
import pytest

STEPS = 30
ALOHA = Path(__file__).resolve().parents[2] / 'config' / 'mappings' / 'aloha_interbotix.yaml'


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    """Write an ALOHA-layout bag and its default-layout twin, of the same episode."""
    root = tmp_path_factory.mktemp('aloha')
    joints, commands = episode_values(STEPS)
    return (write_bag(root / 'aloha' / 'episode_0', aloha_messages(joints, commands)),
            write_bag(root / 'twin', twin_messages(joints, commands), twin_features()))


def assert_same_episode(a, b):
    assert len(a) == len(b) == STEPS
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_allclose(a.joint_positions, b.joint_positions, atol=1e-12)
    np.testing.assert_allclose(a.actions, b.actions, atol=1e-12)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert (a.cameras, a.joint_names, a.task) == (b.cameras, b.joint_names, b.task)


def test_aloha_bag_reads_as_its_default_layout_twin(bags):
    aloha, twin = bags
    episode = read_episode(aloha, load_mapping(ALOHA), resize_to=(16, 16))
    assert_same_episode(episode, read_episode(twin, resize_to=(16, 16)))
    assert episode.images.shape == (STEPS, 3, 16, 16, 3)
    joints, commands = episode_values(STEPS)
    np.testing.assert_allclose(episode.joint_positions, joints, atol=1e-12)  # grippers 0..1
    np.testing.assert_allclose(episode.actions, commands, atol=1e-12)
    # a step is logged when the later arm's command is (the merge rule)
    np.testing.assert_array_equal(episode.timestamps, (np.arange(STEPS) + 1) * PERIOD_NS)
    full = read_episode(aloha, load_mapping(ALOHA))
    assert full.images.shape == (STEPS, 3, 48, 64, 3)  # bgr8 frames come out RGB
    np.testing.assert_array_equal(full.images, read_episode(twin).images)


def test_missing_joint_or_topic_fails_naming_it(tmp_path):
    joints, commands = episode_values(4)
    mapping = load_mapping(ALOHA)
    bag = write_bag(tmp_path / 'no_finger', aloha_messages(joints, commands,
                                                           drop_joint='left_finger'))
    with pytest.raises(BagError) as info:
        read_episode(bag, mapping)
    assert "'/follower_right/joint_states'" in str(info.value)
    assert "lacks joint(s) 'left_finger' (mapped to right_gripper)" in str(info.value)
    topic = '/right_arm_controller/joint_trajectory'
    bag = write_bag(tmp_path / 'no_right', aloha_messages(joints, commands, skip=topic))
    with pytest.raises(BagError, match=f"lacks topic '{topic}'"):
        read_episode(bag, mapping)


def test_a_bare_mcap_file_is_a_bag_with_its_recorded_metadata(bags, tmp_path):
    _, twin = bags
    (data,) = twin.glob('*.mcap')
    bare = tmp_path / 'shared' / 'episode.mcap'
    bare.parent.mkdir()
    shutil.copy(data, bare)
    assert find_bags(bare) == [bare] and find_bags(tmp_path) == [bare]
    # no FeatureConfig given: the 48x64 features recorded inside the file are found (the
    # default preset's 120x160 would be refused)
    assert_same_episode(read_episode(bare), read_episode(twin))
    with pytest.raises(FileNotFoundError, match='x.mcap does not exist'):
        find_bags(tmp_path / 'x.mcap')
    (tmp_path / 'notes.txt').write_text('x')
    with pytest.raises(FileNotFoundError, match='notes.txt is not a bag'):
        find_bags(tmp_path / 'notes.txt')


def _damage_one_message(bag: Path, stamp_ns: int) -> None:
    """Make the mcap message record logged at `stamp_ns` unparsable as a message."""
    (data,) = bag.glob('*.mcap')
    raw = bytearray(data.read_bytes())
    key = struct.pack('<QQ', stamp_ns, stamp_ns)  # log time, publish time
    at = raw.find(key)
    assert at > 0 and raw.count(key) == 1
    opcode = at - 15  # op (1), record length (8), channel id (2), sequence (4)
    assert raw[opcode] == 0x05  # a Message record
    raw[opcode] = 0x7F  # an unknown record: readers skip it by its length, silently
    data.write_bytes(bytes(raw))


def test_a_message_lost_to_damage_is_an_error_not_a_shorter_episode(bags, tmp_path):
    aloha, _ = bags
    bag = Path(shutil.copytree(aloha, tmp_path / 'damaged'))
    _damage_one_message(bag, 10 * PERIOD_NS)  # the right arm's command of step 9
    with pytest.raises(BagError) as info:
        read_episode(bag, load_mapping(ALOHA))
    assert str(info.value) == (
        f'bag {bag} is corrupt: fewer messages could be read than it records, on '
        "'/right_arm_controller/joint_trajectory' (29 of 30); the storage file is damaged")


def test_random_bytes_inside_an_mcap_never_give_an_episode(bags, tmp_path):
    aloha, _ = bags
    rng = np.random.default_rng(1)
    bag = Path(shutil.copytree(aloha, tmp_path / 'noise'))
    (data,) = bag.glob('*.mcap')
    raw = bytearray(data.read_bytes())
    middle = len(raw) // 2
    raw[middle - 100_000:middle + 100_000] = rng.integers(0, 256, 200_000, np.uint8).tobytes()
    data.write_bytes(bytes(raw))
    with pytest.raises(BagError, match='corrupt'):
        read_episode(bag, load_mapping(ALOHA))


def _two_view_mapping(tmp_path: Path) -> Path:
    """Write the shipped ALOHA mapping with two views, as the tiny preset takes."""
    path = tmp_path / 'aloha_two_views.yaml'
    path.write_text(ALOHA.read_text().replace(
        '  right_wrist: /cam_right_wrist/camera/color/image_rect_raw\n', ''))
    return path


def test_datasets_and_training_read_aloha_bags_through_a_mapping(bags, tmp_path, capsys):
    aloha, _ = bags
    mapping = _two_view_mapping(tmp_path)
    data = DataConfig(bags=str(aloha.parent), mapping=str(mapping), resize_images=True,
                      cache_dir=str(tmp_path / 'cache'))
    (episode,), _ = load_episodes(data, tiny())
    assert episode.images.shape == (STEPS, 2, 16, 16, 3) and episode.joint_names == JOINT_NAMES
    with pytest.raises(ValueError, match='feature_preset or mapping, not both'):
        DataConfig(bags='x', mapping=str(mapping), feature_preset='transfer_cube')
    out = tmp_path / 'run'
    code = cli.main(['--data', str(aloha.parent), '--mapping', str(mapping), '--resize-images',
                     '--preset', 'tiny', '--out', str(out), '--steps', '2', '--ae-steps', '2',
                     '--batch-size', '2', '--checkpoint-every', '2', '--device', 'cpu',
                     '--cache-dir', str(tmp_path / 'cache')])
    printed = capsys.readouterr().out
    assert code == 0 and 'policy saved to' in printed
    final = Path(printed.split('policy saved to ')[-1].strip())
    assert (final / 'model.safetensors').is_file() and out in final.parents
    assert cli.main(['--data', str(aloha.parent), '--mapping', str(tmp_path / 'none.yaml'),
                     '--preset', 'tiny', '--out', str(tmp_path / 'bad')]) == 2
    assert 'none.yaml: cannot read it' in capsys.readouterr().err


def test_a_robot_bag_exports_through_its_mapping_as_a_lerobot_dataset(bags, tmp_path):
    from ahawam_ros.cli import main as ahawam
    from ahawam_ros.data.lerobot.mapping import default_mapping
    from ahawam_ros.data.lerobot.meta import open_dataset
    from ahawam_ros.data.lerobot.reader import read_dataset_episode
    aloha, _ = bags
    dataset = tmp_path / 'dataset'
    assert ahawam(['export-lerobot', str(aloha.parent), '--out', str(dataset), '--mapping',
                   'aloha_interbotix']) == 0
    index = open_dataset(dataset)
    assert index.fps == 50.0  # whole Hz from the merged command stamps
    episode = read_dataset_episode(index, index.episodes[0], default_mapping(index))
    recorded = read_episode(aloha, load_mapping(ALOHA))
    assert episode.cameras == recorded.cameras and episode.joint_names == recorded.joint_names
    np.testing.assert_allclose(episode.joint_positions, recorded.joint_positions, atol=1e-6)
    np.testing.assert_allclose(episode.actions, recorded.actions, atol=1e-6)
    assert np.abs(episode.images.astype(int) - recorded.images.astype(int)).mean() < 3.0
