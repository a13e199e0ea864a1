"""eval-curve: checkpoints of a run, training time from its log, the table."""

import math

from ahawam_ros.eval.grounding.curve import (CurveOptions, format_markdown, main,
                                             policy_checkpoints, training_minutes)
import pytest


def test_training_minutes_sum_every_stage_in_log_order():
    rows = [{'stage': 'autoencoder', 'step': 10, 'samples_per_s': 16.0},
            {'stage': 'autoencoder', 'step': 20, 'samples_per_s': 8.0},
            {'stage': 'policy', 'step': 10, 'samples_per_s': 4.0},
            {'stage': 'policy', 'step': 30, 'samples_per_s': 0.0},  # no rate: no time
            {'stage': 'policy', 'step': 40, 'samples_per_s': 16.0},
            {'stage': 'executor', 'step': 50, 'batch': 64, 'samples_per_s': 320.0,
             'bank_seconds': 20.0}]
    minutes = training_minutes(rows, 16)
    # 10 s + 20 s of autoencoder, then 40 s, +0, +10 s at batch 16, then 20 s + 10 s.
    assert minutes[('policy', 10)] == 70 / 60 and minutes[('policy', 40)] == 80 / 60
    assert minutes[('executor', 50)] == minutes[('final', 0)] == 110 / 60


def test_a_resumed_run_counts_the_minutes_of_an_uninterrupted_one():
    def executor(step, **extra):
        return {'stage': 'executor', 'step': step, 'batch': 10, 'samples_per_s': 1.0, **extra}

    rows = [{'stage': 'policy', 'step': 10, 'samples_per_s': 1.0},
            executor(20, bank_seconds=60.0), executor(40), executor(60),  # stopped at 60
            executor(60, bank_seconds=600.0), executor(80)]  # resumed from the checkpoint at 40
    minutes = training_minutes(rows, 1)
    # 10 s, the bank 60 s, 20 steps x 10 chunks a row: 200 s each; the lost row 60 and the
    # second bank are not counted, the resumed 60 and 80 are.
    assert minutes[('executor', 40)] * 60 == pytest.approx(10 + 60 + 400)
    assert minutes[('executor', 60)] * 60 == pytest.approx(10 + 60 + 600)
    assert minutes[('final', 0)] * 60 == pytest.approx(10 + 60 + 800)
    restart = rows[:3] + [executor(20, bank_seconds=60.0)]  # resumed from the stage's start
    assert training_minutes(restart, 1)[('final', 0)] * 60 == pytest.approx(10 + 60 + 200)


def test_policy_checkpoints_are_found_in_training_order(tmp_path):
    for name in ('executor_step_0001000', 'policy_step_0000500', 'policy_step_0000250',
                 'ae_step_0000500'):
        (tmp_path / 'checkpoints' / name).mkdir(parents=True)
    (tmp_path / 'policy').mkdir()
    (tmp_path / 'policy' / 'config.json').write_text('{}')
    found = policy_checkpoints(tmp_path)
    assert list(found) == ['policy_step_0000250', 'policy_step_0000500',
                           'executor_step_0001000', 'policy']
    assert found['executor_step_0001000'][:2] == ('executor', 1000)
    assert found['policy'][0] == 'final'
    with pytest.raises(FileNotFoundError, match='no policy checkpoints'):
        policy_checkpoints(tmp_path / 'elsewhere')
    assert main(['--run', str(tmp_path), '--checkpoints', 'policy_step_0000750']) == 2


def test_the_table_shows_each_checkpoint_and_missing_figures_as_dashes():
    row = {'checkpoint': 'policy_step_0000500', 'training_minutes': 12.34, 'successes': 2,
           'episodes': 5,
           'success_interval_68': [0.2, 0.6], 'mean_max_reward': 2.5,
           'first_grasp_distance_m': {'median': 0.031, 'count': 3},
           'grounding_r2': {'red_box': 0.81}, 'grounding_r2_expert': {'red_box': 0.99}}
    empty = dict(row, checkpoint='policy_step_0000250',
                 first_grasp_distance_m={'median': math.nan, 'count': 0},
                 grounding_r2=None)
    table = format_markdown([empty, row]).splitlines()
    assert 'red_box R^2 from chunk' in table[0]
    assert table[2].startswith('| policy_step_0000250 |') and '| - |' in table[2]
    assert table[3] == ('| policy_step_0000500 | 12.3 | 2/5 | [0.20, 0.60] | 2.50 | 3.1 | '
                        '0.81 (0.99) |')
    two = dict(row, grounding_r2={'red_peg': 0.7, 'blue_socket': 0.6},
               grounding_r2_expert={'red_peg': 0.98, 'blue_socket': 0.97})
    table = format_markdown([two]).splitlines()
    assert 'red_peg / blue_socket R^2' in table[0]
    assert table[2].endswith('| 0.70 (0.98) / 0.60 (0.97) |')
    with pytest.raises(ValueError, match='seeds >= 5'):
        CurveOptions(run='r', seeds=2)
    with pytest.raises(ValueError, match='task must be one of'):
        CurveOptions(run='r', task='stacking')
    assert CurveOptions(run='r').out_dir.name == 'curve'
    assert CurveOptions(run='r', task='insertion').out_dir.name == 'curve_insertion'
