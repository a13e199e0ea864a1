"""`ahawam eval-grounding`: the expert's observation fed to a policy, its chunk probed."""

import contextlib
import io
import json

import numpy as np
import pytest

pytest.importorskip('gym_aloha', reason='the simulator (requirements/sim.txt) is not installed')

from ahawam_ros import cli  # noqa: E402, I100
from ahawam_ros.eval.closed_loop.policy import PolicyViews  # noqa: E402
from ahawam_ros.eval.grounding.cli import (ExpertObserver, format_table,  # noqa: E402
                                           grounding_metrics, GroundingOptions, refresh_steps)
from ahawam_ros.eval.grounding.probe import ridge_cv_r2  # noqa: E402
from ahawam_ros.sim.aloha_env import SimConfig  # noqa: E402

pytestmark = pytest.mark.sim
SEEDS, STEP, DRAWS = 5, 20, 2


@pytest.fixture(scope='module')
def grounding(varied_tiny_checkpoint, tmp_path_factory):
    """Run eval-grounding on a few seeds at a mid-approach step; return report, data, text."""
    out, printed = tmp_path_factory.mktemp('grounding'), io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(['eval-grounding', '--checkpoint', varied_tiny_checkpoint, '--seeds',
                         str(SEEDS), '--first-seed', '1000', '--step', str(STEP), '--folds',
                         '2', '--noise-draws', str(DRAWS), '--out', str(out)])
    assert code == 0
    report = json.loads((out / 'metrics.json').read_text())
    return report, dict(np.load(out / 'grounding_data.npz')), printed.getvalue()


def test_the_report_has_every_figure(grounding):
    report, _, printed = grounding
    metrics = report['metrics']
    for source in ('policy', 'policy_fresh_noise', 'expert', 'proprio'):
        assert set(metrics['r2']['red_box'][source]) == {'x', 'y', 'mean'}, source
    assert metrics['objects'] == ['red_box']
    assert set(metrics['r2_motion']['red_box']) == {'policy', 'policy_fresh_noise', 'expert'}
    changes = metrics['chunk_change_rad']
    assert set(changes) == {'context_swapped', 'frame_swapped', 'proprio_swapped',
                            'noise_only'}
    assert all(np.isfinite(v) and v >= 0.0 for v in changes.values())
    assert changes['noise_only'] > 0.0  # the tiny model's chunk depends on its noise
    assert changes['proprio_swapped'] > 0.0  # mid-approach, the seeds' joint states differ
    assert metrics['seed_spread_rad']['expert'] > 0.0
    assert report['options']['step'] == STEP and report['options']['seeds'] == SEEDS
    assert 'expert chunk (ceiling)' in printed and 'context swapped' in printed


def test_the_arrays_hold_one_row_per_seed(grounding):
    _, data, _ = grounding
    assert list(data['seeds']) == list(range(1000, 1000 + SEEDS))
    assert data['chunks'].shape == data['expert_chunks'].shape == (SEEDS, 16, 14)
    assert data['fresh_chunks'].shape == (SEEDS, 16, 14)
    assert not np.allclose(data['fresh_chunks'], data['chunks'])
    assert data['proprio'].shape == (SEEDS, 14) and data['objects'].shape == (SEEDS, 1, 3)
    assert len(data['swap_context']) == SEEDS - 1 and len(data['noise']) == SEEDS * DRAWS
    assert np.all(np.isfinite(data['chunks']))
    assert len(np.unique(data['objects'][:, 0, 0])) == SEEDS  # every seed places the cube anew
    # The expert's chunk continues from where its arms are at S.
    right_waist = 7
    assert np.allclose(data['expert_chunks'][:, 0, right_waist], data['proprio'][:, right_waist],
                       atol=0.05)


def test_metrics_recompute_from_the_arrays(grounding):
    report, data, _ = grounding
    metrics = grounding_metrics(data, folds=2)
    expert = report['metrics']['r2']['red_box']['expert']
    assert metrics['r2']['red_box']['expert'] == pytest.approx(expert)
    assert format_table(metrics).count('\n') == 15


def test_same_noise_gives_the_same_chunk(varied_tiny_checkpoint):
    from ahawam_ros.eval.grounding.cli import chunk
    from ahawam_ros.eval.closed_loop.policy import load_eval_policy
    policy = load_eval_policy(varied_tiny_checkpoint)
    images = np.full((2, 16, 16, 3), 90, np.uint8)
    proprio = np.zeros(14, np.float32)
    context = policy.plan(images, 0)
    first, other, again = (chunk(policy, images, proprio, context, 0, seed) for seed in (3, 4, 3))
    assert np.array_equal(first, again) and not np.allclose(first, other)


def test_the_expert_chunk_locates_the_cube_at_reset():
    """The ceiling: at step 0 the expert's chunk determines the cube; the joint state cannot."""
    config = SimConfig(cameras=('top',), image_height=16, image_width=16, episode_len=16)
    observer = ExpertObserver(config, PolicyViews(('top',), None))
    try:
        inputs = [observer.observe(seed, 0, 16, refresh_steps(0, 17, 2))
                  for seed in range(2000, 2012)]
    finally:
        observer.close()
    chunks = np.stack([i.expert_chunk for i in inputs])  # (12, K, A)
    cube = np.stack([i.objects[0] for i in inputs])[:, :2]
    assert np.all(ridge_cv_r2(chunks, cube, folds=4) > 0.8)
    proprio = np.stack([i.proprio for i in inputs])
    assert np.ptp(proprio, axis=0).max() < 1e-6  # every seed starts from the same pose
    assert [step for step, _ in inputs[0].frames] == [0]


def test_insertion_records_the_peg_and_the_socket_and_the_expert_locates_both():
    """Two objects: each seed's peg and socket rows, and the ceiling R^2 for each."""
    config = SimConfig(task='insertion', cameras=('top',), image_height=16, image_width=16,
                       episode_len=16)
    observer = ExpertObserver(config, PolicyViews(('top',), None))
    try:
        inputs = [observer.observe(seed, 0, 16, [0]) for seed in range(2000, 2012)]
    finally:
        observer.close()
    objects = np.stack([i.objects for i in inputs])  # (12, 2, 3): peg, socket
    assert objects.shape == (12, 2, 3)
    assert np.all(objects[:, 0, 0] > 0) and np.all(objects[:, 1, 0] < 0)  # right / left half
    chunks = np.stack([i.expert_chunk for i in inputs])
    for index in range(2):
        assert np.all(ridge_cv_r2(chunks, objects[:, index, :2], folds=4) > 0.8), index


def test_refresh_steps_end_at_the_step_and_fit_the_memory():
    assert refresh_steps(60, 17, 6) == [9, 26, 43, 60]
    assert refresh_steps(60, 17, 2) == [43, 60]
    assert refresh_steps(0, 17, 6) == [0]


@pytest.mark.parametrize('argv', [['--folds', '1'], ['--seeds', '3', '--folds', '2'],
                                  ['--step', '-1'], ['--task', 'stacking']])
def test_bad_options_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(['eval-grounding', '--checkpoint', 'random:tiny'] + argv)
    assert exit_info.value.code == 2
    assert 'eval-grounding' in capsys.readouterr().err


def test_options_name_the_bad_field():
    with pytest.raises(ValueError, match='refresh_steps'):
        GroundingOptions('random:tiny', refresh_steps=0)
