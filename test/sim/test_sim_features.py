"""The topic-to-feature mapping (no simulator needed)."""

import json

from ahawam_ros.data.features import feature_preset, FeatureConfig
from ahawam_ros.robot import JOINT_NAMES
import pytest


def test_default_topics_and_types():
    features = FeatureConfig()
    assert features.topic_types() == {
        '/cameras/top/image_raw': 'sensor_msgs/msg/Image',
        '/cameras/left_wrist/image_raw': 'sensor_msgs/msg/Image',
        '/cameras/right_wrist/image_raw': 'sensor_msgs/msg/Image',
        '/joint_states': 'sensor_msgs/msg/JointState',
        '/joint_commands': 'std_msgs/msg/Float64MultiArray',
        '/joint_trajectory': 'trajectory_msgs/msg/JointTrajectory',
        '/sim/reward': 'std_msgs/msg/Float64',
    }
    assert features.joint_names == JOINT_NAMES
    assert features.image_shape == (120, 160, 3)
    assert features.camera_frame('top') == 'top_optical_frame'


def test_custom_pattern_changes_every_camera_topic():
    features = FeatureConfig(cameras=('cam_high',), camera_topic_pattern='/robot/{name}/rgb')
    assert features.camera_topics() == {'cam_high': '/robot/cam_high/rgb'}


@pytest.mark.parametrize('field,value', [
    ('cameras', ()), ('cameras', ('top', 'top')), ('cameras', ('top view',)),
    ('image_width', 0), ('camera_topic_pattern', '/cameras/image'),
    ('camera_frame_pattern', 'camera'), ('joint_state_topic', 'joint_states'),
    ('reward_topic', '/joint_commands'), ('task', '')])
def test_bad_fields_are_named(field, value):
    with pytest.raises(ValueError, match=field if field != 'reward_topic' else 'distinct'):
        FeatureConfig(**{field: value})


def test_dict_round_trip_through_json():
    features = FeatureConfig(task='insertion', cameras=('top',), image_height=64)
    restored = FeatureConfig.from_dict(json.loads(json.dumps(features.to_dict())))
    assert restored == features
    with pytest.raises(ValueError, match='unknown field'):
        FeatureConfig.from_dict({'fps': 50})


def test_presets():
    assert feature_preset('insertion').task == 'insertion'
    with pytest.raises(ValueError, match='transfer_cube'):
        feature_preset('nope')
