"""Data: rosbag2 reading and writing, datasets, normalisation (ROS-free, uses `rosbags`)."""
