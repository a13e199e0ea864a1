"""Datasets the real `lerobot` wrote (v3.0, v2.1: test/fixtures/lerobot): read, trained, run."""

import importlib.util
import json
import os
from pathlib import Path
import shutil
import subprocess

from ahawam_ros.cli import main as ahawam
from ahawam_ros.data.dataset import DataConfig, load_episodes
from ahawam_ros.data.features import FeatureConfig
from ahawam_ros.data.lerobot.mapping import load_dataset_mapping
from ahawam_ros.data.lerobot.meta import open_dataset
from ahawam_ros.data.lerobot.reader import read_dataset_episode
from ahawam_ros.model.presets import small
import numpy as np
import pytest
from test_data_dataset import write_bags

FIXTURES = Path(__file__).resolve().parents[1] / 'fixtures' / 'lerobot'
VERSIONS = {'v3.0': FIXTURES / 'aloha_v30', 'v2.1': FIXTURES / 'aloha_v21'}


def _fixture_maker():
    """Import make_fixtures.py (plain numpy at import: lerobot only inside its main)."""
    spec = importlib.util.spec_from_file_location('make_fixtures', FIXTURES / 'make_fixtures.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKER = _fixture_maker()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10.0 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def _two_view_mapping(path: Path) -> Path:
    """Write the shipped ALOHA mapping cut to the tiny preset's two views."""
    values = {'cameras': {'top': 'observation.images.cam_high',
                          'left_wrist': 'observation.images.cam_left_wrist'},
              'joint_states': {'observation.state': {n: n for n in MAKER.MOTORS}},
              'commands': {'action': {n: n for n in MAKER.MOTORS}},
              'task': 'transfer_cube'}
    path.write_text(json.dumps(values))
    return path


@pytest.mark.parametrize('version', sorted(VERSIONS))
def test_the_real_lerobot_writers_datasets_read_as_written(version):
    index = open_dataset(VERSIONS[version])
    assert index.version == version and index.fps == 50.0
    assert [e.length for e in index.episodes] == list(MAKER.EPISODE_LENGTHS)
    assert index.features['observation.state'].names == tuple(MAKER.MOTORS)  # {motors: [..]}
    mapping = load_dataset_mapping('lerobot_aloha')  # the shipped mapping of ALOHA datasets
    for entry in index.episodes:
        episode = read_dataset_episode(index, entry, mapping)
        written = MAKER.build_episode(entry.index)
        np.testing.assert_array_equal(episode.joint_positions, written['state'])  # exact
        np.testing.assert_array_equal(episode.actions, written['action'])
        assert episode.cameras == ('top', 'left_wrist', 'right_wrist')
        assert episode.task == 'transfer_cube'  # the shipped mapping's task for every string
        for view, camera in enumerate(('cam_high', 'cam_left_wrist', 'cam_right_wrist')):
            frames, truth = episode.images[:, view], written[camera]
            for step in range(len(frames)):
                own = _psnr(frames[step], truth[step])
                assert own > 27.0, (camera, step, own)  # the codec's loss, no more
                for other in (step - 1, step + 1):  # the frame of this row, not a neighbour
                    if 0 <= other < len(truth):
                        assert own > _psnr(frames[step], truth[other]) + 3.0


def test_task_strings_map_to_policy_tasks_through_the_mapping(tmp_path):
    mapping = _two_view_mapping(tmp_path / 'two_views.yaml')
    values = json.loads(mapping.read_text())
    del values['task']
    values['tasks'] = {MAKER.TASK_TRANSFER: 'transfer_cube', MAKER.TASK_INSERT: 'insertion'}
    mapping.write_text(json.dumps(values))
    index = open_dataset(VERSIONS['v3.0'])
    tasks = [read_dataset_episode(index, e, load_dataset_mapping(mapping)).task
             for e in index.episodes]
    assert tasks == ['transfer_cube', 'insertion', 'transfer_cube']
    del values['tasks']
    mapping.write_text(json.dumps(values))
    with pytest.raises(ValueError, match=r"episode 0: its task 'Transfer the cube to the other "
                                         r"arm\.' maps to no policy task"):
        read_dataset_episode(index, index.episodes[0], load_dataset_mapping(mapping))


@pytest.mark.parametrize('version', sorted(VERSIONS))
def test_the_real_lerobot_writers_datasets_train_and_evaluate_through_the_shipped_mapping(
        version, tmp_path):
    dataset = shutil.copytree(VERSIONS[version], tmp_path / 'dataset')  # the cache goes beside
    episodes, _ = load_episodes(DataConfig(bags=str(dataset), mapping='lerobot_aloha',
                                           resize_images=True), small())
    assert [len(e) for e in episodes] == list(MAKER.EPISODE_LENGTHS)
    assert episodes[0].images.shape[1:] == (3, 128, 160, 3)  # resized to the small views
    out = tmp_path / 'report'
    assert ahawam(['eval-bag', str(dataset), '--checkpoint', 'fake', '--mapping',
                   'lerobot_aloha', '--out', str(out), '--no-progress']) == 0
    results = json.loads((out / 'metrics.json').read_text())
    assert sorted(results['bags']) == [f'episode_{i:06d}' for i in range(3)]
    assert (out / 'report.html').is_file()


@pytest.mark.parametrize('version', sorted(VERSIONS))
@pytest.mark.parametrize('preset', ['small', 'tiny'])
def test_ahawam_train_runs_on_the_real_lerobot_writers_datasets(version, preset, tmp_path):
    dataset = shutil.copytree(VERSIONS[version], tmp_path / 'dataset')
    mapping = 'lerobot_aloha' if preset == 'small' else str(_two_view_mapping(tmp_path / 'm.yaml'))
    assert ahawam(['train', '--data', str(dataset), '--mapping', mapping, '--resize-images',
                   '--preset', preset, '--out', str(tmp_path / 'run'), '--ae-steps', '1',
                   '--steps', '2', '--batch-size', '1']) == 0
    assert (tmp_path / 'run' / 'policy').is_dir()


def _lerobot_python():
    return os.environ.get('AHAWAM_LEROBOT_PYTHON')


@pytest.mark.skipif(not _lerobot_python(), reason='the real lerobot reader is checked where '
                    'AHAWAM_LEROBOT_PYTHON names a python that has lerobot 0.4 (see '
                    'test/fixtures/lerobot/README.md); CI has none')
def test_an_ahawam_written_dataset_loads_with_the_real_lerobot_reader(tmp_path):
    features = FeatureConfig(cameras=('top', 'left_wrist'), image_height=48, image_width=64)
    bags = write_bags(tmp_path / 'bags', features=features, size=(48, 64))
    dataset = tmp_path / 'dataset'
    assert ahawam(['export-lerobot', str(bags), '--out', str(dataset)]) == 0
    result = subprocess.run([_lerobot_python(), str(FIXTURES / 'check_with_lerobot.py'),
                             str(dataset), '--no-expected'], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0 and result.stdout.strip().endswith('OK'), \
        result.stdout[-3000:] + result.stderr[-3000:]
