"""Configs validate their fields; presets build; `paper` builds on the meta device."""

from ahawam_ros.model.aha_wam import AhaWamModel, parameter_counts
from ahawam_ros.model.config import (AutoencoderConfig, ModelConfig, ObjectiveConfig, OvcrConfig,
                                     PlannerConfig)
from ahawam_ros.model.presets import get_preset, PRESETS
import pytest
import torch


@pytest.mark.parametrize('build,message', [
    (lambda: ModelConfig(num_layers=0), 'ModelConfig.num_layers = 0'),
    (lambda: ModelConfig(head_dim=7), 'ModelConfig.head_dim = 7'),
    (lambda: PlannerConfig(memory_size=1.5), 'PlannerConfig.memory_size = 1.5'),
    (lambda: OvcrConfig(num_queries=-2), 'OvcrConfig.num_queries = -2'),
    (lambda: AutoencoderConfig(channels=()), 'AutoencoderConfig.channels = ()'),
    (lambda: AutoencoderConfig(num_views=3, tile_rows=1, tile_cols=2),
     'AutoencoderConfig.num_views = 3'),
    (lambda: ModelConfig(autoencoder=AutoencoderConfig(view_height=18)),
     'AutoencoderConfig.view_height = 18'),
    (lambda: ObjectiveConfig(grasp_target='both'), "ObjectiveConfig.grasp_target = 'both'"),
])
def test_bad_fields_are_named_with_their_value(build, message):
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
        build()


def test_the_position_head_has_a_slot_per_arm_only_for_each_grasp():
    assert ObjectiveConfig().position_dim == 3
    assert ObjectiveConfig(object_loss_weight=1.0, grasp_target='each').position_dim == 3
    assert ObjectiveConfig(grasp_loss_weight=1.0).position_dim == 3
    assert ObjectiveConfig(grasp_loss_weight=1.0, grasp_target='each').position_dim == 6


def test_unknown_preset_and_unknown_keys_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown model preset 'huge'.*\['paper', 'small'"):
        get_preset('huge')
    data = get_preset('tiny').to_dict()
    data['planner']['depth'] = 3
    with pytest.raises(ValueError, match=r"PlannerConfig: unknown config keys \['depth'\]"):
        ModelConfig.from_dict(data)


@pytest.mark.parametrize('name', sorted(PRESETS))
def test_presets_round_trip_through_dicts(name):
    config = get_preset(name)
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_paper_preset_builds_on_meta_with_parameter_counts_per_module():
    with torch.device('meta'):
        model = AhaWamModel(get_preset('paper'))
    assert all(p.is_meta for p in model.parameters())
    counts = parameter_counts(model)
    assert set(counts) == {'autoencoder', 'task_encoder', 'planner', 'executor', 'ovcr', 'total'}
    assert 4.5e9 < counts['planner'] < 5.5e9  # Wan2.2-TI2V-5B-sized video DiT
    assert 0.8e9 < counts['executor'] < 1.4e9  # about 1B
    assert 1.0e9 < counts['ovcr'] < 1.4e9  # about 1.2B
    config = model.config
    assert config.tokens_per_frame == 120 and config.attn_width == 3072
