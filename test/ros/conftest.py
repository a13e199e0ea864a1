"""Fixtures for tests that run real rclpy graphs."""

from ahawam_ros.ros.spin import responsive_gil
from ahawam_ros.thread_policy import realtime_threads
import pytest
import rclpy
from rclpy.context import Context

responsive_gil()  # the GIL switch interval of every process that hosts the nodes


@pytest.fixture
def ros_context():
    """
    Yield a fresh, initialised rclpy Context; shut it down afterwards.

    Fails first if the DDS threads it started run under a real-time policy: something earlier
    in this process (SVT-AV1 run as root does) made new native threads SCHED_FIFO 99, and
    one of them spinning would starve the machine instead of failing a test.
    """
    context = Context()
    rclpy.init(context=context)
    probe = rclpy.create_node('ahawam_realtime_probe', context=context)
    try:
        stuck = realtime_threads()
        assert not stuck, (f'{len(stuck)} real-time threads in the test process before the '
                           'test: an earlier test left new threads SCHED_FIFO')
    finally:
        probe.destroy_node()
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
