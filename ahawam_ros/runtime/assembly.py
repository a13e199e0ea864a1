"""
The one assembly of the runtime: planner core + executor core + context delivery + workers.

Every host builds the runtime here: the ROS nodes (each node its core, one orchestrator per
process), `ahawam eval-sim` (real time and lock-step), `ahawam eval-bag` and the bench. What
differs between hosts is injected, never patched into a built core:

- the clock (ROS node time, the simulation's time, a bag's log time) and the wall clock that
  times inference;
- the stamp rule of the inputs (`zero_stamp_is_unset`: ROS headers, where 0 means unset);
- how a context reaches the executor: one shared `ContextSlot` (in-process hosts), or each
  core its own slot, delivered by the host (the nodes' intra-process topic; lock-step and
  bag replay, which hand it over when its latency has passed);
- whether the planner paces itself (`paced`: a host without a refresh timer).

The settings come from `RuntimeSettings` alone; the joint limits from the robot.
"""

from dataclasses import dataclass
import time
from typing import Callable, Optional

from ahawam_ros import robot
from ahawam_ros.runtime.context_slot import ContextRegistry, ContextSlot
from ahawam_ros.runtime.executor_core import ExecutorCore
from ahawam_ros.runtime.orchestrator import OrchestratorConfig, RuntimeOrchestrator
from ahawam_ros.runtime.planner_core import PlannerCore
from ahawam_ros.runtime.policy_api import ChunkPolicy
from ahawam_ros.runtime.settings import (executor_core_config, ExecutorSettings, JointLimits,
                                         planner_core_config, PlannerSettings, RuntimeSettings)

Clock = Callable[[], float]


def limits_for(action_dim: int) -> JointLimits:
    """Return the bimanual arms' limits for their 14 joints, else +-pi per joint."""
    return JointLimits() if action_dim == robot.ACTION_DIM else JointLimits.uniform(action_dim)


@dataclass(frozen=True)
class HostRules:
    """
    What a host decides about its inputs and clocks.

    Attributes
    ----------
    clock : Callable[[], float]
        Seconds of the host's time: every stamp, age and command time.
    wall_clock : Callable[[], float]
        Real seconds that time inference (a bag replay spends simulated latency instead).
    zero_stamp_is_unset : bool
        ROS semantics: a stamp of 0 is an unset header, a clock at 0 has not started.
    private_registry : bool
        Give the slots a registry of their own (a replay must not touch the process-wide
        handles the nodes resolve).

    """

    clock: Clock = time.monotonic
    wall_clock: Clock = time.perf_counter
    zero_stamp_is_unset: bool = False
    private_registry: bool = False

    @classmethod
    def for_ros(cls, clock: Clock) -> 'HostRules':
        """Return the rules of a ROS node: its clock, and a stamp of 0 is an unset header."""
        return cls(clock, zero_stamp_is_unset=True)

    def slot(self) -> ContextSlot:
        """Return a new context slot under this host's registry rule."""
        return ContextSlot(ContextRegistry()) if self.private_registry else ContextSlot()


def build_planner(policy: ChunkPolicy, settings: PlannerSettings, host: HostRules,
                  slot: Optional[ContextSlot] = None, paced: bool = True,
                  episode_start: Optional[float] = None) -> PlannerCore:
    """Return a `PlannerCore` publishing into `slot` (default: a new one)."""
    return PlannerCore(policy, slot or host.slot(),
                       planner_core_config(settings, host.zero_stamp_is_unset, paced),
                       host.clock, episode_start, host.wall_clock)


def build_executor(policy: ChunkPolicy, settings: ExecutorSettings, host: HostRules,
                   slot: Optional[ContextSlot] = None, limits: Optional[JointLimits] = None,
                   episode_start: Optional[float] = None) -> ExecutorCore:
    """
    Return an `ExecutorCore` reading contexts from `slot` (default: a new one).

    `limits` default to `limits_for(policy.action_dim)`. A non-zero
    `settings.num_inference_steps` sets the policy's Euler steps (where it has them).
    """
    if settings.num_inference_steps and hasattr(policy, 'num_steps'):
        policy.num_steps = settings.num_inference_steps
    limits = limits or limits_for(policy.action_dim)
    return ExecutorCore(policy, slot or host.slot(),
                        executor_core_config(settings, limits, host.zero_stamp_is_unset),
                        host.clock, episode_start, host.wall_clock)


@dataclass
class Runtime:
    """
    The assembled runtime of one host: its cores and the orchestration of their workers.

    Attributes
    ----------
    planner : PlannerCore or None
        Absent when the host runs the executor alone (eval-sim's sync and planner-off modes).
    executor : ExecutorCore
        The executor.
    orchestrator : RuntimeOrchestrator
        Warm-up, priorities and worker threads (unused by single-threaded hosts).

    """

    planner: Optional[PlannerCore]
    executor: ExecutorCore
    orchestrator: RuntimeOrchestrator


def build_runtime(policy: ChunkPolicy, settings: RuntimeSettings, host: HostRules,
                  with_planner: bool = True, shared_slot: bool = True,
                  executor_policy: Optional[ChunkPolicy] = None,
                  orchestration: OrchestratorConfig = OrchestratorConfig(),
                  episode_start: Optional[float] = None) -> Runtime:
    """
    Build both cores of an in-process host and their orchestrator.

    Parameters
    ----------
    policy : ChunkPolicy
        The policy (one set of weights for both cores, as in bringup).
    settings : RuntimeSettings
        Every knob.
    host : HostRules
        Clocks and stamp rules of the host.
    with_planner : bool
        Build the planner (False: the host publishes the executor's contexts itself).
    shared_slot : bool
        The planner publishes straight into the executor's slot; False gives each its own,
        and the host delivers (after a simulated latency).
    executor_policy : ChunkPolicy, optional
        What the executor calls instead of `policy` (eval-sim's synchronous baseline).
    orchestration : OrchestratorConfig
        Worker priorities and torch threads.
    episode_start : float, optional
        Time of control step 0 (default: the clock at construction).

    """
    executor = build_executor(executor_policy or policy, settings.executor, host,
                              episode_start=episode_start)
    planner = None
    if with_planner:
        planner = build_planner(policy, settings.planner, host,
                                executor.slot if shared_slot else None,
                                episode_start=episode_start)
    return Runtime(planner, executor, RuntimeOrchestrator(orchestration, planner, executor))
