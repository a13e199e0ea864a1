"""
ROS-free rows of `ahawam bench`: update rates, a long planner run, training throughput.

Shapes: V views, H x W pixels.

The timings reuse the model benchmark (`bench_model`: its stages on fixed inputs and its
interleaved timer); training uses the trainer's own step (`losses.training_step`).
"""

import math
import os
from typing import Any, Dict, List

from ahawam_ros.bench.model import (ideal_ratio, PAPER_SPEEDUP, PlannerBeside, stage_macs, Stages,
                                    time_round_robin)
from ahawam_ros.data.synthetic import synthetic_training_episode
from ahawam_ros.eval.closed_loop.metrics import latency_summary
from ahawam_ros.eval.closed_loop.policy import policy_views
from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.losses import trainable_parameters, training_step
from ahawam_ros.model.policy import AhaWamPolicy
from ahawam_ros.model.presets import get_preset
from ahawam_ros.model.testing import synthetic_batch
from ahawam_ros.runtime.assembly import build_planner, HostRules
from ahawam_ros.runtime.clock import ManualClock
from ahawam_ros.runtime.planner_core import PUBLISHED
from ahawam_ros.runtime.settings import PlannerSettings
from ahawam_ros.train.executor_stage import build_bank, executor_parameters, executor_step
import numpy as np
import torch

STATUS_FILE = '/proc/self/status'


def proc_kib(path: str, key: str) -> float:
    """Return the kB figure of `key:` in a /proc file (status, meminfo); NaN if unreadable."""
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(f'{key}:'):
                    return float(line.split()[1])
    except OSError:
        pass
    return math.nan


def resident_mb() -> float:
    """Return this process's resident memory (VmRSS) in MiB; NaN where /proc is missing."""
    return proc_kib(STATUS_FILE, 'VmRSS') / 1024.0  # kB -> MiB


def update_rates(policy: AhaWamPolicy, repeats: int, num_steps=(10, 1)) -> Dict[str, Any]:
    """
    Time an executor update (async) against a synchronous update on the same weights.

    The policy runs its own backend (compiled unless disabled); a compiled policy is compared
    with an eager twin over the same weights. Each backend's executor update is also timed
    while its planner refreshes in another thread, as the nodes run them.

    Returns
    -------
    dict
        At the policy's N (10 by default): median milliseconds and rates (Hz) of both, the
        measured sync/async ratio, the compute-bound ideal ratio from the stages' MACs and the
        paper's ratio; the update beside the planner ('beside_planner_ms'); the backend.
        Under 'by_steps': the same per N of `num_steps` and per backend ('eager' and, when
        the policy compiles, 'compiled').

    """
    policies = {policy.backend if policy.backend == 'eager' else 'compiled': policy}
    if policy.backend != 'eager':
        policies['eager'] = AhaWamPolicy(policy.model, compiled=False)
    own_steps = policy.num_steps
    by_steps: Dict[str, Dict[str, Dict[str, float]]] = {}
    for steps in num_steps:
        for name, member in policies.items():
            member.num_steps = steps
            member.warm_up(sync=True)  # graphs are built before any timing
            by_steps.setdefault(str(steps), {})[name] = _backend_rates(member, repeats)
    policy.num_steps = own_steps
    own = by_steps.get(str(own_steps), {}).get(next(iter(policies)))
    if own is None:
        own = _backend_rates(policy, repeats)
    return {**own, 'backend': policy.backend, 'by_steps': by_steps}


def _backend_rates(policy: AhaWamPolicy, repeats: int) -> Dict[str, float]:
    """Return the rows of `update_rates` for one policy at its current N (left reset)."""
    stages = Stages(policy)  # fills the rolling memory: a refresh at full cost
    with torch.inference_mode():
        timing = time_round_robin({'async': stages.executor_update,
                                   'sync': stages.sync_update}, repeats)
        with PlannerBeside(stages, torch.get_num_threads()) as planner:
            beside = time_round_robin({'async': stages.executor_update}, repeats)['async']
        macs = stage_macs(stages)
    policy.reset()
    fast, slow = timing['async']['median'], timing['sync']['median']
    return {'num_steps': policy.num_steps, 'async_ms': fast, 'sync_ms': slow,
            'async_p95_ms': timing['async']['p95'], 'sync_p95_ms': timing['sync']['p95'],
            'async_hz': 1e3 / fast, 'sync_hz': 1e3 / slow, 'ratio': slow / fast,
            'beside_planner_ms': beside['median'], 'beside_planner_p95_ms': beside['p95'],
            'beside_refreshes': planner.refreshes,
            'ideal_ratio': ideal_ratio(macs, policy.num_steps),
            'paper_ratio': PAPER_SPEEDUP.get(policy.num_steps, math.nan)}


def planner_run(policy: AhaWamPolicy, settings: PlannerSettings, refreshes: int = 300,
                samples: int = 30) -> Dict[str, Any]:
    """
    Refresh the planner `refreshes` times in one episode; follow latency and resident memory.

    The `PlannerCore` runs on a simulated clock at `settings.refresh_rate_hz` with distinct
    frames, so the rolling memory fills and then rolls, and the context registry keeps
    evicting, as over a long episode. Memory should stay flat once the memory is full.

    Returns
    -------
    dict
        Latency percentiles (ms) of the first and the last tenth of the refreshes, resident
        memory (MiB) after the memory filled and at the end, its growth, and the memory fill.

    """
    views = policy_views(policy)
    height, width = policy.image_size
    frames = np.random.default_rng(0).integers(0, 256, (8, views, height, width, 3),
                                               dtype=np.uint8)  # (8, V, H, W, 3)
    clock = ManualClock()
    core = build_planner(policy, settings, HostRules(clock), paced=False, episode_start=0.0)
    core.reset(episode_start=0.0)
    latencies: List[float] = []
    memory: List[List[float]] = []
    every = max(1, refreshes // samples)
    for index in range(refreshes):
        clock.set_time(index / settings.refresh_rate_hz)
        core.update_images(frames[index % len(frames)], clock())
        outcome = core.refresh()
        if outcome.status != PUBLISHED:
            raise RuntimeError(f'refresh {index} was not published: {outcome.status}')
        latencies.append(outcome.latency)
        if index % every == 0 or index == refreshes - 1:
            memory.append([index + 1, resident_mb()])
    fill = policy.memory_size
    core.reset()
    tenth = max(1, refreshes // 10)
    filled = next((mb for count, mb in memory if count > fill), math.nan)
    return {'refreshes': refreshes, 'first_ms': latency_summary(latencies[:tenth]),
            'last_ms': latency_summary(latencies[-tenth:]),
            'rss_filled_mb': filled, 'rss_end_mb': memory[-1][1],
            'rss_max_mb': max(mb for _, mb in memory),
            'rss_growth_mb': memory[-1][1] - filled, 'memory_fill': fill,
            'rss_trace_mb': memory}


def training_throughput(preset: str, batch_size: int = 8, repeats: int = 3,
                        threads: int = 0) -> Dict[str, float]:
    """
    Time the trainer's step (forward, backward, clipping, AdamW) of a fresh `preset` model.

    Parameters
    ----------
    preset : str
        Model preset.
    batch_size, repeats : int
        Samples per step; timed steps after one warm-up step.
    threads : int
        torch threads (0: every core).

    Returns
    -------
    dict
        Median step time (ms) and samples per second.

    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or os.cpu_count() or 1)
    try:
        torch.manual_seed(0)
        model = AhaWamModel(get_preset(preset))
        batch = synthetic_batch(model.config, batch_size, seed=1, length=200)
        optimizer = torch.optim.AdamW(trainable_parameters(model), lr=1e-4)
        timing = time_round_robin({'train': lambda: training_step(model, optimizer, batch)},
                                  repeats, warmup=1)['train']
        stage3 = executor_stage_throughput(model, repeats=repeats)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
    return {'batch_size': batch_size, 'threads': used, 'step_ms': timing['median'],
            'samples_per_s': 1e3 * batch_size / timing['median'],
            'chunks_per_s': 1e3 * batch_size * model.config.executor.num_chunks
            / timing['median'], **stage3}


def executor_stage_throughput(model: AhaWamModel, batch_size: int = 64,
                              repeats: int = 3) -> Dict[str, float]:
    """
    Time a step of training stage 3 (the executor on banked contexts) of `model`.

    Returns the batch (chunks), the median step time (ms) and chunks per second under
    'executor_stage_*' keys. The losses run eagerly: training compiles them
    (`train/stage_losses.py`, about 1.6x faster on 2 cores after minutes of compiling), which
    would cost the bench more than the rest of its rows.
    """
    config = model.config
    episode = synthetic_training_episode(config, 2 * config.executor.chunk_len + 8, seed=2)
    banks = build_bank(model, [episode], [0], anchor_stride=4)
    params = executor_parameters(model)
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    rng, generator = np.random.default_rng(0), torch.Generator().manual_seed(0)
    timing = time_round_robin({'stage3': lambda: executor_step(
        model, banks, optimizer, params, batch_size, rng, generator)}, repeats, warmup=1)
    median = timing['stage3']['median']
    return {'executor_stage_batch': batch_size, 'executor_stage_step_ms': median,
            'executor_stage_chunks_per_s': 1e3 * batch_size / median}
