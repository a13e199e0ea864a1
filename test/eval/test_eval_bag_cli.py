"""`ahawam eval-bag`: the report it writes, and bad bags failing clearly with nothing left."""

import json
from pathlib import Path
import re

from ahawam_ros import cli
from ahawam_ros.data.features import FeatureConfig
from ahawam_ros.eval.bag import cli as bag_eval
from ahawam_ros.eval.bag.metrics import figures, problems
from bag_fixtures import compress_cameras, lockstep_messages, STORE, write_bag
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin

FEATURES = FeatureConfig(cameras=('top', 'left_wrist'), image_height=8, image_width=12)
PNG = b'\x89PNG\r\n\x1a\n'
TOP = FEATURES.camera_topic('top')
FIXED = ['--planner-latency', '0.01', '--executor-latency', '0.005', '--no-progress']


def messages(steps: int = 25, trajectory: bool = False):
    joints = 0.2 + 0.003 * np.arange(steps)[:, None] + np.zeros((1, 14))  # (T, A)
    return lockstep_messages(FEATURES, joints, joints, trajectory)


def eval_bag(*args: str) -> int:
    return cli.main(['eval-bag', *map(str, args), '--checkpoint', 'fake', *FIXED])


def test_report_files(tmp_path, capsys):
    bag = write_bag(tmp_path / 'episode', messages(), FEATURES)
    out = tmp_path / 'report'
    assert eval_bag(bag, '--out', out) == 0
    assert 'MAE' in capsys.readouterr().out
    results = json.loads((out / 'metrics.json').read_text())
    assert set(results) == {'settings', 'bags', 'all'}
    bag_figures = results['bags']['episode']
    for key in ('mae', 'rmse', 'chunk_step_mae', 'seam_jump', 'within_chunk_jump',
                'context_age', 'latency', 'holds'):
        assert key in bag_figures, key
    assert list(bag_figures['mae']) == list(FEATURES.joint_names)
    assert bag_figures['latency']['executor']['simulated']['p50'] == pytest.approx(0.005)
    page = (out / 'report.html').read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(sources) == sorted(f'episode/{name}' for name in (
        'joints_left.png', 'joints_right.png', 'error.png', 'latency.png'))
    for source in sources:
        assert (out / source).read_bytes().startswith(PNG), source
    assert '<table>' in page and 'executed ticks' in page
    inputs = bag_figures['inputs']  # what was read, resolved, and how the joints merged
    assert inputs['cameras'] == {'top': TOP, 'left_wrist': FEATURES.camera_topic('left_wrist')}
    assert inputs['joint_states'] == ['/joint_states'] and inputs['commands']
    assert inputs['merge']['state']['dropped'] == 0
    assert inputs['merge']['state']['out_of_range'] == 0
    assert f'top {TOP}' in page and 'dropped for skew' in page
    trace = np.load(out / 'episode' / 'trace.npz')
    assert trace['command'].shape == (25, 14)


def test_a_directory_means_every_bag_in_it(tmp_path):
    root = tmp_path / 'bags'
    write_bag(root / 'a', messages(), FEATURES)
    write_bag(root / 'b' / 'c', messages(20, trajectory=True), FEATURES, StoragePlugin.SQLITE3)
    out = tmp_path / 'report'
    assert eval_bag(root, '--out', out) == 0
    results = json.loads((out / 'metrics.json').read_text())
    assert sorted(results['bags']) == ['a', 'b__c']
    assert results['all']['ticks'] == 25 + 20
    page = (out / 'report.html').read_text()
    assert 'b__c/joints_right.png' in page and 'all bags' in page


def test_compressed_cameras_give_the_raw_figures(tmp_path):
    """A bag whose cameras are png CompressedImage reports what its raw twin reports."""
    write_bag(tmp_path / 'bags' / 'raw', messages(), FEATURES)
    write_bag(tmp_path / 'bags' / 'png', compress_cameras(messages()), FEATURES)
    assert eval_bag(tmp_path / 'bags', '--out', tmp_path / 'report') == 0
    bags = json.loads((tmp_path / 'report' / 'metrics.json').read_text())['bags']
    for values in bags.values():
        del values['bags'], values['latency']['planner']['measured']
        del values['latency']['executor']['measured']
    assert bags['png'] == bags['raw']
    assert 0 < bags['raw']['compared_ticks'] == bags['raw']['executing_ticks'] < 25


def _without(topic: str):
    return [m for m in messages() if m[0] != topic]


def _retyped(topic: str):
    string = STORE.types['std_msgs/msg/String'](data='x')
    return [(t, 'std_msgs/msg/String', s, string) if t == topic else (t, ty, s, m)
            for t, ty, s, m in messages()]


def _corrupt_png_frame():
    """Png cameras, with 9 bytes of garbage as the top camera's frame of step 2 (0.04 s)."""
    out = compress_cameras(messages())
    for t, ty, s, m in out:
        if t == TOP and s == 40_000_000:
            m.data = np.arange(9, dtype=np.uint8)
    return out


BAD_BAGS = {
    'missing topic': (lambda: _without('/joint_states'), None,
                      "lacks topic '/joint_states'"),
    'missing camera': (lambda: _without('/cameras/left_wrist/image_raw'), None,
                       "lacks topic '/cameras/left_wrist/image_raw'"),
    'no command topic': (lambda: _without('/joint_commands'), None,
                         "no command topic: it lacks '/joint_commands'"),
    'wrong type': (lambda: _retyped('/joint_commands'), None,
                   "'/joint_commands' has type std_msgs/msg/String"),
    'empty': (lambda: [], FEATURES.topic_types(), "no messages on topic '/cameras/top"),
    'bad message': (lambda: [(t, ty, s, STORE.types['std_msgs/msg/Float64MultiArray'](
        layout=m.layout, data=np.zeros(3))) if t == '/joint_commands' else (t, ty, s, m)
        for t, ty, s, m in messages()], None, 'expected 14 joints'),
    'corrupt compressed frame': (_corrupt_png_frame, None, f'bad message on {TOP!r} at 0.040 '
                                 "s: cannot decode the 9 bytes of the 'png'"),
}


def assert_nothing_written(tmp_path, out: Path) -> None:
    assert not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith('.')]


@pytest.mark.parametrize('case', sorted(BAD_BAGS))
def test_bad_bags_fail_clearly_and_write_nothing(tmp_path, capsys, case):
    make, topics, expected = BAD_BAGS[case]
    bag = write_bag(tmp_path / 'bag', make(), FEATURES, topics=topics)
    out = tmp_path / 'report'
    assert eval_bag(bag, '--out', out) == 2
    error = capsys.readouterr().err
    assert expected in error and str(bag) in error, error
    assert_nothing_written(tmp_path, out)


@pytest.mark.parametrize('storage,suffix', [(StoragePlugin.MCAP, '.mcap'),
                                            (StoragePlugin.SQLITE3, '.db3')])
def test_truncated_bag(tmp_path, capsys, storage, suffix):
    good = write_bag(tmp_path / 'a_good', messages(), FEATURES, storage)
    bag = write_bag(tmp_path / 'b_truncated', messages(), FEATURES, storage)
    (data,) = bag.glob(f'*{suffix}')
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
    out = tmp_path / 'report'
    assert eval_bag(tmp_path, '--out', out) == 2  # the good bag is not reported alone
    assert 'truncated or corrupt' in capsys.readouterr().err
    assert_nothing_written(tmp_path, out)
    assert good.exists()


def test_no_bags_existing_output_and_bad_settings(tmp_path, capsys):
    out = tmp_path / 'report'
    assert eval_bag(tmp_path, '--out', out) == 2
    assert 'no rosbag2 bags' in capsys.readouterr().err
    bag = write_bag(tmp_path / 'bag', messages(), FEATURES)
    assert eval_bag(bag, '--out', out, '--refresh-rate-hz', '0') == 2
    assert 'refresh_rate_hz' in capsys.readouterr().err
    out.mkdir()
    assert eval_bag(bag, '--out', out) == 2
    assert 'pass --force' in capsys.readouterr().err
    assert eval_bag(bag, '--out', out, '--force') == 0
    assert (out / 'metrics.json').is_file()


def test_a_failure_while_writing_leaves_nothing(tmp_path):
    out = tmp_path / 'report'

    def build(staging: Path) -> None:
        (staging / 'metrics.json').write_text('{}')
        raise RuntimeError('plotting failed')

    with pytest.raises(RuntimeError, match='plotting failed'):
        bag_eval.write_atomically(out, build)
    assert_nothing_written(tmp_path, out)
    out.mkdir()
    (out / 'old.txt').write_text('kept')
    with pytest.raises(RuntimeError, match='plotting failed'):
        bag_eval.write_atomically(out, build, force=True)
    assert [p.name for p in out.iterdir()] == ['old.txt']  # --force replaces only on success
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith('.')]


def test_a_run_where_nothing_executes_exits_2_and_says_so(tmp_path, capsys):
    bag = write_bag(tmp_path / 'episode', messages(), FEATURES)
    out = tmp_path / 'report'
    code = cli.main(['eval-bag', str(bag), '--checkpoint', 'fake', '--out', str(out),
                     '--planner-latency', '0.01', '--executor-latency', '1000', '--no-progress'])
    printed = capsys.readouterr()
    assert code == 2, printed
    (line,) = printed.err.strip().splitlines()
    assert line.startswith('ahawam eval-bag: error: nothing executed: 0 of 25 command ticks')
    assert 'executed ticks' in printed.out and '0 / 25 (0 %)' in printed.out
    results = json.loads((out / 'metrics.json').read_text())  # the report is kept to look at
    assert results['all']['executing_ticks'] == 0 and results['all']['mae_mean'] is None


def _tiny_checkpoint(path: Path, nan: bool) -> Path:
    import torch
    from ahawam_ros.model.aha_wam import AhaWamModel
    from ahawam_ros.model.checkpoint import save_checkpoint
    from ahawam_ros.model.presets import get_preset
    torch.manual_seed(0)
    model = AhaWamModel(get_preset('tiny'))
    if nan:
        with torch.no_grad():
            for tensor in model.state_dict().values():
                if tensor.is_floating_point():
                    tensor.fill_(float('nan'))
    return save_checkpoint(path, model, step=0)


def test_an_all_nan_checkpoint_is_an_error_not_a_good_score(tmp_path, capsys):
    """The same bag and settings: finite weights give a MAE, NaN weights fail loudly."""
    from ahawam_ros.model.policy import AhaWamPolicy
    bag = write_bag(tmp_path / 'episode', messages(), FEATURES)
    config = bag_eval.BagEvalConfig(planner_latency=0.01, executor_latency=0.005,
                                    resize_images=True, progress=False)
    finite = AhaWamPolicy.from_checkpoint(_tiny_checkpoint(tmp_path / 'finite', nan=False))
    values = figures([bag_eval.evaluate_bag(bag, finite, config)])
    assert values['nonfinite_chunks'] == 0 and values['mae_mean'] is not None
    assert problems(values) == []
    checkpoint = _tiny_checkpoint(tmp_path / 'nan', nan=True)
    out = tmp_path / 'report'
    assert cli.main(['eval-bag', str(bag), '--checkpoint', str(checkpoint), '--out', str(out),
                     '--resize-images', *FIXED]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    # the weights are named, before any replay (chunks that turn non-finite at run time are
    # counted and reported: test_eval_bag.test_non_finite_chunks_are_counted_and_a_problem)
    assert str(checkpoint / 'model.safetensors') in line and 'NaN or infinite' in line, line
    assert not out.exists()


def test_a_metadata_duration_shorter_than_the_bag_exits_2(tmp_path, capsys):
    bag = write_bag(tmp_path / 'bag', messages(40), FEATURES)
    metadata = bag / 'metadata.yaml'
    text = metadata.read_text()
    match = re.search(r'duration:\s*\n\s*nanoseconds:\s*(\d+)', text)
    assert match, text
    half = int(match.group(1)) // 2
    metadata.write_text(text[:match.start(1)] + str(half) + text[match.end(1):])
    assert eval_bag(bag, '--out', tmp_path / 'out') == 2
    error = capsys.readouterr().err
    assert 'past the recorded end' in error and len(error.strip().splitlines()) == 1, error
