"""
One orchestration of the planner and executor workers: warm-up, priorities, lifecycle.

The ROS nodes (one orchestrator shared by both nodes in `bringup`, one each when a node runs
alone) and `ahawam eval-sim` (real-time closed loop) drive the runtime through this class, so
both run the same threads the same way:

- warm-up: the policy's `warm_up()` (a compiled path built and run once), if it has one, runs
  once per policy object before the first worker starts, i.e. before the first command; its
  duration is logged and reported;
- each core's inference runs in its own `WakeableWorker` thread, with its torch intra-op
  thread count set inside the thread (a main-thread `torch.set_num_threads` does not reach it);
- priorities: the planner's thread is niced down (+10 by default: always permitted), the
  executor's stays at 0, so the executor's updates win the cores whenever both want one. A
  negative executor nice may be asked for; it needs CAP_SYS_NICE or root, and a refusal is
  logged once and reported (`report()`, and each core's stats as 'worker_nice' /
  'worker_nice_refused'). 0 is the default because the command timer (rclpy's threads, or
  eval-sim's main loop) runs at 0 and must not wait behind the executor's inference. Nice is
  weighed against every thread of the machine: at +10 the planner gets about a ninth of a
  nice-0 thread's share of a contended core, so other busy processes slow it too (the context
  age limit then shows it); `planner_nice` is the knob.

- the GIL: eager torch drops and re-takes the GIL at every op; with the default 5 ms switch
  interval each hand-over to the host's own Python (the command timer, the simulator loop) can
  wait that long behind the workers, several times per control step. Starting a worker
  shortens the process's interval to `gil_switch_interval` (never lengthens it) with
  `shorten_gil_switch_interval`, which `ros.spin.responsive_gil` calls for node processes.
  Why 0.5 ms: one 50 Hz command needs the GIL several times (rcl wait, the executor's Python
  bookkeeping, the callback, publish); on 2 cores the tiny-preset graph measured 30-38 Hz
  instead of 50 with 5 ms, and 48-50 Hz with 0.5 ms (`ahawam bench`).

The clock stays with the cores (each core takes its own, injected at construction).
"""

from dataclasses import dataclass
import logging
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional
import weakref

from ahawam_ros.runtime.executor_core import ExecutorCore
from ahawam_ros.runtime.planner_core import PlannerCore

_LOG = logging.getLogger(__name__)
NICE_RANGE = (-20, 19)
GIL_SWITCH_INTERVAL_S = 0.0005
_WARMED: 'weakref.WeakKeyDictionary[Any, float]' = weakref.WeakKeyDictionary()  # policy -> s
_WARM_LOCK = threading.Lock()


def shorten_gil_switch_interval(seconds: float = GIL_SWITCH_INTERVAL_S) -> None:
    """Shorten this process's GIL switch interval to `seconds` (never lengthen it)."""
    sys.setswitchinterval(min(sys.getswitchinterval(), seconds))


@dataclass(frozen=True)
class OrchestratorConfig:
    """
    Worker settings; validated on construction.

    Attributes
    ----------
    planner_nice, executor_nice : int
        Nice value of each worker thread, in [-20, 19] (larger: lower priority).
    planner_threads, executor_threads : int
        torch intra-op threads of each worker (0: leave torch's setting).
    gil_switch_interval : float
        Longest GIL switch interval (s) of the process while workers run.

    """

    planner_nice: int = 10
    executor_nice: int = 0
    planner_threads: int = 1
    executor_threads: int = 1
    gil_switch_interval: float = GIL_SWITCH_INTERVAL_S

    def __post_init__(self):
        for name in ('planner_nice', 'executor_nice'):
            value = getattr(self, name)
            if not NICE_RANGE[0] <= value <= NICE_RANGE[1]:
                raise ValueError(f'{name} must be in [{NICE_RANGE[0]}, {NICE_RANGE[1]}], '
                                 f'got {value}')
        for name in ('planner_threads', 'executor_threads'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        if not 0.0 < self.gil_switch_interval <= 0.1:
            raise ValueError(f'gil_switch_interval must be in (0, 0.1] s, got '
                             f'{self.gil_switch_interval}')


def warm_up(policy: Any) -> float:
    """
    Run the policy's warm-up once per policy object; return its seconds (0.0 without one).

    A second call for the same policy (the second node of a process) returns the first
    duration without running it again.
    """
    with _WARM_LOCK:  # the two nodes of bringup share one policy
        try:
            return _WARMED[policy]
        except (KeyError, TypeError):  # TypeError: not weakly referenceable, warm it each time
            pass
        method = getattr(policy, 'warm_up', None)
        seconds = 0.0
        if callable(method):
            started = time.perf_counter()
            method()
            seconds = time.perf_counter() - started
            _LOG.info('policy warm-up took %.2f s', seconds)
        try:
            _WARMED[policy] = seconds
        except TypeError:
            pass
        return seconds


def _torch_threads(count: int) -> Callable[[], None]:
    def apply() -> None:
        if count > 0:
            import torch
            torch.set_num_threads(count)
    return apply


class RuntimeOrchestrator:
    """
    Owns the workers of a `PlannerCore` and an `ExecutorCore` (either may be absent).

    Parameters
    ----------
    config : OrchestratorConfig
        Priorities and torch threads of the workers.
    planner : PlannerCore, optional
        The planner (absent: executor only, as in eval-sim's sync and planner-off modes).
    executor : ExecutorCore, optional
        The executor.

    """

    def __init__(self, config: OrchestratorConfig = OrchestratorConfig(),
                 planner: Optional[PlannerCore] = None,
                 executor: Optional[ExecutorCore] = None):
        self.config = config
        self.planner = planner
        self.executor = executor
        self.warm_up_s = 0.0

    def warm_up(self) -> float:
        """Warm the policies of the attached cores up (once each); return the seconds spent."""
        cores = [core for core in (self.planner, self.executor) if core is not None]
        self.warm_up_s = max([warm_up(core.policy) for core in cores], default=0.0)
        return self.warm_up_s

    def _prepare(self) -> None:
        self.warm_up()
        shorten_gil_switch_interval(self.config.gil_switch_interval)

    def start_planner(self, core: Optional[PlannerCore] = None,
                      step: Optional[Callable[[], object]] = None,
                      threads: Optional[int] = None) -> None:
        """
        Attach `core` (default: the planner given at construction), warm up, start its worker.

        Parameters
        ----------
        core : PlannerCore, optional
            The planner to run.
        step : Callable[[], object], optional
            What the worker runs per wake-up (`core.refresh` by default; a node refreshes and
            publishes).
        threads : int, optional
            torch threads of the worker (default: `config.planner_threads`).

        """
        self.planner = core or self.planner
        if self.planner is None:
            raise ValueError('no planner core to start')
        self._prepare()
        count = self.config.planner_threads if threads is None else threads
        self.planner.start_worker(step, _torch_threads(count), self.config.planner_nice)

    def start_executor(self, core: Optional[ExecutorCore] = None,
                       step: Optional[Callable[[], object]] = None,
                       threads: Optional[int] = None) -> None:
        """Attach `core`, warm up, start its chunk worker (as `start_planner`)."""
        self.executor = core or self.executor
        if self.executor is None:
            raise ValueError('no executor core to start')
        self._prepare()
        count = self.config.executor_threads if threads is None else threads
        self.executor.start_worker(step, _torch_threads(count), self.config.executor_nice)

    def start(self, planner_step: Optional[Callable[[], object]] = None,
              executor_step: Optional[Callable[[], object]] = None) -> None:
        """Warm up, then start every attached core's worker (executor first)."""
        if self.executor is not None:
            self.start_executor(step=executor_step)
        if self.planner is not None:
            self.start_planner(step=planner_step)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the workers after their current step; True if all ended within `timeout`."""
        ended = True
        for core in (self.executor, self.planner):
            if core is not None:
                ended = core.stop_worker(timeout) and ended
        return ended

    def wait_started(self, timeout: float = 5.0) -> bool:
        """Wait until every started worker applied its priority and thread count."""
        return all(core.worker.wait_started(timeout) for core in (self.executor, self.planner)
                   if core is not None and core.worker.running)

    def report(self) -> Dict[str, Any]:
        """Return warm-up seconds and each worker's priority (asked, applied, refusal)."""
        out: Dict[str, Any] = {'warm_up_s': self.warm_up_s}
        for role, core in (('planner', self.planner), ('executor', self.executor)):
            priority = None if core is None else core.worker.priority
            if priority is not None:
                out[f'{role}_nice'] = {'requested': priority.requested,
                                       'applied': priority.applied, 'refused': priority.error}
        return out
