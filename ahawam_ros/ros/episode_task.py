"""The task an episode_start header names (its frame_id), followed by a node's policy."""

from ahawam_ros.runtime.loading import condition_on_task
from rclpy.node import Node


def follow_episode_task(node: Node, task: str) -> None:
    """Condition `node.policy` on `task` (empty: keep); a task it lacks is logged once."""
    try:
        if condition_on_task(node.policy, task):
            node.get_logger().info(f'policy conditioned on task {task!r}')
    except ValueError as error:
        node.get_logger().error(f'episode task {task!r} ignored: {error}', once=True)
