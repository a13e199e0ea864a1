"""
ROS-free asynchronous scheduling of AHA-WAM: context slot, chunk scheduler, safety filter.

The same objects run inside the ROS nodes, the offline bag evaluator and plain unit tests:
clocks are injected (a callable returning seconds) and the model is reached only through the
`ChunkPolicy` interface of `policy_api`. Nothing here imports rclpy or message modules.
"""
