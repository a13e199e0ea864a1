"""
Compare the backends of the compiled executor update: build time, per-call latency, GIL.

The executor update (`ahawam_ros.model.compiled.ExecutorGraph`: encode + OVCR + executor
preparation + N Euler steps) of a preset model, run by:

- 'eager': the eager module (the reference);
- 'jit': `compiled.build_graph`, what the runtime uses (torch.jit.trace + freeze +
  optimize_for_inference, deprecated in the pinned torch 2.13);
- 'aoti': `torch.export` + AOTInductor (`torch._inductor.aoti_compile_and_package`, then
  `aoti_load_package`): build = export + compile (could be done offline, at export time),
  load = what a start-up would pay with a prebuilt package;
- 'compile': `torch.compile` (inductor, static shapes): build = the first call.

Latency: one torch thread, every backend called in turn within each round (so a background
load slows them alike), median of `--calls` rounds after warm-up calls. Absolute figures are
noisy on a shared machine: compare the ratios to 'jit' within one run.

GIL: a worker thread makes one call while this thread, from a quarter of a call later, spins
in pure Python with a huge switch interval (it never yields the GIL): 'gil-free' is
the share of the call's CPU time spent during the spin, best of 20 tries (about 0.75, as the
spin starts a quarter into the call: it runs without the GIL, so a refresh and an update
compute in parallel; 0.0: it needs the GIL).

Usage (inductor's cache is a fresh temporary folder unless --keep-cache: cold builds)::

    source scripts/env.sh
    python -m ahawam_ros.bench.compile_paths --presets tiny small --calls 50
"""

import argparse
import atexit
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, List, Tuple

if __name__ == '__main__' and '--keep-cache' not in sys.argv:
    # Cold builds: inductor reads its cache folder when torch is imported, so set it first.
    os.environ['TORCHINDUCTOR_CACHE_DIR'] = tempfile.mkdtemp(prefix='bench_inductor_')
    atexit.register(shutil.rmtree, os.environ['TORCHINDUCTOR_CACHE_DIR'], ignore_errors=True)

from ahawam_ros.model import compiled  # noqa: E402
from ahawam_ros.model.aha_wam import AhaWamModel  # noqa: E402
from ahawam_ros.model.policy import AhaWamPolicy  # noqa: E402
from ahawam_ros.model.presets import get_preset  # noqa: E402
from ahawam_ros.model.testing import perturb_zero_inits, synthetic_episode  # noqa: E402
import torch  # noqa: E402

BACKENDS = ('eager', 'jit', 'aoti', 'compile')


@dataclasses.dataclass
class Built:
    """A backend's callable and what it cost to get it."""

    name: str
    call: Callable
    build_s: float
    load_s: float = 0.0
    error: str = ''


def make_model(preset: str) -> AhaWamModel:
    """Return the preset's model with every zero-initialised head perturbed (as the tests)."""
    torch.manual_seed(0)
    model = AhaWamModel(get_preset(preset)).eval()
    perturb_zero_inits(model, std=0.2)  # non-zero heads and OVCR delta: every op matters
    return model


def make_inputs(model: AhaWamModel) -> Tuple[torch.Tensor, ...]:
    """Return one executor update's inputs: a synthetic frame, its joints, a real context."""
    config = model.config
    episode = synthetic_episode(config, 2, seed=2)
    policy = AhaWamPolicy(model, compiled=False, seed=5)
    context = policy.plan(episode['frames'][0], 0)  # (L, H, S, hd) keys and values
    with torch.inference_mode():
        ids = model.task_encoder.ids_for([config.task.task_names[0]])
        task_tokens = model.task_encoder(ids)  # (1, Lt, Dt)
    frame = torch.from_numpy(episode['frames'][1])[None]  # (1, V, H, W, 3) uint8
    proprio = torch.from_numpy(episode['joint_positions'][0]).float()[None]  # (1, A)
    noise = torch.randn(1, config.executor.chunk_len, config.executor.action_dim,
                        generator=torch.Generator().manual_seed(7))
    return (frame, proprio, context.keys.clone(), context.values.clone(), task_tokens.clone(),
            noise)


def build(name: str, model: AhaWamModel, steps: int,
          inputs: Tuple[torch.Tensor, ...], workdir: str) -> Built:
    """Build backend `name` of the executor update of `steps` Euler steps."""
    module = compiled.ExecutorGraph(model, model.euler_plan(steps)).eval()
    started = time.perf_counter()
    try:
        if name == 'eager':
            return Built(name, module, 0.0)
        if name == 'jit':
            graph = compiled.build_graph(module, inputs)
            graph(*inputs)  # the profiling executor optimises on the first calls
            return Built(name, graph, time.perf_counter() - started)
        if name == 'aoti':
            with torch.no_grad():
                exported = torch.export.export(module, inputs, strict=False)
                path = torch._inductor.aoti_compile_and_package(
                    exported, package_path=os.path.join(workdir, f'executor_{steps}.pt2'))
            built = time.perf_counter() - started
            loaded = time.perf_counter()
            runner = torch._inductor.aoti_load_package(path)
            runner(*inputs)
            return Built(name, runner, built, time.perf_counter() - loaded)
        if name == 'compile':
            function = torch.compile(module, dynamic=False)
            with torch.inference_mode():
                function(*inputs)  # compiles here
            return Built(name, function, time.perf_counter() - started)
        raise ValueError(f'unknown backend {name!r}')
    except Exception as error:  # report it in the table, go on with the others
        message = f'{type(error).__name__}: {str(error).splitlines()[0][:120]}'
        return Built(name, module, time.perf_counter() - started, error=message)


def latencies(backends: List[Built], inputs: Tuple[torch.Tensor, ...], calls: int,
              warm_up: int = 5) -> Dict[str, Tuple[float, float]]:
    """
    Time each backend, the backends interleaved within each round.

    Returns
    -------
    dict
        Per backend: median wall seconds per call, and the process's CPU seconds over wall
        seconds in all (about 1.0 when the backend keeps to one thread, as the runtime's).

    """
    wall: Dict[str, List[float]] = {b.name: [] for b in backends}
    cpu: Dict[str, float] = {b.name: 0.0 for b in backends}
    with torch.inference_mode():
        for round_ in range(warm_up + calls):
            for backend in backends:
                cpu0, wall0 = time.process_time(), time.perf_counter()
                backend.call(*inputs)
                if round_ >= warm_up:
                    wall[backend.name].append(time.perf_counter() - wall0)
                    cpu[backend.name] += time.process_time() - cpu0
    return {name: (statistics.median(values), cpu[name] / sum(values))
            for name, values in wall.items()}


def gil_free_fraction(call: Callable, inputs: Tuple[torch.Tensor, ...], latency_s: float,
                      tries: int = 20) -> float:
    """
    Return the share of one call's CPU time spent while another thread holds the GIL.

    A worker thread makes one call (of about `latency_s`); a quarter of it later (the
    worker is inside its graph by then), this thread takes the GIL and spins in pure Python
    with a huge switch interval, so it never gives it back before five calls' time. The
    worker's CPU time during the spin over its CPU time for the whole call: about 0.75 when
    the call runs without the GIL, about 0.0 when it needs the GIL (eager re-takes it at
    every op; a backend that keeps it for the whole call ends before the spin starts). The
    best of `tries`: a descheduled thread only lowers it.
    """
    best = 0.0
    for _ in range(tries):
        go, measured, spent = threading.Event(), threading.Event(), []

        def one_call():
            with torch.inference_mode():
                started = time.thread_time()
                go.set()
                call(*inputs)
                spent.append(time.thread_time() - started)
            measured.wait()  # a finished thread's CPU clock can no longer be read

        worker = threading.Thread(target=one_call, name='bench-worker')
        worker.start()
        go.wait()
        clock = time.pthread_getcpuclockid(worker.ident)
        time.sleep(latency_s / 4)  # lets go of the GIL: the worker enters its graph
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1000.0)  # from here this thread keeps the GIL while it spins
        try:
            cpu0, wall0 = time.clock_gettime(clock), time.monotonic()
            while time.monotonic() - wall0 < max(0.05, 5 * latency_s):
                pass
            during = time.clock_gettime(clock) - cpu0
        finally:
            sys.setswitchinterval(interval)
            measured.set()
        worker.join()
        best = max(best, min(1.0, during / spent[0]))
    return best


def bench(preset: str, names: List[str], calls: int, steps: int, gil: bool,
          workdir: str) -> None:
    """Build, check, time every backend of `preset`'s executor update; print a table."""
    model = make_model(preset)
    steps = steps or model.config.flow.num_inference_steps
    inputs = make_inputs(model)
    built = []
    for name in names:
        print(f'[{preset}] building {name} ...', flush=True)
        built.append(build(name, model, steps, inputs, workdir))
    working = [b for b in built if not b.error]
    with torch.inference_mode():
        reference = compiled.ExecutorGraph(model, model.euler_plan(steps))(*inputs)
        errors = {b.name: (b.call(*inputs) - reference).abs().max().item() for b in working}
    median = latencies(working, inputs, calls)
    free = {b.name: gil_free_fraction(b.call, inputs, median[b.name][0])
            for b in working} if gil else {}
    base = median['jit'][0] if 'jit' in median else None
    print(f'\n{preset} preset, executor update, N={steps}, 1 thread, median of {calls} '
          f'interleaved calls (torch {torch.__version__})')
    print('| backend | build s | load s | median ms | vs jit | cpu/wall | max abs diff vs eager '
          '| gil-free |')
    print('|---|---|---|---|---|---|---|---|')
    for b in built:
        if b.error:
            print(f'| {b.name} | {b.build_s:.1f} | - | failed: {b.error} | - | - | - | - |')
            continue
        seconds, cpu_share = median[b.name]
        ratio = f'{seconds / base:.2f}' if base else '-'
        gil_cell = f'{free[b.name]:.2f}' if b.name in free else '-'
        print(f'| {b.name} | {b.build_s:.2f} | {b.load_s:.2f} | {seconds * 1e3:.2f} | {ratio} | '
              f'{cpu_share:.2f} | {errors[b.name]:.1e} | {gil_cell} |')
    print(flush=True)


def main() -> None:
    """Parse the arguments and bench each preset."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--presets', nargs='+', default=['tiny', 'small'])
    parser.add_argument('--backends', nargs='+', default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument('--calls', type=int, default=50, help='timed calls per backend')
    parser.add_argument('--steps', type=int, default=0, help="Euler steps (0: the preset's)")
    parser.add_argument('--no-gil', action='store_true', help='skip the GIL measurement')
    parser.add_argument('--keep-cache', action='store_true',
                        help="use inductor's usual cache (warm builds) instead of a fresh one")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the runtime's executor thread runs on one intra-op thread
    with tempfile.TemporaryDirectory(prefix='bench_compile_') as workdir:
        for preset in args.presets:
            bench(preset, args.backends, args.calls, args.steps, not args.no_gil, workdir)


if __name__ == '__main__':
    main()
