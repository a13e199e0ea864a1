"""`ahawam eval-compare`: evaluations paired by seed, the discordant seeds and McNemar's p."""

import contextlib
import io
import json

import pytest

# the success by distance to the placement box's edge places each seed as gym-aloha does
pytest.importorskip('gym_aloha', reason='the simulator (requirements/sim.txt) is not installed')

from ahawam_ros import cli  # noqa: E402, I100
from ahawam_ros.eval.closed_loop.compare import (  # noqa: E402
    compare, load_run, mcnemar_p, Run, split_spec)
from ahawam_ros.eval.closed_loop.metrics import write_json  # noqa: E402


def _report(path, outcomes, task='transfer_cube', mode='async'):
    """Write an eval-sim report of one mode whose episodes have these {seed: success}."""
    episodes = [{'seed': seed, 'success': ok, 'max_reward': 4.0 if ok else 1.0}
                for seed, ok in outcomes.items()]
    report = {'task': task, 'through': 'runtime',
              'modes': {mode: {'episodes': len(episodes), 'episode_results': episodes}}}
    write_json(report, path / 'eval_sim.json')
    return path


def test_mcnemar_p_is_the_exact_binomial_tail_of_the_discordant_seeds():
    assert mcnemar_p(1, 8) == pytest.approx(20 / 512)  # 2 * (1 + 9) / 2^9
    assert mcnemar_p(6, 2) == pytest.approx(2 * (1 + 8 + 28) / 256)
    assert mcnemar_p(0, 5) == pytest.approx(1 / 16)
    assert mcnemar_p(3, 3) == 1.0 and mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(2, 9) == mcnemar_p(9, 2)
    with pytest.raises(ValueError):
        mcnemar_p(-1, 2)


def test_runs_pair_on_their_common_seeds_against_the_first():
    reference = Run('a', 'transfer_cube', {1: True, 2: True, 3: False, 4: False, 9: True})
    other = Run('b', 'transfer_cube', {1: True, 2: False, 3: True, 4: True, 5: True})
    result = compare([reference, other])
    assert result['seeds'] == [1, 2, 3, 4]
    first, second = result['runs']
    assert (first['successes'], second['successes'], second['episodes']) == (2, 3, 4)
    assert (second['only_reference'], second['only_this']) == (1, 2)
    assert second['mcnemar_p'] == pytest.approx(mcnemar_p(1, 2))
    assert 'mcnemar_p' not in first
    assert result['left_out'] == {'a': 1, 'b': 1}
    assert sum(row['episodes'] for row in second['by_edge_distance']) == 4


def test_runs_of_other_tasks_or_without_common_seeds_are_refused():
    with pytest.raises(ValueError, match='different tasks'):
        compare([Run('a', 'transfer_cube', {1: True}), Run('b', 'insertion', {1: True})])
    with pytest.raises(ValueError, match='share no seed'):
        compare([Run('a', 'transfer_cube', {1: True}), Run('b', 'transfer_cube', {2: True})])
    with pytest.raises(ValueError, match='at least two'):
        compare([Run('a', 'transfer_cube', {1: True})])


def test_a_spec_names_the_mode_after_the_last_colon():
    assert split_spec('runs/a:sync') == ('runs/a', 'sync')
    assert split_spec('runs/a') == ('runs/a', None)
    assert split_spec('/tmp/x:y/eval_sim.json') == ('/tmp/x:y/eval_sim.json', None)


def test_bad_reports_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match='no evaluation report'):
        load_run(str(tmp_path / 'missing'))
    (tmp_path / 'bad.json').write_text('{not json')
    with pytest.raises(ValueError, match='not JSON'):
        load_run(str(tmp_path / 'bad.json'))
    write_json({'tasks': {'insertion': {}}}, tmp_path / 'summary' / 'eval_sim.json')
    with pytest.raises(ValueError, match='several tasks'):
        load_run(str(tmp_path / 'summary'))
    one = _report(tmp_path / 'one', {1: True})
    with pytest.raises(ValueError, match="no mode 'sync'"):
        load_run(f'{one}:sync')


def test_the_command_prints_the_table_and_writes_json(tmp_path):
    a = _report(tmp_path / 'a', {s: s % 5 != 0 for s in range(100, 120)})
    b = _report(tmp_path / 'b', {s: s % 4 != 0 for s in range(100, 120)})
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(['eval-compare', str(a), f'{b}:async', '--labels', 'first', 'second',
                         '--out', str(tmp_path / 'cmp.json')])
    assert code == 0
    text = printed.getvalue()
    assert '20 seeds in common (100..119)' in text and 'first' in text and 'second' in text
    saved = json.loads((tmp_path / 'cmp.json').read_text())
    assert [row['successes'] for row in saved['runs']] == [16, 15]
    # a fails on multiples of 5, b on multiples of 4: only a solves 104, 108, 112, 116,
    # only b 105, 110, 115
    assert (saved['runs'][1]['only_reference'], saved['runs'][1]['only_this']) == (4, 3)


def test_the_command_refuses_unpairable_input_with_exit_code_2(tmp_path, capsys):
    a = _report(tmp_path / 'a', {1: True})
    b = _report(tmp_path / 'b', {1: True}, task='insertion')
    assert cli.main(['eval-compare', str(a), str(b)]) == 2
    assert 'different tasks' in capsys.readouterr().err
    assert cli.main(['eval-compare', str(a), str(a), '--labels', 'only-one']) == 2
