"""
What both timings of closed-loop evaluation share: settings, episode result, step bookkeeping.

Shapes: A action dim.

`lockstep` replays the runtime in lock-step on a simulated clock (`--timing replayed`);
`realtime` runs its worker threads in real time (`--timing realtime`, the default).
"""

from dataclasses import dataclass, field
import math
from typing import Any, Callable, Dict, List, Optional, Tuple

from ahawam_ros.eval.closed_loop.grasp import FirstGrasp
from ahawam_ros.eval.closed_loop.modes import ASYNC, MODES
from ahawam_ros.robot import CAMERA_EVERY
from ahawam_ros.runtime.chunk_scheduler import ACCEPTED
from ahawam_ros.runtime.settings import RuntimeSettings
import numpy as np

REPLAYED, REALTIME = 'replayed', 'realtime'
TIMINGS = (REALTIME, REPLAYED)


@dataclass(frozen=True)
class ClosedLoopConfig:
    """
    A closed-loop evaluation's settings; validated on construction.

    Attributes
    ----------
    mode : str
        One of MODES.
    settings : RuntimeSettings
        The runtime's knobs (`ahawam eval-sim` reads them from the system's parameter file,
        as the nodes do).
    max_steps : int
        Control steps of an episode at most.
    settle_steps : int
        Steps run after the first success before the episode ends (the demo's 0.5 s);
        negative: never end early.
    camera_every : int
        The cameras are rendered every n-th control step (the simulator node's
        `camera_every`); the policy sees the newest frame with its own stamp.

    """

    mode: str = ASYNC
    settings: RuntimeSettings = field(default_factory=RuntimeSettings)
    max_steps: int = 400
    settle_steps: int = 25
    camera_every: int = CAMERA_EVERY

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f'mode must be one of {list(MODES)}, got {self.mode!r}')
        if not isinstance(self.settings, RuntimeSettings):
            raise ValueError(f'settings must be RuntimeSettings, got {self.settings!r}')
        if not isinstance(self.camera_every, int) or self.camera_every < 1:
            raise ValueError(f'camera_every must be an int >= 1, got {self.camera_every!r}')
        if self.max_steps < 1:
            raise ValueError(f'max_steps must be >= 1, got {self.max_steps}')


@dataclass
class EpisodeResult:
    """
    What one closed-loop episode did.

    Attributes
    ----------
    seed, steps, success, max_reward :
        The episode seed, control steps run, any-step success, best staged reward.
    executed : int
        Commands that executed an action (not holds).
    holds : dict
        Hold reason -> count.
    first_action_step : int
        First step whose command executed an action (-1 if none).
    plan_events, chunk_events : list of (int, int)
        (start step, ready step) of every planner refresh / executor update.
    chunk_status : dict
        Status of each update at its arrival -> count ('accepted', 'stale', ...).
    plan_latencies, update_latencies, context_ages : list of float
        Seconds: measured refresh and update latencies, context age of executed commands.
    stale_actions, stale_chunks : int
        Actions of the arriving chunks that were already in the past, and the chunks counted.
    timing : str
        'replayed' (lock-step, simulated clock) or 'realtime' (workers, wall clock).
    real_time_factor : float
        Simulated seconds per wall second (realtime; NaN when replayed).
    late_steps : int
        Control steps that started after their deadline (realtime).
    grasp : FirstGrasp
        Each arm's first grasp attempt and the fingertip-to-cube distance then (`eval.grasp`).

    """

    seed: int
    steps: int = 0
    success: bool = False
    max_reward: float = 0.0
    executed: int = 0
    holds: Dict[str, int] = field(default_factory=dict)
    first_action_step: int = -1
    plan_events: List[Tuple[int, int]] = field(default_factory=list)
    chunk_events: List[Tuple[int, int]] = field(default_factory=list)
    chunk_status: Dict[str, int] = field(default_factory=dict)
    plan_latencies: List[float] = field(default_factory=list)
    update_latencies: List[float] = field(default_factory=list)
    context_ages: List[float] = field(default_factory=list)
    stale_actions: int = 0
    stale_chunks: int = 0
    timing: str = REPLAYED
    real_time_factor: float = math.nan
    late_steps: int = 0
    grasp: FirstGrasp = field(default_factory=FirstGrasp)

    def summary(self, period: float) -> Dict[str, Any]:
        """Return JSON-ready per-episode figures (rates per simulated second)."""
        seconds = max(self.steps, 1) * period
        return {'seed': self.seed, 'success': self.success, 'max_reward': self.max_reward,
                'steps': self.steps, 'command_rate_hz': self.executed / seconds,
                'chunk_rate_hz': self.chunk_status.get(ACCEPTED, 0) / seconds,
                'hold_fraction': 1.0 - self.executed / max(self.steps, 1),
                'holds': dict(self.holds), 'chunk_status': dict(self.chunk_status),
                'first_action_step': self.first_action_step,
                'planner_refreshes': len(self.plan_latencies),
                'executor_updates': len(self.update_latencies),
                'stale_actions_total': self.stale_actions, 'stale_chunks': self.stale_chunks,
                'stale_actions_per_chunk': (self.stale_actions / self.stale_chunks
                                            if self.stale_chunks else math.nan),
                'timing': self.timing, 'real_time_factor': self.real_time_factor,
                'late_steps': self.late_steps, **self.grasp.summary()}


class CameraFrames:
    """
    The newest rendered views and their stamp, for a camera slower than the control rate.

    The simulator renders on the steps `renders` picks (every `camera_every`-th, or every
    step while an episode is recorded); between them the policy keeps the last frame, stamped
    with the time it was taken, as the nodes see a 25 Hz camera.
    """

    def __init__(self, views: Callable[[Any], np.ndarray], camera_every: int,
                 recording: bool = False):
        self.views, self.camera_every, self.recording = views, camera_every, recording
        self.images: Optional[np.ndarray] = None
        self.stamp = math.nan

    def renders(self, index: int) -> bool:
        """Whether the observation of control step `index` is rendered."""
        return self.recording or index % self.camera_every == 0

    def take(self, observation: Any, now: float, rendered: bool = True) -> None:
        """Keep the views of an observation rendered at `now`; keep the last frame if not."""
        if rendered:
            self.images, self.stamp = self.views(observation), now


def apply_command(env: Any, observation: Any, command, index: int, result: EpisodeResult,
                  recorder: Optional[Any], render: bool = True) -> Any:
    """
    Count `command`, record it, step the simulator with it; return the next observation.

    With `render` False the simulator skips its cameras for the next observation.
    """
    positions = observation.qpos if command.positions is None else command.positions
    if recorder is not None:
        recorder.add(observation, positions)
    result.grasp.update(index, positions, observation, env)  # the state the command meets
    _count(result, command, index)
    observation = env.step(positions) if render else env.step(positions, render=False)
    result.steps = index + 1
    result.max_reward = max(result.max_reward, float(observation.reward))
    return observation


def settle_count(result: EpisodeResult, observation: Any, settle: Optional[int]):
    """Return the steps since the first success (None before it); set `result.success`."""
    if observation.success and settle is None:
        result.success = True
        return 0
    return None if settle is None else settle + 1


def _count(result: EpisodeResult, command, index: int) -> None:
    if command.is_hold:
        result.holds[command.reason] = result.holds.get(command.reason, 0) + 1
        return
    result.executed += 1
    result.context_ages.append(command.context_age)
    if result.first_action_step < 0:
        result.first_action_step = index
