"""The ROS 2 shell: rclpy nodes and message conversion. The only subpackage that imports rclpy."""
