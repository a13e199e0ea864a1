"""Topic and joint mappings: the YAML form, validation, overrides and the per-topic merge rule."""

from pathlib import Path

from ahawam_ros.data.features import FeatureConfig, TRAJECTORY_MSG
from ahawam_ros.data.joint_merge import JointDecoder, JointMerger
from ahawam_ros.data.mapping import from_features, JointMap, JointTopic, MappingOverrides
from ahawam_ros.data.mapping import TopicMapping
from ahawam_ros.data.mapping_yaml import load_mapping, shipped_mappings
from ahawam_ros.robot import JOINT_NAMES
from bag_fixtures import command_msg, joint_msg, trajectory_msg
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ALOHA = ROOT / 'config' / 'mappings' / 'aloha_interbotix.yaml'
MS = 1_000_000


def test_shipped_mappings_load_and_the_default_one_is_the_default_layout():
    assert {'aloha_interbotix', 'default'} <= set(shipped_mappings())
    aloha = load_mapping(ALOHA)
    assert load_mapping('aloha_interbotix') == aloha  # a shipped mapping by name
    assert aloha.cameras == ('top', 'left_wrist', 'right_wrist')
    assert aloha.camera_topics[0] == '/cam_high/camera/color/image_rect_raw'
    assert [t.topic for t in aloha.joint_states] == ['/follower_left/joint_states',
                                                     '/follower_right/joint_states']
    assert aloha.joint_names == JOINT_NAMES
    default = load_mapping(ROOT / 'config' / 'mappings' / 'default.yaml')
    assert default == from_features(FeatureConfig(), {'/joint_commands': 'x'})


def test_gripper_range_maps_closed_to_0_and_open_to_1():
    aloha = load_mapping(ALOHA)
    finger = next(j for j in aloha.joint_states[0].joints if j.joint == 'left_gripper')
    assert finger.source == 'left_finger'
    np.testing.assert_allclose(finger.scale * np.array([0.01844, 0.05800]) + finger.offset,
                               [0.0, 1.0], atol=1e-12)
    angle = next(j for j in aloha.commands[1].joints if j.joint == 'right_gripper')
    np.testing.assert_allclose(angle.scale * np.array([-0.6213, 1.4910]) + angle.offset,
                               [0.0, 1.0], atol=1e-12)


BAD = {
    'unmapped joint': ('waist: left_waist', 'waist: right_waist',
                       "joint_states: joint 'right_waist' is mapped twice"),
    'missing joint': ('    left_finger: {joint: left_gripper, range: [0.01844, 0.05800]}\n', '',
                      "joint_states: no topic maps joint(s) ['left_gripper']"),
    'bad range': ('range: [0.01844, 0.05800]}', 'range: [0.02, 0.02]}', 'range: [0.02, 0.02] '
                  'must be two different numbers'),
    'not a joint': ('elbow: left_elbow', 'elbow: left_knee', "'left_knee' is not a policy joint"),
    'unknown key': ('max_skew: 0.05', 'max_skew: 0.05\nskew: 1', "unknown key(s) ['skew']"),
    'bad skew': ('max_skew: 0.05', 'max_skew: -1', 'max_skew: -1 must be > 0 s'),
    'relative topic': ('/follower_left/joint_states:', 'follower_left/joint_states:',
                       "'follower_left/joint_states' is not an absolute topic name"),
    'not yaml': ('cameras:', 'cameras: [', 'not valid YAML'),
}


@pytest.mark.parametrize('case', sorted(BAD))
def test_bad_mapping_files_fail_naming_the_file_and_field(tmp_path, case):
    old, new, expected = BAD[case]
    text = ALOHA.read_text()
    assert old in text, case
    path = tmp_path / 'mapping.yaml'
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ValueError) as info:
        load_mapping(path)
    message = str(info.value)
    assert message.startswith(f'mapping file {path}: ') and expected in message, message
    assert '\n' not in message


def test_a_missing_mapping_file_names_the_shipped_ones(tmp_path):
    with pytest.raises(ValueError, match=r"nothing.yaml: cannot read it .*'aloha_interbotix'"):
        load_mapping(tmp_path / 'nothing.yaml')


def test_overrides_replace_cameras_and_topics():
    aloha = load_mapping(ALOHA)
    changed = MappingOverrides(cameras=('left_wrist', 'top=/cam_low/camera/color/image_raw'),
                               commands=('/joint_commands',), max_skew=0.2).apply(aloha)
    assert changed.cameras == ('left_wrist', 'top')
    assert changed.camera_topics == ('/cam_left_wrist/camera/color/image_rect_raw',
                                     '/cam_low/camera/color/image_raw')
    assert changed.commands == (JointTopic.identity('/joint_commands', JOINT_NAMES),)
    assert changed.max_skew == 0.2 and changed.joint_states == aloha.joint_states
    # a topic of the mapping keeps its joint map, a new one carries every policy joint: the
    # left arm's joints would be commanded twice
    with pytest.raises(ValueError, match="joint 'left_waist' is mapped twice"):
        MappingOverrides(commands=('/left_arm_controller/joint_trajectory',
                                   '/joint_commands')).apply(aloha)
    with pytest.raises(ValueError, match="camera 'front' is not in the mapping"):
        MappingOverrides(cameras=('front',)).apply(aloha)
    default = from_features(FeatureConfig(), {})
    assert MappingOverrides(cameras=('front',)).apply(default).camera_topics == (
        '/cameras/front/image_raw',)  # the default layout names any camera by its pattern
    with pytest.raises(ValueError, match='must be NAME or NAME=/topic'):
        MappingOverrides(cameras=('=/x',))
    with pytest.raises(ValueError, match="'joint_states' is not an absolute"):
        MappingOverrides(joint_states=('joint_states',))


def test_a_group_must_cover_every_joint_once():
    half = JointTopic('/left', tuple(JointMap(n[5:], n) for n in JOINT_NAMES[:7]))
    with pytest.raises(ValueError, match=r"joint_states: no topic maps joint\(s\) \['right_"):
        TopicMapping(cameras=('top',), camera_topics=('/top',), joint_states=(half,),
                     commands=(JointTopic.identity('/c', JOINT_NAMES),))


def test_decoder_maps_names_units_and_indices():
    topic = JointTopic('/arm', (JointMap('elbow', 'left_elbow'),
                                JointMap('finger', 'left_gripper', 2.0, -1.0)))
    decode = JointDecoder(topic, 'sensor_msgs/msg/JointState', JOINT_NAMES)
    idx, values = decode(joint_msg(0, [0.7, 3.0, 0.5], ['finger', 'extra', 'elbow']))
    assert list(idx) == [2, 6]
    np.testing.assert_allclose(values, [0.5, 2.0 * 0.7 - 1.0])
    with pytest.raises(ValueError, match=r"lacks joint\(s\) 'finger' \(mapped to left_gripper\)"):
        decode(joint_msg(0, [0.5], ['elbow']))
    trajectory = JointDecoder(topic, TRAJECTORY_MSG, JOINT_NAMES)
    assert list(trajectory(trajectory_msg(0, [1.0, 0.25], ['finger', 'elbow']))[1]) == [0.25, 1.0]
    by_index = JointTopic('/c', (JointMap('1', 'right_waist'), JointMap('0', 'left_waist')))
    decode = JointDecoder(by_index, 'std_msgs/msg/Float64MultiArray', JOINT_NAMES)
    idx, values = decode(command_msg([0.1, 0.2, 0.3]))
    assert list(idx) == [7, 0] and list(values) == [0.2, 0.1]
    by_name = JointDecoder(JointTopic.identity('/c', JOINT_NAMES),
                           'std_msgs/msg/Float64MultiArray', JOINT_NAMES)
    assert list(by_name(command_msg(np.arange(14.0)))[1]) == list(range(14))
    with pytest.raises(ValueError, match='expected 14 joints'):
        by_name(command_msg([1.0]))
    with pytest.raises(ValueError, match=r"non-finite values for \['elbow'\]"):
        JointDecoder(topic, 'sensor_msgs/msg/JointState', JOINT_NAMES)(
            joint_msg(0, [np.nan, 0.5], ['elbow', 'finger']))


def test_merger_forms_a_sample_per_round_at_the_completing_message():
    merger = JointMerger(2, 4, max_skew_ns=50 * MS)
    left, right = np.array([0, 1]), np.array([2, 3])
    out = [merger.push(0, 0, left, np.array([1.0, 1.0])),
           merger.push(0, 10 * MS, left, np.array([2.0, 2.0])),  # newest left value wins
           merger.push(1, 12 * MS, right, np.array([3.0, 3.0])),  # completes round 1
           merger.push(1, 30 * MS, right, np.array([4.0, 4.0])),  # right first this time
           merger.push(0, 31 * MS, left, np.array([5.0, 5.0]))]  # completes round 2
    assert out[:2] == [None, None] and out[3] is None
    np.testing.assert_array_equal(out[2], [2, 2, 3, 3])
    np.testing.assert_array_equal(out[4], [5, 5, 4, 4])
    assert merger.max_seen_skew_ns == 2 * MS and merger.dropped == 0
    # both arms fall silent; the left resumes first, then the right 0.5 s later: that round
    # mixes a 0.5 s old left value and is dropped; the next one is formed again
    assert merger.push(0, 100 * MS, left, np.array([6.0, 6.0])) is None
    assert merger.push(1, 600 * MS, right, np.array([7.0, 7.0])) is None
    assert merger.dropped == 1
    assert merger.push(0, 610 * MS, left, np.array([8.0, 8.0])) is None
    np.testing.assert_array_equal(merger.push(1, 620 * MS, right, np.array([9.0, 9.0])),
                                  [8, 8, 9, 9])
    single = JointMerger(1, 2, max_skew_ns=1)
    assert all(single.push(0, t, np.array([0, 1]), np.array([t, t])) is not None
               for t in range(3))  # one topic: every message is a sample
