"""QoS profiles of the system's topics, in one place."""

from rclpy.qos import qos_profile_sensor_data, QoSHistoryPolicy, QoSProfile, ReliabilityPolicy

# Cameras: best effort, only the newest frame matters.
CAMERA_QOS = QoSProfile(depth=1, history=QoSHistoryPolicy.KEEP_LAST,
                        reliability=qos_profile_sensor_data.reliability,
                        durability=qos_profile_sensor_data.durability)
# World context descriptors: reliable, latest wins.
CONTEXT_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
# Joint commands: reliable (a controller must see every command).
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
