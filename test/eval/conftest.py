"""Fixtures shared by the evaluation tests."""

import pytest


@pytest.fixture(scope='session')
def varied_tiny_checkpoint(tmp_path_factory):
    """Save an untrained tiny-preset checkpoint (seeded, heads de-zeroed: chunks vary)."""
    import torch
    from ahawam_ros.model.aha_wam import AhaWamModel
    from ahawam_ros.model.checkpoint import save_checkpoint
    from ahawam_ros.model.presets import get_preset
    from ahawam_ros.model.testing import perturb_zero_inits
    torch.manual_seed(0)
    model = AhaWamModel(get_preset('tiny'))
    perturb_zero_inits(model)
    return str(save_checkpoint(tmp_path_factory.mktemp('ckpt') / 'tiny', model, step=0))
