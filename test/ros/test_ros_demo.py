"""End to end: `ahawam demo` runs the simulator and both nodes with the packaged checkpoint."""

import json
import math
import os
import subprocess
import sys

from ahawam_ros.data.typestore import ahawam_typestore
from ahawam_ros.paths import system_params_file
from ahawam_ros.ros.demo import DemoOptions, parse_options
from ahawam_ros.ros.demo_supervisor import DemoSupervisor
from ahawam_ros.ros.node_configs import BimanualSimConfig
from ahawam_ros.runtime.loading import CHECKPOINT_POLICY, DEFAULT_CHECKPOINT, EXPERT_POLICY
from ahawam_ros.runtime.policy_api import FakePolicy
from ahawam_ros.sim.aloha_env import SimConfig
from ahawam_ros.sim.expert_policy import ExpertPolicy
from ahawam_ros.sim.scripted_expert import ScriptedExpert
import cv2
import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rosbags.rosbag2 import Reader
import yaml

pytestmark = [pytest.mark.ros, pytest.mark.sim]


@pytest.fixture
def fake_checkpoint_context():
    """Yield an rclpy context whose nodes load the fake policy at the simulator image size."""
    context = Context()
    rclpy.init(context=context, args=['--ros-args', '-p', 'checkpoint:=fake',
                                      '-p', 'image_height:=120', '-p', 'image_width:=160'])
    yield context
    rclpy.try_shutdown(context=context)


@pytest.mark.parametrize('kind', [CHECKPOINT_POLICY, EXPERT_POLICY])
def test_policy_option_reaches_the_nodes_and_only_the_expert_gets_the_seed(
        kind, fake_checkpoint_context, tmp_path):
    options = parse_options(['--policy', kind, '--episodes', '1'])
    assert options.policy == kind and not options.sim_time
    supervisor = DemoSupervisor.with_system(options, tmp_path, BimanualSimConfig(),
                                            context=fake_checkpoint_context)
    try:
        planner, executor = supervisor.planner_node, supervisor.executor_node
        assert planner.policy is executor.policy  # one policy object for both nodes
        if kind == CHECKPOINT_POLICY:
            assert isinstance(planner.policy, FakePolicy)  # from the checkpoint parameter
            assert supervisor.privileged_episode is None
        else:
            assert isinstance(planner.policy, ExpertPolicy)
            assert planner.policy.seed == BimanualSimConfig().seed  # the first episode's
            supervisor.privileged_episode(9)
            assert planner.policy.seed == 9
    finally:
        for node in supervisor.nodes:
            node.destroy_node()
    with pytest.raises(ValueError, match='policy'):
        DemoOptions(policy='oracle')


@pytest.mark.slow
def test_demo_runs_an_episode_and_writes_bag_video_and_summary(tmp_path):
    assert DEFAULT_CHECKPOINT.is_dir(), f'the packaged checkpoint is missing: {DEFAULT_CHECKPOINT}'
    out = tmp_path / 'demo'
    params = yaml.safe_load(system_params_file().read_text())  # the system's, imagination on
    params['/**/world_planner']['ros__parameters']['imagination_rate_hz'] = 2.0
    (tmp_path / 'params.yaml').write_text(yaml.safe_dump(params))
    result = subprocess.run(
        [sys.executable, '-m', 'ahawam_ros.cli', 'demo', '--episodes', '1',
         '--episode-seconds', '4', '--params-file', str(tmp_path / 'params.yaml'),
         '--out', str(out)],
        capture_output=True, text=True, timeout=240,
        env=dict(os.environ, ROS_DOMAIN_ID=str(140 + os.getpid() % 50)))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert 'AHA-WAM demo summary' in output and 'Traceback' not in output, output
    summary = json.loads((out / 'summary.json').read_text())
    assert len(summary['episodes']) == 1
    # counts over the 4 s episode with a wide margin (200 ticks at 50 Hz), not a rate
    assert summary['command_ticks'] >= 20 and summary['planner_refreshes'] >= 2, summary
    assert summary['chunks_accepted'] >= 1, summary
    assert (out / 'episode_000.mp4').stat().st_size > 1000
    video = cv2.VideoCapture(str(out / 'episode_000.mp4'))
    camera_width = 160  # the simulator's; the imagination beside it makes the video wider
    assert video.get(cv2.CAP_PROP_FRAME_WIDTH) > camera_width
    video.release()
    with Reader(out / 'episode_000') as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    for topic in ('/joint_states', '/joint_trajectory', '/cameras/top/image_raw',
                  '/world_context', '/action_chunk', '/world_planner/imagination'):
        assert counts.get(topic, 0) > 0, counts


@pytest.mark.slow
def test_demo_with_the_expert_on_sim_time_executes_the_experts_plan_of_its_task(tmp_path):
    out, seed = tmp_path / 'demo', 3
    result = subprocess.run(
        [sys.executable, '-m', 'ahawam_ros.cli', 'demo', '--policy', 'expert', '--sim-time',
         '--episodes', '1', '--seed', str(seed), '--episode-seconds', '3', '--no-video',
         '--task', 'insertion', '--out', str(out)],
        capture_output=True, text=True, timeout=240,
        env=dict(os.environ, ROS_DOMAIN_ID=str(140 + (os.getpid() + 7) % 50)))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['policy'] == 'expert' and summary['sim_clock'].startswith('simulated')
    assert math.isfinite(summary['real_time_factor_mean'])
    assert summary['real_time_factor_mean'] > 0 and summary['warm_ticks'] > 0, summary
    assert 'clock: simulated' in output
    with ScriptedExpert(SimConfig(task='insertion', cameras=())) as expert:
        plan = expert.joint_commands(seed)  # (T, A): the task given, not the file's
    typestore, chunks = ahawam_typestore(), []
    with Reader(out / 'episode_000') as reader:
        for connection, _, raw in reader.messages():
            if connection.topic == '/action_chunk':
                chunks.append(typestore.deserialize_cdr(raw, connection.msgtype))
    assert len(chunks) >= 5
    windows = np.lib.stride_tricks.sliding_window_view(plan, (16, 14))[:, 0]  # (T-15, K, A)
    for chunk in chunks:
        actions = np.asarray(chunk.positions).reshape(chunk.chunk_len, 14)
        distance = np.abs(windows - actions[None]).max(axis=(1, 2)).min()
        assert distance < 1e-5  # every chunk is a window of this seed's expert commands


@pytest.mark.slow
def test_eval_sim_through_ros_runs_the_nodes_with_the_same_settings(tmp_path):
    out = tmp_path / 'eval'
    result = subprocess.run(
        [sys.executable, '-m', 'ahawam_ros.cli', 'eval-sim', '--policy', 'expert', '--through',
         'ros', '--episodes', '1', '--steps', '100', '--execute-steps', '2', '--out', str(out)],
        capture_output=True, text=True, timeout=240,
        env=dict(os.environ, ROS_DOMAIN_ID=str(140 + os.getpid() % 50)))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    report = json.loads((out / 'eval_sim.json').read_text())
    assert report['through'] == 'ros' and report['settings']['executor']['execute_steps'] == 2
    params = (out / 'ros' / 'params.yaml').read_text()
    assert 'execute_steps: 2' in params  # what the nodes were started with
    assert report['modes']['async']['command_rate_hz'] > 0.0, report['modes']
