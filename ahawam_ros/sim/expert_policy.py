"""
The scripted expert as a policy: privileged, for measuring the runtime (evaluation only).

`ExpertPolicy` has the runtime's ChunkPolicy interface (reset / plan / predict_chunk,
chunk_len, action_dim, control_period) but ignores the images: it knows the episode. Its
privileged channel is `begin_episode(seed)`, called by whoever resets the simulator (the
`PrivilegedSim` wrapper in `ahawam eval-sim`, the demo's supervisor before it asks the
simulator node for a reset): for that seed it plans the scripted expert's keyframes, rolls
them out in the end-effector scene and keeps the joint commands, exactly as the
demonstrations were made (`ScriptedExpert.joint_commands`). `predict_chunk(..., step)` then
returns the commands of steps step .. step + K - 1. A learned policy never gets this channel.

With a near-zero inference latency, an episode run through the runtime with this policy
measures what the runtime itself costs: holds, actions that arrive too late, clock drift.

Shapes: V cameras, H x W pixels, A = 14 joints, K chunk length, T episode steps.
"""

from dataclasses import dataclass, replace
import threading
from typing import Any, Dict, Optional

from ahawam_ros.robot import ACTION_DIM
from ahawam_ros.sim.aloha_env import CONTROL_PERIOD, SimConfig
from ahawam_ros.sim.scripted_expert import ScriptedExpert
from ahawam_ros.sim.tasks import TASKS
import numpy as np

EXPERT = 'expert'


@dataclass(frozen=True)
class ExpertConfig:
    """
    Shape of the expert policy; the defaults match the packaged checkpoint's interface.

    Attributes
    ----------
    task : str
        The simulated task ('transfer_cube' or 'insertion').
    chunk_len : int
        K, actions per chunk.
    image_height, image_width : int
        The (H, W) it declares as its input (frames are not used; this size avoids resizing
        the simulator's 120 x 160 frames).
    episode_len : int
        T, steps planned; later steps repeat the last command.

    """

    task: str = 'transfer_cube'
    chunk_len: int = 16
    image_height: int = 120
    image_width: int = 160
    episode_len: int = 400

    def __post_init__(self) -> None:
        """Validate every field; a bad one raises ValueError naming it."""
        if self.task not in TASKS:
            raise ValueError(f'ExpertConfig.task: unknown task {self.task!r}; '
                             f'known: {sorted(TASKS)}')
        for name in ('chunk_len', 'image_height', 'image_width', 'episode_len'):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'ExpertConfig.{name}: {value!r} is not a positive int')


@dataclass(frozen=True)
class ExpertContext:
    """The expert's planner context: the episode seed it plans for and the planner step."""

    seed: Optional[int]
    step: int


class ExpertPolicy:
    """
    Replays the scripted expert's joint commands of the current episode, chunk by chunk.

    Parameters
    ----------
    config : ExpertConfig
        Task and interface shape.

    """

    def __init__(self, config: ExpertConfig = ExpertConfig()) -> None:
        """Build the scripted expert's scenes (physics only, no renderer)."""
        self.config = config
        self.chunk_len = config.chunk_len
        self.action_dim = ACTION_DIM
        self.control_period = CONTROL_PERIOD
        self.image_size = (config.image_height, config.image_width)
        self._expert = ScriptedExpert(SimConfig(task=config.task, cameras=(),
                                                episode_len=config.episode_len))
        self._lock = threading.Lock()  # plan and predict_chunk run in two threads
        self._plans: Dict[int, np.ndarray] = {}
        self.seed: Optional[int] = None
        self._commands: Optional[np.ndarray] = None

    def begin_episode(self, seed: int) -> None:
        """
        Privileged: the simulator is about to be (or was just) reset with `seed`.

        Plans the episode's joint commands (about 0.3 s, once per seed) before returning.
        """
        seed = int(seed)
        with self._lock:
            if seed not in self._plans:
                commands = self._expert.joint_commands(seed)  # (T, A) float64
                self._plans = {seed: commands.astype(np.float32)}  # keep only the newest
            self.seed, self._commands = seed, self._plans[seed]

    def reset(self) -> None:
        """Start of an episode: nothing to clear (the plan comes with `begin_episode`)."""

    def plan(self, images: np.ndarray, step: int) -> ExpertContext:
        """Return the context of `step`; the images (V, H, W, 3) are not looked at."""
        return ExpertContext(seed=self.seed, step=int(step))

    def predict_chunk(self, images: np.ndarray, proprio: np.ndarray, context: Any,
                      step: int) -> np.ndarray:
        """
        Return the expert's float32 (K, A) joint targets of steps step .. step + K - 1.

        Raises RuntimeError when no episode was begun (the privileged seed is missing).
        """
        commands = self._commands
        if commands is None:
            raise RuntimeError('the expert policy knows no episode: its privileged '
                               'begin_episode(seed) was never called')
        if step < 0:
            raise ValueError(f'step must be >= 0, got {step}')
        index = np.minimum(np.arange(step, step + self.chunk_len), len(commands) - 1)  # (K,)
        return commands[index].copy()

    def describe_context(self, context: ExpertContext) -> Dict[str, Any]:
        """Context figures for the WorldContext descriptor (no tensors: empty memory)."""
        return {'memory_fill': 0, 'memory_capacity': 0}

    def close(self) -> None:
        """Release the scripted expert's simulators."""
        self._expert.close()


class PrivilegedSim:
    """
    A simulator whose `reset(seed)` first hands the seed to the expert (evaluation only).

    Everything else is the wrapped simulator's (`step`, `config`, `model`, ...).

    Parameters
    ----------
    sim : AlohaSim
        The simulator the evaluation steps.
    expert : ExpertPolicy
        The policy told each episode's seed.

    """

    def __init__(self, sim: Any, expert: ExpertPolicy) -> None:
        """Wrap `sim`."""
        self.sim, self.expert = sim, expert

    def reset(self, seed: int) -> Any:
        """Tell the expert the seed, then reset the simulator with it."""
        self.expert.begin_episode(seed)
        return self.sim.reset(seed)

    def __getattr__(self, name: str) -> Any:
        """Delegate to the wrapped simulator."""
        return getattr(self.sim, name)


def expert_for(task: str, **changes: Any) -> ExpertPolicy:
    """Return an ExpertPolicy for `task` (other ExpertConfig fields from `changes`)."""
    return ExpertPolicy(replace(ExpertConfig(), task=task, **changes))
