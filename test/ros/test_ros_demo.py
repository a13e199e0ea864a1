"""End to end: `ahawam demo` runs the simulator and both nodes with the packaged checkpoint."""

import json
import os
import subprocess
import sys

from ahawam_ros.runtime.loading import DEFAULT_CHECKPOINT
import pytest
from rosbags.rosbag2 import Reader

pytestmark = [pytest.mark.ros, pytest.mark.sim, pytest.mark.slow]


def test_demo_runs_an_episode_and_writes_bag_video_and_summary(tmp_path):
    assert DEFAULT_CHECKPOINT.is_dir(), f'the packaged checkpoint is missing: {DEFAULT_CHECKPOINT}'
    out = tmp_path / 'demo'
    result = subprocess.run(
        [sys.executable, '-m', 'ahawam_ros.cli', 'demo', '--episodes', '1',
         '--episode-seconds', '4', '--out', str(out)],
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
    with Reader(out / 'episode_000') as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    for topic in ('/joint_states', '/joint_trajectory', '/cameras/top/image_raw',
                  '/world_context', '/action_chunk'):
        assert counts.get(topic, 0) > 0, counts
