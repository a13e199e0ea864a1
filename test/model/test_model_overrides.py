"""Changes to a model preset by dotted name (`ahawam train --model-set`)."""

from ahawam_ros.model.overrides import apply_overrides, parse_assignments
from ahawam_ros.model.presets import get_preset
import pytest


def test_each_value_is_read_as_its_fields_type_and_the_rest_stays_the_presets():
    small = get_preset('small')
    config = apply_overrides(small, parse_assignments([
        'executor.context_adapter=off', 'executor.width=128', 'executor.mlp_ratio=2',
        'objective.grasp_target=each', 'task.task_names=transfer_cube, insertion, wipe',
        'num_layers = 4']))
    assert config.executor.context_adapter is False and config.executor.width == 128
    assert config.executor.mlp_ratio == 2.0 and isinstance(config.executor.mlp_ratio, float)
    assert config.objective.grasp_target == 'each' and config.num_layers == 4
    assert config.task.task_names == ('transfer_cube', 'insertion', 'wipe')
    untouched = config.to_dict()
    for section, name in (('executor', 'context_adapter'), ('executor', 'width'),
                          ('executor', 'mlp_ratio'), ('objective', 'grasp_target'),
                          ('task', 'task_names')):
        untouched[section][name] = small.to_dict()[section][name]
    untouched['num_layers'] = small.num_layers
    assert untouched == small.to_dict()  # nothing else moved
    assert small.executor.context_adapter  # the preset itself is not changed
    assert apply_overrides(small, {'executor.width': 96}).executor.width == 96  # typed values


@pytest.mark.parametrize('assignment, message', [
    ('executor.widht=128', "executor has no field 'widht'; valid: ['action_dim'"),
    ('planer.width=128', "the model config has no field 'planer'"),
    ('executor=3', 'a section, name one of its fields'),
    ('executor.width=wide', 'executor.width=wide: not a int'),
    ('executor.width=1.5', 'not a int'),
    ('executor.context_adapter=maybe', 'not a bool'),
    ('planner.patch_size=7', 'planner.patch_size=7:'),  # must divide the latent grid
    ('executor.width=0', 'executor.width=0:'),
])
def test_a_bad_override_fails_naming_it(assignment, message):
    with pytest.raises(ValueError, match=None) as error:
        apply_overrides(get_preset('small'), parse_assignments([assignment]))
    assert message in str(error.value)


@pytest.mark.parametrize('text', ['executor.width', '=3', ''])
def test_an_assignment_needs_a_name_and_an_equals_sign(text):
    with pytest.raises(ValueError, match='expected NAME=VALUE'):
        parse_assignments([text])
