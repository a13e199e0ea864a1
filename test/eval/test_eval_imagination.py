"""`ahawam eval-imagination` end to end on a tiny checkpoint: a prediction per anchor, scored."""

import json

import pytest

pytest.importorskip('gym_aloha', reason='the simulator (requirements/sim.txt) is not installed')

from ahawam_ros import cli  # noqa: E402, I100
from ahawam_ros.eval.imagination import frame_steps  # noqa: E402
from ahawam_ros.model.presets import tiny  # noqa: E402

pytestmark = pytest.mark.sim


def test_the_memory_current_and_future_steps_are_the_trained_layout():
    planner = tiny().planner
    steps = frame_steps(40, planner)
    assert steps['current'] == [40]
    assert steps['memory'] == [40 - j * planner.history_stride
                               for j in range(planner.memory_size, 0, -1)]
    assert steps['future'] == [40 + f * planner.frame_stride
                               for f in range(1, planner.num_future_frames + 1)]
    assert frame_steps(0, planner)['memory'] == []  # nothing before the reset


def test_eval_imagination_scores_each_future_frame_beside_its_references(
        varied_tiny_checkpoint, tmp_path, capsys):
    assert cli.main(['eval-imagination', '--checkpoint', varied_tiny_checkpoint, '--seeds', '2',
                     '--steps', '0', '20', '--num-steps', '2', '--out', str(tmp_path)]) == 0
    report = json.loads((tmp_path / 'imagination.json').read_text())
    frames = tiny().planner.num_future_frames
    for step in ('0', '20'):
        rows = report['psnr_db'][step]
        assert set(rows) == {'predicted', 'copy_current', 'reconstruction'}
        assert all(len(values) == frames and all(v > 0 for v in values)
                   for values in rows.values())
    assert 'AE ceiling' in capsys.readouterr().out
