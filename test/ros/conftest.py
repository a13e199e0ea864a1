"""Fixtures for tests that run real rclpy graphs."""

from ahawam_ros.ros.spin import responsive_gil
import pytest
import rclpy
from rclpy.context import Context

responsive_gil()  # the GIL switch interval of every process that hosts the nodes


@pytest.fixture
def ros_context():
    """Yield a fresh, initialised rclpy Context; shut it down afterwards."""
    context = Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
    """Save an untrained tiny-preset AHA-WAM checkpoint (seeded) and return its directory."""
    import torch
    from ahawam_ros.model.aha_wam import AhaWamModel
    from ahawam_ros.model.checkpoint import save_checkpoint
    from ahawam_ros.model.presets import get_preset
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('tiny_ckpt') / 'tiny'
    save_checkpoint(path, AhaWamModel(get_preset('tiny')), step=0)
    return str(path)
