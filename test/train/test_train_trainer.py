"""The trainer on the tiny preset: both stages, checkpoints, exact resumption, the CLI."""

import json
from pathlib import Path
from types import SimpleNamespace

from ahawam_ros.data.dataset import DataConfig
from ahawam_ros.data.demo_bags import write_episode_bag
from ahawam_ros.data.features import FeatureConfig
from ahawam_ros.model.checkpoint import load_checkpoint
from ahawam_ros.robot import JOINT_NAMES
from ahawam_ros.sim.episode import SimEpisode
from ahawam_ros.train import cli
from ahawam_ros.train import trainer as trainer_module
from ahawam_ros.train.config import TrainConfig
from ahawam_ros.train.state import load_trainer_state, resolve_resume
from ahawam_ros.train.trainer import Trainer
import numpy as np
import pytest
from safetensors.torch import load_file
import torch

FEATURES = FeatureConfig(cameras=('top', 'left_wrist'), image_height=16, image_width=16)
AE_STEPS, STEPS = 4, 4


def _episode(steps: int, seed: int) -> SimEpisode:
    rng = np.random.default_rng(seed)
    qpos = np.cumsum(rng.normal(0, 0.05, (steps, len(JOINT_NAMES))), axis=0)
    images = {c: rng.integers(0, 256, (steps, 16, 16, 3), dtype=np.uint8)
              for c in FEATURES.cameras}
    return SimEpisode(task='transfer_cube', seed=seed, success=True, images=images,
                      qpos=qpos, qvel=np.zeros_like(qpos), actions=qpos + 0.1,
                      reward=np.zeros(steps), time=np.arange(steps) * 0.02,
                      object_pose=np.zeros((steps, 0)))


@pytest.fixture(scope='module')
def bags(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('bags')
    for seed, steps in enumerate((40, 36)):
        write_episode_bag(_episode(steps, seed), root / f'ep{seed}', FEATURES)
    return root


def _config(bags: Path, out: Path, **changes) -> TrainConfig:
    values = {'data': DataConfig(bags=str(bags)), 'preset': 'tiny', 'out': str(out),
              'steps': STEPS, 'ae_steps': AE_STEPS, 'batch_size': 4, 'checkpoint_every': 2,
              'log_every': 1, 'device': 'cpu', 'seed': 7}
    values.update(changes)
    return TrainConfig(**values)


def _losses(history, stage):
    return {row['step']: row['loss'] for row in history if row['stage'] == stage}


@pytest.fixture(scope='module')
def uninterrupted(bags, tmp_path_factory):
    out = tmp_path_factory.mktemp('uninterrupted')
    trainer = Trainer(_config(bags, out))
    final = trainer.run()
    return SimpleNamespace(out=out, final=final, history=trainer.history)


def test_both_stages_train_and_save_self_describing_checkpoints(uninterrupted):
    out, history = uninterrupted.out, uninterrupted.history
    assert sorted(_losses(history, 'autoencoder')) == list(range(1, AE_STEPS + 1))
    assert sorted(_losses(history, 'policy')) == list(range(1, STEPS + 1))
    assert all(np.isfinite(row['loss']) and row['samples_per_s'] > 0 for row in history)
    model, info = load_checkpoint(uninterrupted.final)
    assert info.step == STEPS and info.configs['train']['steps'] == STEPS
    assert info.configs['data']['cameras'] == list(FEATURES.cameras)
    assert info.norm_stats is not None and info.norm_stats.action_dim == len(JOINT_NAMES)
    assert not any(p.requires_grad for p in model.autoencoder.parameters())
    # The policy carries the calibrated autoencoder of stage 1.
    autoencoder = load_file(str(out / 'autoencoder' / 'model.safetensors'))
    assert torch.equal(model.autoencoder.latent_std, autoencoder['latent_std'])
    assert not torch.equal(autoencoder['latent_std'], torch.ones_like(autoencoder['latent_std']))
    state = load_trainer_state(resolve_resume(out))
    assert state['stage'] == 'policy' and state['step'] == STEPS and state['optimizer']['state']


@pytest.mark.parametrize('stage,interrupt_at', [('autoencoder', 3), ('policy', AE_STEPS + 3)])
def test_resume_after_interruption_matches_the_uninterrupted_run(
        bags, tmp_path, monkeypatch, uninterrupted, stage, interrupt_at):
    calls = []
    real_backward = trainer_module.backward

    def interrupted_backward(*args):
        calls.append(1)
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        return real_backward(*args)

    monkeypatch.setattr(trainer_module, 'backward', interrupted_backward)
    with pytest.raises(KeyboardInterrupt):
        Trainer(_config(bags, tmp_path)).run()
    monkeypatch.setattr(trainer_module, 'backward', real_backward)
    assert load_trainer_state(resolve_resume(tmp_path))['stage'] == stage

    resumed = Trainer(_config(bags, tmp_path))
    final = resumed.run(resume=str(tmp_path))
    expected = load_file(str(uninterrupted.final / 'model.safetensors'))
    weights = load_file(str(final / 'model.safetensors'))
    assert weights.keys() == expected.keys()
    for name in expected:
        assert torch.equal(weights[name], expected[name]), name
    # The steps after the resumption log the losses the uninterrupted run logged.
    for name in {stage, 'policy'}:
        after = _losses(resumed.history, name)
        assert min(after) == 3 if name == stage else min(after) == 1
        assert after == {s: v for s, v in _losses(uninterrupted.history, name).items()
                         if s in after}


def test_cli_trains_resumes_and_rejects_bad_flags(bags, tmp_path, capsys):
    out = tmp_path / 'run'
    flags = ['--data', str(bags), '--preset', 'tiny', '--out', str(out), '--steps', '2',
             '--ae-steps', '1', '--batch-size', '2', '--device', 'cpu', '--seed', '3']
    assert cli.main(flags) == 0
    assert (out / 'policy' / 'model.safetensors').is_file()
    assert cli.main(['--resume', str(out), '--steps', '3']) == 0
    _, info = load_checkpoint(out / 'policy')
    assert info.step == 3 and info.configs['train']['seed'] == 3  # settings came from the run
    # A finished run continues with the executor stage on its frozen planner, here with one
    # more demonstration that only this stage sees.
    more = tmp_path / 'more'
    write_episode_bag(_episode(38, 9), more / 'ep9', FEATURES)
    capsys.readouterr()
    assert cli.main(['--resume', str(out), '--executor-steps', '3',
                     '--executor-batch-size', '4', '--executor-data', str(more)]) == 0
    assert f'stage 3: 2 + 1 episodes ({more})' in capsys.readouterr().out
    model, info = load_checkpoint(out / 'policy')
    assert info.step == 3 + 3 and info.configs['train']['executor_steps'] == 3
    rows = [json.loads(line) for line in (out / 'train_log.jsonl').read_text().splitlines()]
    assert [row['step'] for row in rows if row['stage'] == 'executor'] == [3]
    capsys.readouterr()
    assert cli.main(['--preset', 'tiny']) == 2
    assert '--data DIR is required' in capsys.readouterr().err
    assert cli.main(['--data', str(bags), '--preset', 'huge']) == 2
    assert "'huge'" in capsys.readouterr().err
    assert cli.main(['--data', str(bags), '--batch-size', '0']) == 2
    assert 'TrainConfig.batch_size = 0' in capsys.readouterr().err
    (tmp_path / 'empty').mkdir()
    assert cli.main(['--data', str(tmp_path / 'empty'), '--preset', 'tiny']) == 2
    assert 'no rosbag2 bags' in capsys.readouterr().err
    assert cli.main(['--resume', str(out), '--executor-steps', '3',
                     '--executor-data', str(tmp_path / 'empty')]) == 2
    assert 'no rosbag2 bags' in capsys.readouterr().err


def test_trains_on_simulator_episodes_directly(tmp_path):
    sim_episodes = [_episode(30, seed) for seed in (5, 6)]
    trainer = Trainer(_config(Path('unused'), tmp_path, steps=1, ae_steps=1), sim_episodes)
    assert trainer.episodes[1].images.shape == (30, 2, 16, 16, 3)
    np.testing.assert_allclose(trainer.norm_stats.action_mean,
                               np.concatenate([e.actions for e in sim_episodes]).mean(0))
    _, info = load_checkpoint(trainer.run())
    assert info.step == 1 and info.norm_stats == trainer.norm_stats


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match=r'TrainConfig.lr = -1'):
        TrainConfig(lr=-1)
    with pytest.raises(ValueError, match=r'TrainConfig.device'):
        TrainConfig(device='tpu')
    with pytest.raises(ValueError, match=r'--autoencoder'):
        TrainConfig(ae_steps=0)
    with pytest.raises(ValueError, match=r'unknown keys \[.bogus.\]'):
        TrainConfig.from_dict({'bogus': 1})
    config = _config(Path('bags'), Path('out'))
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_an_interrupted_executor_stage_resumes_from_its_checkpoint(bags, tmp_path):
    out = tmp_path / 'run'
    flags = ['--data', str(bags), '--preset', 'tiny', '--out', str(out), '--steps', '2',
             '--ae-steps', '1', '--batch-size', '2', '--device', 'cpu', '--seed', '3',
             '--checkpoint-every', '1', '--executor-steps', '6', '--executor-batch-size', '4']
    assert cli.main(flags) == 0
    # The stage checkpoints every 4 steps: step 4 is the run's latest; resuming there
    # continues the executor stage (the joint stage is not run again) to its end.
    middle = out / 'checkpoints' / 'executor_step_0000004'
    assert resolve_resume(out) == middle.resolve()
    (out / 'policy' / 'state.json').unlink()  # the resumed run must write the policy again
    assert cli.main(['--resume', str(out)]) == 0
    assert load_checkpoint(out / 'policy')[1].step == 2 + 6
    rows = [json.loads(line) for line in (out / 'train_log.jsonl').read_text().splitlines()]
    assert [row['step'] for row in rows if row['stage'] == 'policy'] == [2]
    assert [row['step'] for row in rows if row['stage'] == 'executor'] == [6, 6]


def test_object_loss_weight_overrides_the_presets_and_is_saved(tmp_path):
    config = cli.build_config({'data': 'unused', 'preset': 'tiny', 'object_loss_weight': 0.5,
                               'out': str(tmp_path), 'steps': 1, 'ae_steps': 1,
                               'device': 'cpu', 'batch_size': 2})
    assert config.object_loss_weight == 0.5
    trainer = Trainer(config, [_episode(30, seed) for seed in (5, 6)])
    assert trainer.model_config.objective.object_loss_weight == 0.5
    model, _ = load_checkpoint(trainer.run())
    assert model.config.objective.object_loss_weight == 0.5
    with pytest.raises(ValueError, match=r'TrainConfig.object_loss_weight'):
        TrainConfig(object_loss_weight=-1)


@pytest.mark.parametrize('target', ['first', 'each'])
def test_the_grasp_target_trains_the_position_head_on_hindsight_labels(tmp_path, target):
    """`grasp_loss_weight`: the head's target is where a gripper closed, from the bag alone."""
    from ahawam_ros.data.hindsight import grasp_positions
    episode = _episode(40, 3)
    gripper = JOINT_NAMES.index('right_gripper')
    episode.actions[:, gripper] = np.where(np.arange(40) < 12, 1.0, 0.0)  # closes at step 12
    write_episode_bag(episode, tmp_path / 'bags' / 'ep0', FEATURES)
    config = cli.build_config({'data': str(tmp_path / 'bags'), 'preset': 'tiny',
                               'object_loss_weight': 0.0, 'grasp_loss_weight': 1.0,
                               'grasp_target': target, 'executor_steps': 2,
                               'executor_batch_size': 4, 'out': str(tmp_path / 'run'),
                               'steps': 1, 'ae_steps': 1, 'device': 'cpu', 'batch_size': 2})
    trainer = Trainer(config)
    loaded = trainer.episodes[0]
    expected = grasp_positions(loaded, target)
    assert expected is not None and expected.shape == (40, 3 if target == 'first' else 6)
    np.testing.assert_array_equal(loaded.object_position, expected)
    if target == 'each':  # only the right arm picks something up: the left slot is empty
        assert np.isnan(expected[:, :3]).all() and np.isfinite(expected[:, 3:]).all()
    model, _ = load_checkpoint(trainer.run())  # the executor stage too, NaNs masked
    objective = model.config.objective
    assert (objective.object_loss_weight, objective.grasp_loss_weight) == (0.0, 1.0)
    assert objective.grasp_target == target
    assert model.executor.object_head.out_features == expected.shape[1]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    rows = [json.loads(line) for line in (tmp_path / 'run' / 'train_log.jsonl').open()]
    assert rows[-1]['stage'] == 'executor' and rows[-1]['object_loss'] > 0
    with pytest.raises(ValueError, match='grasp_loss_weight.*object_loss_weight is > 0'):
        Trainer(cli.build_config({'data': 'unused', 'preset': 'tiny', 'object_loss_weight': 0.5,
                                  'grasp_loss_weight': 1.0, 'device': 'cpu'}), [episode])
    with pytest.raises(ValueError, match='TrainConfig.grasp_target'):
        TrainConfig(grasp_target='both')


def test_the_executor_stage_may_learn_another_grasp_target_than_the_joint_stage(tmp_path):
    """A resume at the joint stage's last step with another target: a fresh head for it."""
    episode = _episode(40, 3)
    gripper = JOINT_NAMES.index('right_gripper')
    episode.actions[:, gripper] = np.where(np.arange(40) < 12, 1.0, 0.0)  # closes at step 12
    write_episode_bag(episode, tmp_path / 'bags' / 'ep0', FEATURES)
    flags = ['--data', str(tmp_path / 'bags'), '--preset', 'tiny', '--out',
             str(tmp_path / 'joint'), '--steps', '2', '--ae-steps', '1', '--batch-size', '2',
             '--device', 'cpu', '--checkpoint-every', '1', '--object-loss-weight', '0',
             '--grasp-loss-weight', '1', '--grasp-target', 'first']
    assert cli.main(flags) == 0
    joint = tmp_path / 'joint' / 'checkpoints' / 'policy_step_0000002'
    first_head = load_checkpoint(joint)[0].executor.object_head
    assert first_head.out_features == 3
    resumed = ['--resume', str(joint), '--out', str(tmp_path / 'each'), '--grasp-target', 'each',
               '--executor-steps', '2', '--executor-batch-size', '4']
    assert cli.main(resumed) == 0
    model, info = load_checkpoint(tmp_path / 'each' / 'policy')
    assert model.config.objective.grasp_target == 'each' and info.step == 2 + 2
    assert model.executor.object_head.out_features == 6
    assert all(torch.isfinite(p).all() for p in model.parameters())
    rows = [json.loads(line) for line in (tmp_path / 'each' / 'train_log.jsonl').open()]
    assert rows[-1]['stage'] == 'executor' and rows[-1]['object_loss'] > 0
    # before the joint stage's end, or with no executor stage to learn it, it is refused
    middle = tmp_path / 'joint' / 'checkpoints' / 'policy_step_0000001'
    with pytest.raises(ValueError, match='position target'):
        cli.main(['--resume', str(middle), '--out', str(tmp_path / 'x'),
                  '--grasp-target', 'each', '--executor-steps', '2'])
    with pytest.raises(ValueError, match='position target'):
        cli.main(['--resume', str(joint), '--out', str(tmp_path / 'y'), '--grasp-target', 'each'])


def test_a_run_saved_with_an_object_target_setting_reads_as_the_weights_now():
    """Runs saved before `grasp_loss_weight` chose the target with data.object_target."""
    old = {'data': {'bags': 'd', 'object_target': 'hindsight'}, 'preset': 'small'}
    config = TrainConfig.from_dict(old)
    assert (config.object_loss_weight, config.grasp_loss_weight) == (0.0, 1.0)  # small's 1.0
    config = TrainConfig.from_dict({'data': {'bags': 'd', 'object_target': 'recorded'}})
    assert (config.object_loss_weight, config.grasp_loss_weight) == (None, None)


def test_distill_saves_a_flash_student_that_loads_as_a_policy(uninterrupted, bags, tmp_path):
    from ahawam_ros.model.policy import AhaWamPolicy
    from ahawam_ros.train import distill
    out = tmp_path / 'student'
    assert distill.main(['--checkpoint', str(uninterrupted.final), '--data', str(bags),
                         '--student-steps', '1', '--steps', '3', '--batch-size', '2',
                         '--out', str(out)]) == 0
    teacher, teacher_info = load_checkpoint(uninterrupted.final)
    student, info = load_checkpoint(out)
    assert student.config.flow.num_inference_steps == 1
    assert info.configs['distill']['student_steps'] == 1 and info.step == teacher_info.step + 3
    assert info.norm_stats == teacher_info.norm_stats
    changed = [name for name, p in student.state_dict().items()
               if not torch.equal(p, teacher.state_dict()[name])]
    assert changed and all(name.startswith('executor.') for name in changed)
    assert AhaWamPolicy.from_checkpoint(str(out)).num_steps == 1
    assert distill.main(['--checkpoint', str(tmp_path / 'missing'), '--data', str(bags),
                         '--out', str(tmp_path / 'x')]) == 2


def test_model_set_changes_the_presets_model_is_saved_and_kept_on_resume(bags, tmp_path,
                                                                         capsys):
    out = tmp_path / 'run'
    flags = ['--data', str(bags), '--preset', 'tiny', '--out', str(out), '--steps', '2',
             '--ae-steps', '1', '--batch-size', '2', '--device', 'cpu',
             '--model-set', 'executor.context_adapter=false', '--model-set', 'executor.width=24']
    assert cli.main(flags) == 0
    model, info = load_checkpoint(out / 'policy')
    assert not model.config.executor.context_adapter and model.config.executor.width == 24
    assert not hasattr(model.executor, 'context_key')  # the adapter's weights are gone
    assert info.configs['train']['model_overrides'] == {'executor.context_adapter': 'false',
                                                        'executor.width': '24'}
    assert cli.main(['--resume', str(out), '--steps', '3']) == 0  # the saved model again
    model, info = load_checkpoint(out / 'policy')
    assert info.step == 3 and model.config.executor.width == 24
    capsys.readouterr()
    assert cli.main(['--resume', str(out), '--model-set', 'executor.width=32']) == 2
    assert 'keeps the model it saved' in capsys.readouterr().err
    assert cli.main(flags[:-2] + ['--model-set', 'executor.depth=3']) == 2
    assert "executor has no field 'depth'" in capsys.readouterr().err
