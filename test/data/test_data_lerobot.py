"""LeRobot datasets: bags written as v3.0 and read back, training and evaluation, bad ones."""

import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys

from ahawam_ros.cli import main as ahawam
from ahawam_ros.data.dataset import DataConfig, load_episodes, PolicyDataset
from ahawam_ros.data.lerobot.mapping import load_any_mapping, load_dataset_mapping
from ahawam_ros.data.lerobot.meta import DatasetError, open_dataset
from ahawam_ros.data.lerobot.writer import write_dataset
from ahawam_ros.model.presets import tiny
import numpy as np
import pytest
from test_data_dataset import synthetic_episode, write_bags


def export(bags: Path, out: Path, *flags: str) -> Path:
    assert ahawam(['export-lerobot', str(bags), '--out', str(out), *flags]) == 0
    return out


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """Two synthetic demonstration bags and the LeRobot dataset `export-lerobot` makes of them."""
    root = tmp_path_factory.mktemp('lerobot')
    bags = write_bags(root / 'bags')
    return bags, export(bags, root / 'dataset')


def test_the_export_is_a_v30_dataset_with_one_episode_per_bag(exported):
    _, dataset = exported
    index = open_dataset(dataset)
    assert index.version == 'v3.0' and index.fps == 50.0
    assert [(e.index, e.length) for e in index.episodes] == [(0, 60), (1, 45)]
    assert index.video_keys == ['observation.images.top', 'observation.images.left_wrist']
    # both episodes share one mp4 per view: the second starts where the first ends
    spans = [e.videos['observation.images.top'] for e in index.episodes]
    assert spans[0].path == spans[1].path and spans[1].from_s == pytest.approx(60 / 50)
    info = json.loads((dataset / 'meta' / 'info.json').read_text())
    assert info['features']['observation.state']['names'][0] == 'left_waist'
    assert info['total_frames'] == 105 and info['features']['action']['shape'] == [14]


def test_lerobots_av1_is_written_in_a_process_of_its_own_and_reads_back(exported, tmp_path):
    """--codec libsvtav1 runs in a subprocess here: SVT-AV1 leaves a process's threads RT."""
    bags, default = exported
    dataset = tmp_path / 'av1'
    subprocess.run([sys.executable, '-m', 'ahawam_ros.cli', 'export-lerobot', str(bags),
                    '--out', str(dataset), '--codec', 'libsvtav1'], check=True,
                   capture_output=True, timeout=300)
    info = json.loads((dataset / 'meta' / 'info.json').read_text())
    assert info['features']['observation.images.top']['info']['video.codec'] == 'av1'
    assert json.loads((default / 'meta' / 'info.json').read_text())['features'][
        'observation.images.top']['info']['video.codec'] == 'h264'  # the default
    config = tiny()
    for a, b in zip(load_episodes(DataConfig(bags=str(default)), config)[0],
                    load_episodes(DataConfig(bags=str(dataset)), config)[0]):
        np.testing.assert_array_equal(a.actions, b.actions)
        assert np.abs(a.images.astype(int) - b.images.astype(int)).max() <= 6


def test_a_dataset_and_the_bags_it_came_from_give_the_same_training_samples(exported):
    bags, dataset = exported
    config = tiny()
    from_bags, _ = load_episodes(DataConfig(bags=str(bags)), config)
    from_dataset, _ = load_episodes(DataConfig(bags=str(dataset)), config)
    for a, b in zip(from_bags, from_dataset):
        assert (a.task, a.cameras, a.joint_names) == (b.task, b.cameras, b.joint_names)
        np.testing.assert_allclose(b.joint_positions, a.joint_positions, atol=1e-5)  # float32
        np.testing.assert_allclose(b.actions, a.actions, atol=1e-5)
        np.testing.assert_allclose(b.timestamps - b.timestamps[0],
                                   a.timestamps - a.timestamps[0], atol=1e3)  # 1 us
        error = np.abs(b.images.astype(int) - a.images.astype(int))
        assert error.mean() < 1.0 and error.max() <= 4, (error.mean(), error.max())  # codec
    samples = [PolicyDataset(episodes, config, seed=1) for episodes in (from_bags, from_dataset)]
    assert len(samples[0]) == len(samples[1])
    for draw in (0, 17, len(samples[0]) - 1):
        a, b = samples[0][draw], samples[1][draw]
        assert a.keys() == b.keys()
        for key in a:
            tolerance = 4 if np.asarray(a[key]).dtype == np.uint8 else 1e-4
            np.testing.assert_allclose(np.asarray(b[key], np.float64),
                                       np.asarray(a[key], np.float64), atol=tolerance,
                                       err_msg=key)


def test_a_dataset_at_twice_the_control_rate_keeps_every_other_frame(tmp_path):
    episode = synthetic_episode(40)
    from ahawam_ros.data.episode import from_sim_episode
    dataset = write_dataset([from_sim_episode(episode)], tmp_path / 'ds100', fps=100)
    (read,), _ = load_episodes(DataConfig(bags=str(dataset)), tiny())
    assert len(read) == 20
    np.testing.assert_allclose(read.joint_positions, episode.qpos[::2], atol=1e-5)
    np.testing.assert_array_equal(read.timestamps, np.arange(20) * 20_000_000)  # 50 Hz steps


def test_a_dataset_at_a_rate_that_is_not_a_multiple_is_refused(tmp_path):
    from ahawam_ros.data.episode import from_sim_episode
    dataset = write_dataset([from_sim_episode(synthetic_episode(20))], tmp_path / 'ds30',
                            fps=30)
    with pytest.raises(DatasetError, match=r'fps 30 is not the policy.s control rate 50'):
        load_episodes(DataConfig(bags=str(dataset)), tiny())


def test_training_and_offline_evaluation_run_from_a_dataset(exported, tmp_path, capsys):
    _, dataset = exported
    assert ahawam(['train', '--data', str(dataset), '--preset', 'tiny', '--out',
                   str(tmp_path / 'run'), '--ae-steps', '1', '--steps', '1',
                   '--batch-size', '2']) == 0
    out = tmp_path / 'report'
    assert ahawam(['eval-bag', str(dataset), '--checkpoint', str(tmp_path / 'run' / 'policy'),
                   '--out', str(out), '--no-progress']) == 0
    results = json.loads((out / 'metrics.json').read_text())
    assert sorted(results['bags']) == ['episode_000000', 'episode_000001']
    assert results['all']['compared_ticks'] > 0
    assert (out / 'report.html').is_file()
    inputs = results['bags']['episode_000000']['inputs']
    assert inputs['cameras'] == {'top': 'observation.images.top',
                                 'left_wrist': 'observation.images.left_wrist'}


# --- broken datasets: exit 2, one line naming the file and what is wrong --------------------

def _break_missing_file(dataset: Path) -> str:
    (dataset / 'data' / 'chunk-000' / 'file-000.parquet').unlink()
    return r'missing file data/chunk-000/file-000\.parquet'


def _break_short_video(dataset: Path) -> str:
    shorter = write_dataset([_episode(steps) for steps in (60, 30)],
                            dataset.parent / 'shorter', fps=50)
    video = Path('videos') / 'observation.images.left_wrist' / 'chunk-000' / 'file-000.mp4'
    shutil.copy(shorter / video, dataset / video)
    return (r'videos/observation\.images\.left_wrist/chunk-000/file-000\.mp4: episode 1, '
            r'observation\.images\.left_wrist: the video ends at .* shorter than its parquet')


def _break_undecodable_video(dataset: Path) -> str:
    video = dataset / 'videos' / 'observation.images.top' / 'chunk-000' / 'file-000.mp4'
    video.write_bytes(b'\x00\x00\x00\x18ftypmp42' + bytes(range(256)) * 8)
    return r'videos/observation\.images\.top/chunk-000/file-000\.mp4: .*not a readable video'


def _break_feature_shape(dataset: Path) -> str:
    info_file = dataset / 'meta' / 'info.json'
    info = json.loads(info_file.read_text())
    info['features']['action']['shape'] = [13]  # the rows carry 14
    info_file.write_text(json.dumps(info))
    return (r"data/chunk-000/file-000\.parquet: episode 0: feature 'action' has 14 values in "
            r'its row 0, info\.json says 13')


def _break_version(dataset: Path) -> str:
    info_file = dataset / 'meta' / 'info.json'
    info = json.loads(info_file.read_text())
    info['codebase_version'] = 'v1.6'
    info_file.write_text(json.dumps(info))
    return r"meta/info\.json: codebase_version 'v1\.6' is not one this package reads"


def _episode(steps: int):
    from ahawam_ros.data.episode import from_sim_episode
    return from_sim_episode(synthetic_episode(steps))


@pytest.mark.parametrize('breaking', [_break_missing_file, _break_short_video,
                                      _break_undecodable_video, _break_feature_shape,
                                      _break_version])
def test_a_broken_dataset_stops_with_exit_2_and_one_line_naming_it(
        exported, tmp_path, breaking, capsys):
    dataset = shutil.copytree(exported[1], tmp_path / 'broken')
    expected = breaking(dataset)
    for command in (['eval-bag', str(dataset), '--checkpoint', 'fake', '--out',
                     str(tmp_path / 'report'), '--no-progress'],
                    ['train', '--data', str(dataset), '--preset', 'tiny', '--out',
                     str(tmp_path / 'run'), '--steps', '1', '--ae-steps', '1']):
        capsys.readouterr()
        assert ahawam(command) == 2, command
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and str(dataset) in lines[0], lines
        assert re.search(expected, lines[0]), lines[0]
    assert not (tmp_path / 'report').exists()


# --- mappings ----------------------------------------------------------------------------------

def test_the_shipped_dataset_mappings_load_and_bag_mappings_are_refused_for_datasets(
        exported, tmp_path, capsys):
    aloha = load_dataset_mapping('lerobot_aloha')
    assert aloha.camera_features[0] == 'observation.images.cam_high'
    assert load_dataset_mapping('lerobot_aloha_sim').cameras == ('top',)
    assert type(load_any_mapping('aloha_interbotix')).__name__ == 'TopicMapping'
    assert ahawam(['eval-bag', str(exported[1]), '--checkpoint', 'fake', '--mapping',
                   'aloha_interbotix', '--out', str(tmp_path / 'r'), '--no-progress']) == 2
    assert 'a bag (topic) mapping, given for a LeRobot dataset' in capsys.readouterr().err


def test_a_mapping_names_features_and_values_the_dataset_has(exported, tmp_path, capsys):
    values = {'cameras': {'top': 'observation.images.top',
                          'left_wrist': 'observation.images.left_wrist'},
              'joint_states': {'observation.state': {str(i): n for i, n in enumerate(
                  json.loads((exported[1] / 'meta' / 'info.json').read_text())['features'][
                      'action']['names'])}},
              'commands': {'action': {'left_waist': 'left_waist'}}}
    mapping = tmp_path / 'm.yaml'
    mapping.write_text(json.dumps(values))
    with pytest.raises(ValueError, match='commands: every policy joint exactly once'):
        load_dataset_mapping(mapping)
    values['commands'] = {'action.typo': dict(values['joint_states']['observation.state'])}
    mapping.write_text(json.dumps(values))
    with pytest.raises(DatasetError, match=r"the mapping reads feature\(s\) \['action\.typo'\]"):
        load_episodes(DataConfig(bags=str(exported[1]), mapping=str(mapping)), tiny())
    values['commands'] = {'action': dict(values['joint_states']['observation.state'])}
    mapping.write_text(json.dumps(values))  # by index: the same episodes as by name
    by_index, _ = load_episodes(DataConfig(bags=str(exported[1]), mapping=str(mapping),
                                           cache_dir=str(tmp_path / 'cache')), tiny())
    by_name, _ = load_episodes(DataConfig(bags=str(exported[1])), tiny())
    np.testing.assert_array_equal(by_index[0].joint_positions, by_name[0].joint_positions)


def test_image_features_stored_in_the_rows_read_losslessly(exported, tmp_path):
    """A dataset recorded without videos: PNG bytes in a {bytes, path} column per frame."""
    import cv2
    import pyarrow as pa
    import pyarrow.parquet as pq
    bags, source = exported
    dataset = shutil.copytree(source, tmp_path / 'images')
    key = 'observation.images.left_wrist'
    originals, _ = load_episodes(DataConfig(bags=str(bags)), tiny())
    frames = np.concatenate([e.images[:, 1] for e in originals])  # the left_wrist view
    data_file = dataset / 'data' / 'chunk-000' / 'file-000.parquet'
    table = pq.read_table(data_file)
    encoded = [{'bytes': cv2.imencode('.png', cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes(),
                'path': None} for f in frames]
    pq.write_table(table.append_column(key, pa.array(encoded)), data_file)
    shutil.rmtree(dataset / 'videos' / key)
    info_file = dataset / 'meta' / 'info.json'
    info = json.loads(info_file.read_text())
    info['features'][key]['dtype'] = 'image'
    info_file.write_text(json.dumps(info))
    read, _ = load_episodes(DataConfig(bags=str(dataset)), tiny())
    for a, b in zip(originals, read):
        np.testing.assert_array_equal(b.images[:, 1], a.images[:, 1])  # PNG: exact
        assert np.abs(b.images[:, 0].astype(int) - a.images[:, 0]).max() <= 4  # still video
    encoded[7]['bytes'] = b'not an image'
    pq.write_table(table.append_column(key, pa.array(encoded)), data_file)
    with pytest.raises(DatasetError, match=r'data/chunk-000/file-000\.parquet: episode 0, '
                                           r'observation\.images\.left_wrist: a frame does not'):
        load_episodes(DataConfig(bags=str(dataset), cache_dir=str(tmp_path / 'c2')), tiny())


def test_writing_videos_leaves_no_thread_of_the_process_real_time(tmp_path):
    """The default encoder, in this process: nothing real-time after it (SVT-AV1 fails this)."""
    from ahawam_ros.data.episode import from_sim_episode
    from ahawam_ros.thread_policy import realtime_threads
    before = realtime_threads()
    write_dataset([from_sim_episode(synthetic_episode(12))], tmp_path / 'ds', fps=50)
    assert realtime_threads() == before
    import threading
    policies = []
    thread = threading.Thread(target=lambda: policies.append(os.sched_getscheduler(0)))
    thread.start()
    thread.join()
    assert policies == [os.SCHED_OTHER]  # what a thread started now (a DDS thread) inherits


def test_rows_off_the_fps_grid_are_an_error_naming_the_frame(exported, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    dataset = shutil.copytree(exported[1], tmp_path / 'shifted')
    data_file = dataset / 'data' / 'chunk-000' / 'file-000.parquet'
    table = pq.read_table(data_file)
    stamps = table.column('timestamp').to_numpy().copy()
    stamps[5] += 0.4 / 50  # frame 5 of episode 0, 0.4 of a frame late
    table = table.set_column(table.schema.get_field_index('timestamp'), 'timestamp',
                             pa.array(stamps, pa.float32()))
    pq.write_table(table, data_file)
    with pytest.raises(DatasetError, match=r'file-000\.parquet: episode 0: timestamp 0\.1080 s '
                                           r'of frame 5 is off the 50 fps grid \(0\.1000 s\)'):
        load_episodes(DataConfig(bags=str(dataset)), tiny())
