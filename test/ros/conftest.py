"""Fixtures for tests that run real rclpy graphs."""

import pytest
import rclpy
from rclpy.context import Context


@pytest.fixture
def ros_context():
    """Yield a fresh, initialised rclpy Context; shut it down afterwards."""
    context = Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)
