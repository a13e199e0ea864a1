"""
Latency benchmark of the AHA-WAM model: asynchronous vs synchronous updates, eager vs compiled.

    python -m ahawam_ros.bench.model [--presets small tiny] [--repeats R] [--threads T]

For each preset: frame encode, planner refresh (full memory), OVCR, one action step (eager
stages), then one executor update (encode + OVCR + N Euler steps) and one synchronous baseline
update (encode + planner refresh + OVCR + N steps) through both backends, eager and compiled
(one TorchScript graph per call, `model/compiled.py`), as median and p95 milliseconds; the same
executor update while the planner refreshes in a second thread (as the nodes run them: the
eager ops then contend for the GIL, the compiled graphs do not); the measured sync/async ratio
at N = 10 and at Flash N = 1 beside the paper's and the compute-bound ideal ratio from the
multiply-accumulate counts of each stage (torch's FLOP counter: matmuls, convolutions,
attention). Then the parameter counts per module of the `paper` preset (meta device).
Figures only: nothing is asserted.
"""

import argparse
import os
import statistics
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence

from ahawam_ros.model.aha_wam import AhaWamModel, parameter_counts
from ahawam_ros.model.flow import T_SCALE
from ahawam_ros.model.losses import trainable_parameters, training_step
from ahawam_ros.model.policy import AhaWamPolicy
from ahawam_ros.model.presets import get_preset, PRESETS
from ahawam_ros.model.testing import perturb_zero_inits, synthetic_batch, synthetic_episode
import torch
from torch.utils.flop_counter import FlopCounterMode

PAPER_SPEEDUP = {10: 4.59, 1: 10.82}  # AHA-WAM and AHA-WAM-Flash over Fast-WAM
BACKENDS = ('eager', 'compiled')


def summarize(samples: List[float]) -> Dict[str, float]:
    """Median, p95 and minimum of millisecond samples."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {'median': statistics.median(ordered), 'p95': p95, 'min': ordered[0]}


def time_round_robin(fns: Dict[str, Callable[[], object]], repeats: int,
                     warmup: int = 3) -> Dict[str, Dict[str, float]]:
    """
    Time several callables in interleaved rounds (fair under a fluctuating machine load).

    Returns each callable's `summarize` of `repeats` runs, in milliseconds, and the median
    CPU time of the calling thread ('cpu_median': with one torch thread, the work itself,
    without the time slices other processes took on a loaded machine).
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: Dict[str, List[float]] = {name: [] for name in fns}
    cpu: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            fn()
            samples[name].append(1e3 * (time.perf_counter() - start))
            cpu[name].append(1e3 * (time.thread_time() - start_cpu))
    return {name: {**summarize(values), 'cpu_median': statistics.median(cpu[name])}
            for name, values in samples.items()}


def count_macs(fn: Callable[[], object]) -> float:
    """Multiply-accumulates of one call of `fn` (FLOPs / 2)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 2.0


class Stages:
    """The model's inference stages on fixed inputs, each a no-argument callable."""

    def __init__(self, policy: AhaWamPolicy):
        model, config = policy.model, policy.model.config
        self.policy, self.model = policy, model
        episode = synthetic_episode(config, config.planner.memory_size + 2)
        self.frame, self.proprio = episode['frames'][-1], episode['joint_positions'][-1]
        for step, frame in enumerate(episode['frames'][:-1]):  # fill the rolling memory
            self.context = policy.plan(frame, 8 * step)
        self.images = torch.from_numpy(self.frame)[None]
        with torch.inference_mode():
            self.latents = model.encode(self.images)
            self.memory = policy._memory.stacked()
            self.keys, self.values = self.context.keys[:, None], self.context.values[:, None]
            self.state = model.normalize_proprio(torch.from_numpy(self.proprio)[None])
            self.cache = model.prepare_executor(self.keys, self.values, policy._task_tokens,
                                                self.state)
            self.noise = torch.randn(1, config.executor.chunk_len, config.executor.action_dim)
            self.mods = model.executor.step_modulations(torch.full((1,), 0.5 * T_SCALE))
        self.steps = torch.tensor([8 * len(episode['frames'])])

    def encode(self):
        return self.model.encode(self.images)

    def refresh(self):
        return self.model.refresh(self.latents, self.steps, self.policy._task_tokens,
                                  self.memory)

    def ovcr(self):
        return self.model.edit_context(self.keys, self.values, self.latents)

    def prepare(self):
        return self.model.prepare_executor(self.keys, self.values, self.policy._task_tokens,
                                           self.state)

    def action_step(self):
        return self.model.executor.velocity(self.noise, *self.mods, self.cache)

    def executor_update(self):
        return self.policy.predict_chunk(self.frame, self.proprio, self.context, 0)

    def sync_update(self):
        return self.policy.sync_update(self.frame, self.proprio, 0)


def stage_macs(stages: Stages) -> Dict[str, float]:
    """Count the MACs of encode, refresh, OVCR, executor preparation and one action step."""
    with torch.inference_mode():
        return {name: count_macs(getattr(stages, name))
                for name in ('encode', 'refresh', 'ovcr', 'prepare', 'action_step')}


def ideal_ratio(macs: Dict[str, float], num_steps: int) -> float:
    """Compute-bound sync/async update ratio: the planner refresh is the only difference."""
    asynchronous = (macs['encode'] + macs['ovcr'] + macs['prepare']
                    + num_steps * macs['action_step'])
    return (asynchronous + macs['refresh']) / asynchronous


def print_table(rows: Dict[str, Dict[str, float]], macs: Dict[str, float]) -> None:
    """Print timing rows (ms) with the MACs of the stages that have them."""
    print(f'   {"stage":<22}{"median ms":>10}{"p95 ms":>9}{"min ms":>9}{"MMACs":>9}')
    for stage, timing in rows.items():
        mac = f'{macs[stage] / 1e6:9.1f}' if stage in macs else ''
        print(f'   {stage:<22}{timing["median"]:10.2f}{timing["p95"]:9.2f}{timing["min"]:9.2f}'
              f'{mac}')


class PlannerBeside:
    """
    Context manager: the policy's planner refreshes in a loop in its own thread meanwhile.

    The thread sets its own torch thread count (the main thread's does not carry over).
    `refreshes` counts the refreshes finished while it ran.
    """

    def __init__(self, stages: Stages, threads: int):
        self.stages, self.threads, self.refreshes = stages, threads, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='bench-planner', daemon=True)

    def _run(self) -> None:
        torch.set_num_threads(self.threads)
        step = 1000
        while not self._stop.is_set():
            self.stages.policy.plan(self.stages.frame, step)
            self.refreshes += 1
            step += 8

    def __enter__(self) -> 'PlannerBeside':
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def backend_stages(model: AhaWamModel) -> Dict[str, Stages]:
    """Return eager and compiled policies' stages over the same weights (memories filled)."""
    policies = {'eager': AhaWamPolicy(model, compiled=False),
                'compiled': AhaWamPolicy(model, compiled=True)}
    for steps in (10, 1):  # build every graph before any timing
        policies['compiled'].num_steps = steps
        policies['compiled'].warm_up(sync=True)
    if policies['compiled'].backend == 'eager':
        print(f'   compiled backend unavailable: {policies["compiled"].compile_reason}')
    return {name: Stages(policy) for name, policy in policies.items()}


def time_updates(stages: Dict[str, Stages], repeats: int, threads: int
                 ) -> Dict[str, Dict[str, float]]:
    """
    Time executor and sync updates per backend and N, alone, then beside the planner.

    Rows are named '<backend> <kind> N=<n>' (kind: executor_update, sync_update,
    executor_update+planner); the backends and kinds alternate in each round.
    """
    rows: Dict[str, Dict[str, float]] = {}
    for steps in (10, 1):
        fns = {}
        for backend, stage in stages.items():
            stage.policy.num_steps = steps
            fns[f'{backend} executor_update N={steps}'] = stage.executor_update
            fns[f'{backend} sync_update N={steps}'] = stage.sync_update
        rows.update(time_round_robin(fns, repeats))
        for backend, stage in stages.items():
            with PlannerBeside(stage, threads) as planner:
                timing = time_round_robin({'update': stage.executor_update}, repeats)['update']
            timing['planner_refreshes'] = planner.refreshes
            rows[f'{backend} executor_update+planner N={steps}'] = timing
    return rows


def print_updates(rows: Dict[str, Dict[str, float]], macs: Dict[str, float]) -> None:
    """Print the update latencies side by side per backend, then the ratios."""
    print(f'   {"update: median / p95 ms (thread CPU)":<30}'
          + ''.join(f'{b:>29}' for b in BACKENDS))
    for steps in (10, 1):
        for kind in ('executor_update', 'executor_update+planner', 'sync_update'):
            cells = [rows[f'{b} {kind} N={steps}'] for b in BACKENDS]
            text = ''.join(f'{c["median"]:>11.2f} / {c["p95"]:>7.2f} ({c["cpu_median"]:7.2f})'
                           for c in cells)
            print(f'   {kind + f" N={steps}":<30}{text}')
    for steps in (10, 1):
        ratios = [rows[f'{b} sync_update N={steps}']['median']
                  / rows[f'{b} executor_update N={steps}']['median'] for b in BACKENDS]
        beside = [rows[f'{b} executor_update+planner N={steps}']['median']
                  / rows[f'{b} executor_update N={steps}']['median'] for b in BACKENDS]
        print(f'   sync/async N={steps:<2}: eager {ratios[0]:5.2f}x, compiled {ratios[1]:5.2f}x; '
              f'paper {PAPER_SPEEDUP[steps]}x; compute-bound ideal '
              f'{ideal_ratio(macs, steps):5.2f}x; update beside the planner / alone: eager '
              f'{beside[0]:4.2f}x, compiled {beside[1]:4.2f}x')
    asynchronous = macs['encode'] + macs['ovcr'] + macs['prepare'] + 10 * macs['action_step']
    rate = gemm_rate()
    print(f'   executor update N=10: {asynchronous / 1e6:.0f} MMACs; compute-bound ideal '
          f'{asynchronous / rate * 1e3:.1f} ms at the {rate / 1e9:.1f} GMAC/s this core '
          f'sustains on a 512^3 fp32 GEMM now')


def gemm_rate(size: int = 512, repeats: int = 5) -> float:
    """Return the multiply-accumulates per second of the best of `repeats` square GEMMs."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = min(timed(lambda: a @ b) for _ in range(repeats))
    return size ** 3 / best


def timed(fn: Callable[[], object]) -> float:
    """Return the seconds one call of `fn` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_threads(stages: Dict[str, Stages], macs: Dict[str, float], threads: int,
                  repeats: int) -> None:
    """Print the latency tables and speedups of one preset at `threads` torch threads."""
    torch.set_num_threads(threads)
    print(f'   -- {threads} thread(s), load average {os.getloadavg()[0]:.2f}')
    with torch.inference_mode():
        eager = stages['eager']
        rows = time_round_robin({name: getattr(eager, name) for name in
                                 ('encode', 'refresh', 'ovcr', 'action_step')}, repeats)
    print_table(rows, macs)
    print_updates(time_updates(stages, repeats, threads), macs)
    print(f'   load average after: {os.getloadavg()[0]:.2f}')


def bench_preset(name: str, threads: Sequence[int], repeats: int, train_batch: int) -> None:
    """Print the latency tables of one preset."""
    torch.manual_seed(0)
    model = AhaWamModel(get_preset(name))
    perturb_zero_inits(model)
    started = time.perf_counter()
    stages = backend_stages(model)
    build = time.perf_counter() - started
    config, counts = model.config, parameter_counts(model)
    print(f'\n== preset {name}: {counts["total"] / 1e6:.2f} M parameters ('
          + ', '.join(f'{k} {v / 1e6:.2f} M' for k, v in counts.items() if k != 'total') + ')')
    print(f'   {config.tokens_per_frame} tokens/frame, memory N={config.planner.memory_size}, '
          f'K={config.executor.chunk_len}, L={config.num_layers}, planner width '
          f'{config.planner.width}, executor width {config.executor.width}, attention '
          f'{config.num_heads}x{config.head_dim}')
    print(f'   compiling (planner, executor N=10 and N=1, sync variants) and filling the '
          f'memories took {build:.1f} s')
    macs = stage_macs(stages['eager'])
    for count in threads:
        bench_threads(stages, macs, count, repeats)
    if train_batch:
        torch.set_num_threads(max(threads))
        bench_training(model, train_batch, 3)


def bench_training(model: AhaWamModel, batch_size: int, repeats: int) -> None:
    """Print the time of one training step (forward, backward, AdamW) at `batch_size`."""
    batch = synthetic_batch(model.config, batch_size, seed=1, length=200)
    optimizer = torch.optim.AdamW(trainable_parameters(model), lr=1e-4)
    training_step(model, optimizer, batch)  # warm-up
    timing = time_round_robin({'train': lambda: training_step(model, optimizer, batch)},
                              repeats, warmup=0)['train']
    print(f'   training step, batch {batch_size}, {torch.get_num_threads()} thread(s): median '
          f'{timing["median"]:.0f} ms '
          f'({1e3 * batch_size / timing["median"]:.1f} samples/s)')


def print_paper_counts() -> None:
    """Print the paper preset's parameter counts per module, built on the meta device."""
    with torch.device('meta'):
        model = AhaWamModel(get_preset('paper'))
    counts = parameter_counts(model)
    print('\n== preset paper (meta device): parameters per module')
    for module, count in counts.items():
        print(f'   {module:<14}{count / 1e9:8.3f} B')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--presets', nargs='+', default=['small', 'tiny'],
                        choices=sorted(p for p in PRESETS if p != 'paper'))
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2],
                        help='torch intra-op thread counts to measure at')
    parser.add_argument('--train-batch', type=int, default=0,
                        help='also time a training step at this batch size (0: skip)')
    args = parser.parse_args(argv)
    for name in args.presets:
        bench_preset(name, args.threads, args.repeats, args.train_batch)
    print_paper_counts()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
