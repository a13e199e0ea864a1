"""`ahawam eval-bag` on real-robot bags: the ALOHA mapping, topic flags, bare .mcap, damage."""

import json
from pathlib import Path
import shutil
import struct

from ahawam_ros import cli
from ahawam_ros.eval.bag.cli import BagEvalConfig, evaluate_bag
from ahawam_ros.runtime.loading import load_policy
from ahawam_ros.runtime.policy_api import FakePolicy
from bag_fixtures import PERIOD_NS, write_bag
from bag_fixtures_aloha import aloha_messages, episode_values, twin_features, twin_messages
import numpy as np
import pytest

STEPS = 25
FIXED = ['--planner-latency', '0.01', '--executor-latency', '0.005', '--no-progress',
         '--checkpoint', 'fake']
SERIES = ('tick_time', 'command', 'is_hold', 'reason', 'recorded_time', 'recorded',
          'joint_time', 'joints')


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    """Write an ALOHA-layout bag and its default-layout twin, of the same episode."""
    root = tmp_path_factory.mktemp('aloha')
    joints, commands = episode_values(STEPS)
    return (write_bag(root / 'aloha', aloha_messages(joints, commands)),
            write_bag(root / 'twin', twin_messages(joints, commands), twin_features()))


def eval_bag(bag: Path, out: Path, *flags: str) -> int:
    return cli.main(['eval-bag', str(bag), '--out', str(out), *FIXED, *flags])


def replay(bag: Path, **settings):
    config = BagEvalConfig(planner_latency=0.01, executor_latency=0.005, progress=False,
                           **settings)
    return evaluate_bag(bag, load_policy('fake'), config)


def assert_same_trace(a, b):
    """Traces (ReplayTrace or a saved trace.npz) agree on every per-tick series."""
    for key in SERIES:
        x, y = (np.asarray(t[key] if hasattr(t, 'files') else getattr(t, key)) for t in (a, b))
        if x.dtype.kind == 'f':
            np.testing.assert_allclose(x, y, atol=1e-12, err_msg=key)
        else:
            np.testing.assert_array_equal(x.astype(str), y.astype(str), err_msg=key)


def test_aloha_bag_evaluates_as_its_twin_read_from_a_bare_mcap(bags, tmp_path):
    aloha, twin = bags
    (data,) = twin.glob('*.mcap')
    bare = Path(shutil.copy(data, tmp_path / 'twin.mcap'))
    assert eval_bag(aloha, tmp_path / 'a', '--mapping', 'aloha_interbotix') == 0
    mapped = np.load(tmp_path / 'a' / 'aloha' / 'trace.npz')
    assert_same_trace(mapped, replay(twin))
    assert_same_trace(mapped, replay(bare))  # a bare .mcap file is a bag
    assert mapped['recorded'].shape == (STEPS, 14) and not mapped['is_hold'].all()
    joints, commands = episode_values(STEPS)
    np.testing.assert_allclose(mapped['recorded'], commands, atol=1e-12)
    np.testing.assert_allclose(mapped['joints'], joints, atol=1e-12)
    settings = json.loads((tmp_path / 'a' / 'metrics.json').read_text())['settings']
    assert settings['mapping'] == 'aloha_interbotix'


def test_topic_flags_evaluate_a_renamed_layout(bags, tmp_path):
    """The twin's topics under a namespace: flags alone name them, the trace is the same."""
    _, twin = bags
    joints, commands = episode_values(STEPS)
    renamed = [(f'/robot1{topic}', msgtype, stamp, msg)
               for topic, msgtype, stamp, msg in twin_messages(joints, commands)]
    bag = write_bag(tmp_path / 'robot1', renamed)  # no recorded features
    views = tuple(f'{name}=/robot1/cameras/{name}/image_raw' for name in twin_features().cameras)
    flagged = replay(bag, cameras=views, joint_state_topics=('/robot1/joint_states',),
                     command_topics=('/robot1/joint_commands',))
    assert_same_trace(flagged, replay(twin))


def test_frames_are_resized_for_the_policy(bags):
    aloha, _ = bags

    class SizedPolicy(FakePolicy):
        image_size = (16, 16)

        def plan(self, images, step):
            self.shapes.append(images.shape)
            return super().plan(images, step)

    policy = SizedPolicy(chunk_len=16, action_dim=14, control_period=0.02)
    policy.shapes = []
    config = BagEvalConfig(mapping='aloha_interbotix', resize_images=True, progress=False,
                           planner_latency=0.01, executor_latency=0.005)
    result = evaluate_bag(aloha, policy, config)  # 48x64 frames
    assert len(result.tick_time) == STEPS and set(policy.shapes) == {(3, 16, 16, 3)}


def test_missing_joint_exits_2_naming_topic_and_joint(tmp_path, capsys):
    joints, commands = episode_values(5)
    bag = write_bag(tmp_path / 'bag', aloha_messages(joints, commands, drop_joint='left_finger'))
    assert eval_bag(bag, tmp_path / 'out', '--mapping', 'aloha_interbotix') == 2
    error = capsys.readouterr().err
    assert error.count('\n') == 1 and "'/follower_right/joint_states'" in error
    assert "'left_finger' (mapped to right_gripper)" in error
    assert not (tmp_path / 'out').exists()


def test_a_message_lost_to_damage_exits_2_and_writes_nothing(bags, tmp_path, capsys):
    aloha, _ = bags
    bag = Path(shutil.copytree(aloha, tmp_path / 'damaged'))
    (data,) = bag.glob('*.mcap')
    raw = bytearray(data.read_bytes())
    at = raw.find(struct.pack('<QQ', 7 * PERIOD_NS, 7 * PERIOD_NS)) - 15  # right command
    assert raw[at] == 0x05
    raw[at] = 0x7F  # the reader now skips this record without a word
    data.write_bytes(bytes(raw))
    assert eval_bag(bag, tmp_path / 'out', '--mapping', 'aloha_interbotix') == 2
    error = capsys.readouterr().err
    assert "'/right_arm_controller/joint_trajectory' (24 of 25)" in error, error
    assert not (tmp_path / 'out').exists()
