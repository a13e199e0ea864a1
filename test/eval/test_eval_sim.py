"""`ahawam eval-sim` end to end: a tiny-preset checkpoint in the simulator, every mode."""

import contextlib
import io
import json

import numpy as np
import pytest

pytest.importorskip('gym_aloha', reason='the simulator (requirements/sim.txt) is not installed')

from ahawam_ros import cli  # noqa: E402, I100
from ahawam_ros.data.demo_bags import read_bag_metadata  # noqa: E402
from ahawam_ros.eval.closed_loop.modes import MODES  # noqa: E402

pytestmark = pytest.mark.sim
EPISODES, STEPS = 2, 30
MODE_KEYS = {'episodes', 'successes', 'success_rate', 'success_interval_68', 'mean_max_reward',
             'command_rate_hz', 'chunk_rate_hz', 'hold_fraction', 'plan_latency_ms',
             'update_latency_ms', 'context_age_ms', 'episode_results', 'first_grasp_distance_m'}


@pytest.fixture(scope='module')
def evaluation(varied_tiny_checkpoint, tmp_path_factory):
    """Run every mode, 2 episodes of 30 steps, with videos and bags; return report, out, text."""
    out, printed = tmp_path_factory.mktemp('eval_sim'), io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(['eval-sim', '--checkpoint', varied_tiny_checkpoint, '--episodes',
                         str(EPISODES),
                         '--steps', str(STEPS), '--mode', 'all', '--render-size', 'native',
                         '--seed', '5', '--video', '--bags', '--imagination', '1',
                         '--out', str(out)])
    assert code == 0
    return json.loads((out / 'eval_sim.json').read_text()), out, printed.getvalue()


def test_report_has_every_mode_with_the_expected_figures(evaluation):
    report = evaluation[0]
    assert list(report['modes']) == list(MODES)
    assert report['through'] == 'runtime' and report['episodes'] == EPISODES
    for mode, row in report['modes'].items():
        assert MODE_KEYS <= set(row), mode
        assert row['episodes'] == EPISODES and 0.0 <= row['success_rate'] <= 1.0
        low, high = row['success_interval_68']
        assert 0.0 <= low <= row['success_rate'] <= high <= 1.0
        assert [e['seed'] for e in row['episode_results']] == [5, 6]  # same seeds per mode
        assert all(e['steps'] == STEPS for e in row['episode_results'])
        assert all(e['first_grasp_step'] < STEPS for e in row['episode_results'])
        assert 0.0 < row['command_rate_hz'] <= 50.0
        assert row['update_latency_ms']['count'] > 0
        assert np.isfinite(row['update_latency_ms']['p50'])
    assert report['modes']['async']['plan_latency_ms']['count'] > 0
    assert report['modes']['sync']['plan_latency_ms']['count'] == 0
    assert report['modes']['planner-off']['plan_latency_ms']['p50'] is None  # strict JSON
    for row in report['modes'].values():  # both seeds counted once, in their bins
        bins = row['success_by_edge_distance']
        assert sum(b['episodes'] for b in bins) == EPISODES
        assert sum(b['successes'] for b in bins) == row['successes']
    assert evaluation[2].count('distance of the objects to the edge of their placement box') == 3


def test_the_simulator_renders_the_policys_views(evaluation):
    report = evaluation[0]
    assert report['sim']['cameras'] == ['top', 'left_wrist']  # tiny: 2 views of 16 x 16
    assert (report['sim']['image_height'], report['sim']['image_width']) == (16, 16)


def test_one_table_compares_the_modes(evaluation):
    _, _, printed = evaluation
    assert printed.count('rate [68% CI]') == 1
    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if 'rate [68% CI]' in line)
    assert [line.split()[0] for line in lines[header + 2:header + 5]] == list(MODES)


def test_videos_and_bags_are_written_per_episode(evaluation):
    report, out, _ = evaluation
    import cv2
    for mode in MODES:
        for index, episode in enumerate(report['modes'][mode]['episode_results']):
            video = cv2.VideoCapture(episode['video'])
            frames = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
            width = int(video.get(cv2.CAP_PROP_FRAME_WIDTH))
            video.release()
            assert frames == STEPS and width == 2 * 16  # two views side by side
            metadata = read_bag_metadata(out / mode / f'episode_{index:03d}')
            assert metadata['mode'] == mode and metadata['num_steps'] == STEPS
            assert metadata['seed'] == 5 + index


def test_the_report_scores_the_world_models_prediction_beside_copying_the_frame(evaluation):
    report, out, printed = evaluation
    rows = report['imagination']['psnr_db']['0']  # the one anchor within 30 steps: the reset
    frames = len(report['imagination']['future_steps']['0'])
    assert frames >= 1 and set(rows) == {'predicted', 'copy_current', 'reconstruction'}
    assert all(len(values) == frames and all(v > 0 for v in values) for values in rows.values())
    assert 'world model prediction' in printed and 'copy s' in printed
    assert (out / 'imagination' / 'imagination.json').is_file()


def test_the_modes_of_a_report_compare_seed_by_seed(evaluation):
    from ahawam_ros.eval.closed_loop.compare import compare, load_run
    report, out = evaluation[0], evaluation[1]
    with pytest.raises(ValueError, match='name one'):
        load_run(str(out))  # a report of every mode
    result = compare([load_run(f'{out}:{mode}') for mode in MODES])
    assert result['seeds'] == [5, 6]
    for row, mode in zip(result['runs'], MODES):
        assert row['successes'] == report['modes'][mode]['successes']


def test_the_imagination_needs_a_checkpoint_policy():
    from ahawam_ros.eval.closed_loop.cli import EvalOptions
    with pytest.raises(ValueError, match='needs a checkpoint policy'):
        EvalOptions('', policy='expert', imagination=2)


def test_both_tasks_in_one_call_on_the_same_seeds(varied_tiny_checkpoint, tmp_path):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(['eval-sim', '--checkpoint', varied_tiny_checkpoint, '--episodes', '1',
                         '--steps', '20', '--render-size', 'native', '--seed', '7',
                         '--timing', 'replayed', '--task', 'transfer_cube', 'insertion',
                         '--out', str(tmp_path)])
    assert code == 0
    summary = json.loads((tmp_path / 'eval_sim.json').read_text())['tasks']
    assert set(summary) == {'transfer_cube', 'insertion'}
    for task in summary:
        report = json.loads((tmp_path / task / 'eval_sim.json').read_text())
        assert report['task'] == task and report['seed'] == 7
        assert report['sim']['task'] == task  # each simulated as its own scene
        assert summary[task]['async']['episodes'] == 1
    assert 'per task, same seeds' in printed.getvalue()
