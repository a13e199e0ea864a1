"""Damaged mcap files: inserted, deleted or overwritten bytes are one BagError, never a crash."""

from pathlib import Path
import shutil

from ahawam_ros import cli
from ahawam_ros.data.bag_files import BagError
from ahawam_ros.data.bag_reader import read_episode
from ahawam_ros.data.features import FeatureConfig
from bag_fixtures import lockstep_messages, write_bag
import numpy as np
import pytest

FEATURES = FeatureConfig(cameras=('top',), image_height=8, image_width=12)
DAMAGES = ('insert', 'delete', 'overwrite')


@pytest.fixture(scope='module')
def good_bag(tmp_path_factory) -> Path:
    joints = 0.2 + 0.003 * np.arange(20)[:, None] + np.zeros((1, 14))  # (T, A)
    return write_bag(tmp_path_factory.mktemp('good') / 'episode',
                     lockstep_messages(FEATURES, joints, joints), FEATURES)


def damage(good: Path, out: Path, kind: str, seed: int) -> Path:
    """Copy `good` with its mcap damaged: bytes inserted, deleted or overwritten somewhere."""
    bag = Path(shutil.copytree(good, out))
    (data,) = bag.glob('*.mcap')
    raw = bytearray(data.read_bytes())
    rng = np.random.default_rng(seed)
    at, size = int(rng.integers(8, len(raw) - 8)), int(rng.integers(1, 64))
    junk = bytes(rng.integers(0, 256, size, dtype=np.uint8))
    if kind == 'insert':
        raw[at:at] = junk
    elif kind == 'delete':
        del raw[at:at + size]
    else:
        raw[at:at + size] = junk[:len(raw) - at]
    data.write_bytes(bytes(raw))
    return bag


@pytest.mark.parametrize('kind', DAMAGES)
def test_reading_a_damaged_bag_raises_bag_error_or_reads_it_whole(good_bag, tmp_path, kind):
    """Forty damages of each kind: a BagError naming the bag, or (harmless bytes) the episode."""
    length = len(read_episode(good_bag).actions)
    for seed in range(40):
        bag = damage(good_bag, tmp_path / f'{kind}{seed}', kind, seed)
        try:
            episode = read_episode(bag)
        except BagError as error:
            assert str(bag) in str(error) and '\n' not in str(error), str(error)
            continue
        assert len(episode.actions) == length  # never a silently shorter episode


def test_eval_bag_on_damaged_bags_exits_2_with_one_line_or_succeeds(good_bag, tmp_path, capsys):
    for seed in range(12):
        bag = damage(good_bag, tmp_path / f'bag{seed}', DAMAGES[seed % 3], 100 + seed)
        code = cli.main(['eval-bag', str(bag), '--checkpoint', 'fake', '--out',
                         str(tmp_path / f'out{seed}'), '--planner-latency', '0.01',
                         '--executor-latency', '0.005', '--no-progress'])
        error = capsys.readouterr().err
        assert code in (0, 2), (seed, code, error)
        if code == 2:
            assert 'Traceback' not in error and len(error.strip().splitlines()) == 1, error


def test_joint_values_outside_the_policys_limits_are_counted_and_warned(tmp_path, caplog):
    """Training and eval-bag read one path: both say how many samples and the worst joint."""
    joints = 0.2 + 0.003 * np.arange(20)[:, None] + np.zeros((1, 14))  # (T, A)
    joints[5:9, 13] = -0.47  # the right gripper, on 0 (closed) .. 1 (open)
    bag = write_bag(tmp_path / 'episode', lockstep_messages(FEATURES, joints, joints), FEATURES)
    with caplog.at_level('WARNING'):
        episode = read_episode(bag)
    assert len(episode.actions) == 20  # kept: a warning, not a refusal
    notes = [r.getMessage() for r in caplog.records if 'outside the policy' in r.getMessage()]
    assert len(notes) == 1, notes
    assert '4 state samples' in notes[0] and '4 command samples' in notes[0]
    assert 'by more than 0.1' in notes[0]
    assert 'right_gripper at -0.47' in notes[0] and 'limits [0, 1]' in notes[0]
    caplog.clear()
    overshoot = np.clip(joints, 0, 1)
    overshoot[5:9, 13] = 1.05  # a gripper a little past open, as the simulated one goes
    good = write_bag(tmp_path / 'good', lockstep_messages(FEATURES, overshoot, overshoot),
                     FEATURES)
    with caplog.at_level('WARNING'):
        read_episode(good)
    assert not [r for r in caplog.records if 'outside the policy' in r.getMessage()]
    with caplog.at_level('WARNING'):
        assert cli.main(['eval-bag', str(bag), '--checkpoint', 'fake', '--out',
                         str(tmp_path / 'out'), '--planner-latency', '0.01',
                         '--executor-latency', '0.005', '--no-progress']) == 0
    assert [r for r in caplog.records if 'outside the policy' in r.getMessage()]  # eval-bag too


def test_commands_paired_with_an_old_frame_are_counted_and_warned(tmp_path, caplog):
    joints = 0.2 + 0.003 * np.arange(200)[:, None] + np.zeros((1, 14))  # (T, A), 4 s
    messages = [m for m in lockstep_messages(FEATURES, joints, joints)
                if not (m[0] == FEATURES.camera_topic('top') and m[2] > 1_000_000_000)]
    bag = write_bag(tmp_path / 'episode', messages, FEATURES)  # the camera dies after 1 s
    with caplog.at_level('WARNING'):
        episode = read_episode(bag)
    notes = [r.getMessage() for r in caplog.records if 'did the camera stop' in r.getMessage()]
    assert len(notes) == 1, notes
    stale = int(notes[0].split(': ')[1].split()[0])
    assert 95 <= stale <= 100 and f'of {len(episode.actions)} commands' in notes[0], notes
