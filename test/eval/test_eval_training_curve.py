"""eval-curve: checkpoints of a run, training time from its log, the table."""

import math

from ahawam_ros.eval.training_curve import (CurveOptions, format_markdown, main,
                                            policy_checkpoints, training_minutes)
import pytest


def test_training_minutes_sum_both_stages_in_log_order():
    rows = [{'stage': 'autoencoder', 'step': 10, 'samples_per_s': 16.0},
            {'stage': 'autoencoder', 'step': 20, 'samples_per_s': 8.0},
            {'stage': 'policy', 'step': 10, 'samples_per_s': 4.0},
            {'stage': 'policy', 'step': 30, 'samples_per_s': 0.0},  # no rate: no time
            {'stage': 'policy', 'step': 40, 'samples_per_s': 16.0}]
    # 10 s + 20 s of autoencoder, then 40 s, +0, +10 s at batch 16.
    assert training_minutes(rows, 16) == {10: 70 / 60, 30: 70 / 60, 40: 80 / 60}


def test_policy_checkpoints_are_found_in_step_order(tmp_path):
    for name in ('policy_step_0000500', 'policy_step_0000250', 'ae_step_0000500'):
        (tmp_path / 'checkpoints' / name).mkdir(parents=True)
    found = policy_checkpoints(tmp_path)
    assert list(found) == [250, 500]
    assert found[500].name == 'policy_step_0000500'
    with pytest.raises(FileNotFoundError, match='no policy checkpoints'):
        policy_checkpoints(tmp_path / 'elsewhere')
    assert main(['--run', str(tmp_path), '--steps', '750']) == 2  # a step never saved


def test_the_table_shows_each_checkpoint_and_missing_figures_as_dashes():
    row = {'step': 500, 'training_minutes': 12.34, 'successes': 2, 'episodes': 5,
           'success_interval_68': [0.2, 0.6], 'mean_max_reward': 2.5,
           'first_grasp_distance_m': {'median': 0.031, 'count': 3},
           'grounding_r2_cube': 0.81, 'grounding_r2_expert': 0.99}
    empty = dict(row, step=250, first_grasp_distance_m={'median': math.nan, 'count': 0},
                 grounding_r2_cube=None)
    table = format_markdown([empty, row]).splitlines()
    assert table[2].startswith('| 250 |') and '| - |' in table[2]
    assert table[3] == '| 500 | 12.3 | 2/5 | [0.20, 0.60] | 2.50 | 3.1 | 0.81 (0.99) |'
    with pytest.raises(ValueError, match='seeds >= 5'):
        CurveOptions(run='r', seeds=2)
