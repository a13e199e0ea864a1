"""The privileged expert policy: the scripted expert's commands behind the ChunkPolicy API."""

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip('gym_aloha', reason='the simulator (requirements/sim.txt) is not installed')

from ahawam_ros.eval.closed_loop import cli as sim_eval  # noqa: E402, I100
from ahawam_ros.eval.closed_loop.lockstep import ClosedLoopConfig, run_episode  # noqa: E402
from ahawam_ros.robot import FIRST_HELD_OUT_SEED  # noqa: E402
from ahawam_ros.runtime.loading import (CHECKPOINT_POLICY, EXPERT_POLICY,  # noqa: E402
                                        select_policy)
from ahawam_ros.runtime.policy_api import ChunkPolicy, FakePolicy  # noqa: E402
from ahawam_ros.sim.aloha_env import AlohaSim, SimConfig  # noqa: E402
from ahawam_ros.sim.expert_policy import (ExpertConfig, ExpertPolicy,  # noqa: E402
                                          PrivilegedSim)
from ahawam_ros.sim.scripted_expert import ScriptedExpert  # noqa: E402

pytestmark = pytest.mark.sim


@pytest.fixture(scope='module')
def expert():
    policy = ExpertPolicy(ExpertConfig(chunk_len=16))
    yield policy
    policy.close()


def test_chunks_are_the_scripted_experts_joint_commands(expert):
    assert isinstance(expert, ChunkPolicy)
    with ScriptedExpert(SimConfig(cameras=())) as scripted:
        commands = scripted.joint_commands(5)  # (T, A)
    expert.begin_episode(5)
    images = np.zeros((3, 120, 160, 3), np.uint8)
    context = expert.plan(images, 0)
    assert context.seed == 5
    chunk = expert.predict_chunk(images, commands[100].astype(np.float32), context, 100)
    assert chunk.shape == (16, 14) and chunk.dtype == np.float32
    np.testing.assert_allclose(chunk, commands[100:116], atol=1e-6)
    tail = expert.predict_chunk(images, commands[0].astype(np.float32), context, 395)
    np.testing.assert_allclose(tail[:5], commands[395:], atol=1e-6)
    np.testing.assert_allclose(tail[5:], np.repeat(commands[-1:], 11, axis=0), atol=1e-6)
    expert.begin_episode(6)  # another seed, another plan
    other = expert.predict_chunk(images, commands[0].astype(np.float32), context, 100)
    assert not np.allclose(other, chunk, atol=1e-3)


def test_without_the_privileged_seed_the_expert_refuses():
    policy = ExpertPolicy()
    try:
        with pytest.raises(RuntimeError, match='begin_episode'):
            policy.predict_chunk(np.zeros((1, 8, 8, 3), np.uint8), np.zeros(14, np.float32),
                                 None, 0)
    finally:
        policy.close()
    with pytest.raises(ValueError, match='chunk_len'):
        ExpertConfig(chunk_len=0)


def test_expert_succeeds_through_the_closed_loop_runtime(expert):
    """The ROS-free lock-step runtime (planner + executor cores) runs the expert to success."""
    with AlohaSim(SimConfig(cameras=())) as sim:
        env = PrivilegedSim(sim, expert)  # reset(seed) tells the expert the seed first
        for seed in (0, 1):
            result = run_episode(expert, env, ClosedLoopConfig(), seed,
                                 views=lambda observation: np.zeros((1, 8, 8, 3), np.uint8))
            assert expert.seed == seed and sim.episode_seed == seed
            assert result.success, (seed, result.max_reward, result.holds)
            assert result.executed > 0.9 * result.steps, result.holds


class SpyPolicy(FakePolicy):
    """A checkpoint-like policy that would accept the privileged channel, and records it."""

    def __init__(self):
        super().__init__(chunk_len=8)
        self.told = []

    def begin_episode(self, seed):
        self.told.append(seed)


def test_policy_option_reaches_the_loader_and_checkpoint_stays_required():
    options = sim_eval.parse_options(['--policy', 'expert', '--episodes', '1'])
    assert options.policy == EXPERT_POLICY and options.checkpoint == ''
    policy = sim_eval.load_options_policy(options)
    try:
        assert isinstance(policy, ExpertPolicy) and policy.config.task == options.task
    finally:
        policy.close()
    default = sim_eval.parse_options(['--checkpoint', 'fake'])
    assert default.policy == CHECKPOINT_POLICY
    assert isinstance(sim_eval.load_options_policy(default), FakePolicy)
    with pytest.raises(SystemExit) as exit_info:
        sim_eval.parse_options(['--episodes', '1'])  # neither a checkpoint nor the expert
    assert exit_info.value.code == 2
    with pytest.raises(ValueError, match='only eval-sim and the demo'):
        select_policy(EXPERT_POLICY)
    with pytest.raises(ValueError, match='valid: checkpoint, expert'):
        select_policy('oracle')


def test_the_checkpoint_policy_is_never_told_the_seed(tmp_path):
    spy = SpyPolicy()
    options = sim_eval.EvalOptions(checkpoint='fake', episodes=1, steps=3, render_hw=(24, 32),
                                   out=str(tmp_path))
    report = sim_eval.evaluate_runtime(options, policy=spy)
    assert report['modes']['async']['episode_results'][0]['steps'] == 3
    assert spy.told == []  # the privileged channel is the expert's only
    expert = SpyPolicy()
    sim_eval.evaluate_runtime(replace(options, policy=EXPERT_POLICY), policy=expert)
    assert expert.told == [FIRST_HELD_OUT_SEED]  # the same run with --policy expert tells it
