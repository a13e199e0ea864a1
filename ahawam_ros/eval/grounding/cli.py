"""
`ahawam eval-grounding`: how much of the objects' positions the policy's chunk carries.

    ahawam eval-grounding --checkpoint CKPT [--seeds 100] [--first-seed 1000] [--step 0]
                          [--out DIR]

Shapes: N seeds, V cameras, H x W pixels, K chunk length, A action dim.

For each held-out seed the scripted expert drives the arms to control step S (`--step`) and
the policy is fed the expert's observation there as it would see it in closed loop: the
planner refreshes on the expert's frames every `--refresh-steps` steps up to S (its rolling
memory filled), then the executor predicts one chunk from the frames, joint state and context
of step S, with the same starting noise for every seed. Recorded per seed: the policy's chunk
(K, A), the expert's own commands for steps S .. S + K - 1 (its chunk), the joint state and the
position of each of the task's objects (TransferCube's cube; Insertion's peg and socket:
privileged, read from the simulator: evaluation only, never a policy input).

Figures (`metrics.json` and a table), per object:
- R^2 of the object's x / y from a flattened chunk, held-out (ridge, k-fold, `probe`): the
  policy's (and the policy's again with a noise of each seed's own, as closed loop draws it:
  sampling noise can drown a dependence that is there), the expert's (the ceiling) and, for
  scale, from the joint state alone. At S = 0 (the default) every seed starts from the same
  pose, so the joint state carries nothing and whatever the chunk carries of an object it has
  from the cameras; the expert's chunk, tiny as its motion is there, still determines the cube
  (R^2 about 1). At a mid-approach step the arms already point at the cube: the joint state
  alone scores R^2 0.999 at S = 60 (100 seeds), so a policy copying its proprio passes there;
  read the swaps beside it, and the same R^2 from the chunk's motion (chunk - joint state:
  where the arms go next, which the joint state does not give): the policy's beside the
  expert's. R^2 is blind to scale: compare the spreads across seeds too.
- Sensitivity: mean |change| of the chunk (rad, arm joints) when one input is swapped for the
  previous seed's: the planner context, the latest frame (the OVCR input), the proprio; beside
  the change from the sampling noise alone and the chunks' spread across seeds. At S = 0 every
  seed has the same joint state, so the proprio swap changes nothing by construction: read
  the swaps at a mid-approach step (`--step 60`).
"""

import argparse
from dataclasses import asdict, dataclass, replace
import os
from pathlib import Path
import time
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ahawam_ros.eval.closed_loop.metrics import write_json
from ahawam_ros.eval.closed_loop.policy import load_eval_policy, PolicyViews, sim_config_for
from ahawam_ros.eval.grounding.probe import ridge_cv_r2
from ahawam_ros.robot import ACTION_DIM, CONTROL_RATE_HZ, FIRST_HELD_OUT_SEED, JOINT_NAMES
from ahawam_ros.runtime.settings import PlannerSettings
from ahawam_ros.sim.aloha_env import AlohaSim
from ahawam_ros.sim.episode import object_positions
from ahawam_ros.sim.renderer import TiledRenderer
from ahawam_ros.sim.scripted_expert import ScriptedExpert
from ahawam_ros.sim.tasks import get_task, object_names, TASKS
import numpy as np

DEFAULT_STEP = 0  # the reset: identical joint states, only the cameras see the cube
# the planner's refresh period in control steps, as the runtime settings run it
REFRESH_STEPS = round(CONTROL_RATE_HZ / PlannerSettings().refresh_rate_hz)
METRICS_FILE = 'metrics.json'
DATA_FILE = 'grounding_data.npz'
ARM_JOINTS = np.array([not name.endswith('gripper') for name in JOINT_NAMES])  # (A,) mask
AXES = ('x', 'y')
SWAPS = ('context', 'frame', 'proprio')
FRESH_NOISE = 10_000  # + seed: a starting noise of each seed's own, as in closed loop


@dataclass(frozen=True)
class GroundingOptions:
    """What `ahawam eval-grounding` measures; validated on construction."""

    checkpoint: str
    seeds: int = 100
    first_seed: int = FIRST_HELD_OUT_SEED
    step: int = DEFAULT_STEP
    out: str = 'outputs/eval_grounding'
    noise_seed: int = 0
    noise_draws: int = 2
    folds: int = 5
    refresh_steps: int = REFRESH_STEPS
    task: str = 'transfer_cube'
    threads: int = 1
    device: str = 'cpu'

    def __post_init__(self):
        if not self.checkpoint:
            raise ValueError('checkpoint must name a checkpoint directory or random:<preset>')
        if not 2 <= self.folds <= self.seeds or self.seeds - -(-self.seeds // self.folds) < 2:
            raise ValueError(f'need 2 <= folds <= seeds with >= 2 training seeds a fold, got '
                             f'folds {self.folds}, seeds {self.seeds}')
        for name in ('first_seed', 'step', 'noise_seed', 'noise_draws'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        if self.refresh_steps < 1 or self.threads < 1:
            raise ValueError(f'refresh_steps and threads must be >= 1, got '
                             f'{self.refresh_steps}, {self.threads}')
        if self.task not in TASKS:
            raise ValueError(f'task must be one of {sorted(TASKS)}, got {self.task!r}')


@dataclass
class SeedInputs:
    """
    The expert's observation of one seed at step S, and its own next K commands.

    Attributes
    ----------
    frames : list of (int, np.ndarray)
        (step, uint8 (V, H, W, 3) views) of the planner refreshes, oldest first; the last is S.
    proprio : np.ndarray
        float32 (A,) joint positions at S.
    objects : np.ndarray
        float64 (n_objects, 3) object centres at S (privileged), in the task's object order.
    expert_chunk : np.ndarray
        float64 (K, A) the expert's commands for steps S .. S + K - 1.

    """

    seed: int
    frames: List[Tuple[int, np.ndarray]]
    proprio: np.ndarray
    objects: np.ndarray
    expert_chunk: np.ndarray

    @property
    def latest(self) -> np.ndarray:
        """Return the (V, H, W, 3) views at S."""
        return self.frames[-1][1]


def refresh_steps(step: int, stride: int, memory: int) -> List[int]:
    """Return the refresh steps ending at `step`, `stride` apart, at most `memory`, >= 0."""
    steps = list(range(step, -1, -stride))[:max(memory, 1)]
    return steps[::-1]


class ExpertObserver:
    """
    Rolls the scripted expert to step S and renders the policy's views on the way.

    Parameters
    ----------
    sim_config : SimConfig
        The policy's cameras and rendered size; `episode_len` must be at least S + K.
    views : PolicyViews
        Rendered images -> the policy's (V, H, W, 3) input.

    """

    def __init__(self, sim_config, views: PolicyViews):
        blind = replace(sim_config, cameras=())
        self.expert = ScriptedExpert(blind)
        self.sim = AlohaSim(blind)
        self.renderer = TiledRenderer(self.sim.model, sim_config.cameras,
                                      sim_config.image_height, sim_config.image_width)
        self.views = views

    def observe(self, seed: int, step: int, chunk_len: int, frame_steps: Sequence[int]):
        """Return the SeedInputs of `seed` at `step` with frames at `frame_steps`."""
        commands = self.expert.joint_commands(seed)  # (T, A), as record-demos makes them
        observation, frames = self.sim.reset(seed), []
        for index in range(step + 1):
            if index in frame_steps:
                images = self.renderer.render(self.sim.data)
                frames.append((index, self.views(SimpleNamespace(images=images))))
            if index < step:
                observation = self.sim.step(commands[index])
        return SeedInputs(seed, frames, observation.qpos.astype(np.float32),
                          object_positions(observation.object_pose).copy(),
                          commands[step:step + chunk_len].copy())

    def close(self) -> None:
        """Release the simulators and the renderer."""
        self.renderer.close()
        self.sim.close()
        self.expert.close()


def planner_context(policy, inputs: SeedInputs) -> Any:
    """Reset the policy and refresh the planner on every frame of `inputs`; return the last."""
    policy.reset()
    context = None
    for step, images in inputs.frames:
        context = policy.plan(images, step)
    return context


def chunk(policy, images: np.ndarray, proprio: np.ndarray, context: Any, step: int,
          noise_seed: int) -> np.ndarray:
    """Return the (K, A) chunk of one executor update from starting noise `noise_seed`."""
    policy.reseed(noise_seed)
    return policy.predict_chunk(images, proprio, context, step)


def _arm_change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a[:, ARM_JOINTS] - b[:, ARM_JOINTS])))


def collect(policy, observer: ExpertObserver, options: GroundingOptions) -> Dict[str, Any]:
    """
    Run every seed; return the recorded arrays and per-seed changes.

    Returns
    -------
    dict
        'seeds' (N,), 'chunks' (N, K, A) from the same noise, 'fresh_chunks' (N, K, A) from a
        noise of each seed's own, 'expert_chunks' (N, K, A), 'proprio' (N, A),
        'objects' (N, n_objects, 3); 'swap_<input>' (N - 1,) and 'noise' (N * draws,) mean
        |changes| (rad).

    """
    memory = policy.model.config.planner.memory_size
    frame_steps = refresh_steps(options.step, options.refresh_steps, memory)
    record: Dict[str, list] = {key: [] for key in (
        'seeds', 'chunks', 'fresh_chunks', 'expert_chunks', 'proprio', 'objects', 'noise',
        *(f'swap_{name}' for name in SWAPS))}
    previous = None
    for index in range(options.seeds):
        inputs = observer.observe(options.first_seed + index, options.step, policy.chunk_len,
                                  frame_steps)
        context = planner_context(policy, inputs)
        step, noise = options.step, options.noise_seed
        base = chunk(policy, inputs.latest, inputs.proprio, context, step, noise)
        for draw in range(1, options.noise_draws + 1):
            other = chunk(policy, inputs.latest, inputs.proprio, context, step, noise + draw)
            record['noise'].append(_arm_change(other, base))
        record['fresh_chunks'].append(chunk(policy, inputs.latest, inputs.proprio, context,
                                            step, noise + FRESH_NOISE + inputs.seed))
        if previous is not None:
            old, old_context = previous
            swapped = {'context': (inputs.latest, inputs.proprio, old_context),
                       'frame': (old.latest, inputs.proprio, context),
                       'proprio': (inputs.latest, old.proprio, context)}
            for name, (images, proprio, ctx) in swapped.items():
                record[f'swap_{name}'].append(
                    _arm_change(chunk(policy, images, proprio, ctx, step, noise), base))
        previous = (inputs, context)
        for key, value in (('seeds', inputs.seed), ('chunks', base), ('objects', inputs.objects),
                           ('expert_chunks', inputs.expert_chunk), ('proprio', inputs.proprio)):
            record[key].append(value)
        where = ', '.join(f'({x:+.3f}, {y:+.3f})' for x, y, _ in inputs.objects)
        print(f'  seed {inputs.seed}: objects at {where}, chunk right waist '
              f'{base[0, 7]:+.3f} (expert {inputs.expert_chunk[0, 7]:+.3f})',
              flush=True)
    return {key: np.asarray(value) for key, value in record.items()}


def _r2(features: np.ndarray, position: np.ndarray, folds: int) -> Dict[str, float]:
    """R^2 x / y / mean of (N, 3) positions from (N, ...) features, held out."""
    scores = ridge_cv_r2(features.reshape(len(features), -1), position[:, :2], folds=folds)
    figures = {axis: float(score) for axis, score in zip(AXES, scores)}
    figures['mean'] = float(np.mean(scores))
    return figures


def _spread(chunks: np.ndarray) -> float:
    """Mean |deviation| of (N, K, A) chunks from their mean over seeds (rad, arm joints)."""
    return float(np.mean(np.abs(chunks - chunks.mean(axis=0))[..., ARM_JOINTS]))


def grounding_metrics(data: Dict[str, np.ndarray], folds: int) -> Dict[str, Any]:
    """
    Return the R^2 and sensitivity figures of `collect`'s arrays (see the module doc).

    `data['object_names']` (n_objects,) names the objects of `data['objects']`; the R^2 and
    spread figures are keyed by object name, in that order.
    """
    def mean(values: np.ndarray) -> Optional[float]:
        return float(np.mean(values)) if len(values) else None

    chunks = {'policy': data['chunks'], 'policy_fresh_noise': data['fresh_chunks'],
              'expert': data['expert_chunks']}  # (N, K, A) each
    motions = {key: value - data['proprio'][:, None, :] for key, value in chunks.items()}
    names = [str(name) for name in data['object_names']]
    r2, r2_motion, spread = {}, {}, {}
    for index, name in enumerate(names):
        position = data['objects'][:, index]  # (N, 3)
        r2_motion[name] = {key: _r2(value, position, folds) for key, value in motions.items()}
        r2[name] = {**{key: _r2(value, position, folds) for key, value in chunks.items()},
                    'proprio': _r2(data['proprio'], position, folds)}
        spread[name] = {axis: float(np.std(position[:, i])) for i, axis in enumerate(AXES)}
    return {
        'objects': names,
        'r2': r2,
        'r2_motion': r2_motion,
        'chunk_change_rad': {**{f'{name}_swapped': mean(data[f'swap_{name}'])
                                for name in SWAPS},
                             'noise_only': mean(data['noise'])},
        'seed_spread_rad': {'policy': _spread(data['chunks']),
                            'expert': _spread(data['expert_chunks'])},
        'object_std_m': spread,
    }


def format_table(metrics: Dict[str, Any]) -> str:
    """Return the figures as a small text table (a block of R^2 per object)."""
    names = {'policy': 'policy chunk', 'policy_fresh_noise': '  noise per seed',
             'expert': 'expert chunk (ceiling)',
             'proprio': 'joint state alone'}
    lines = []
    for name in metrics['objects']:
        lines.append(f'{name + " position from":<26}{"R^2 x":>8}{"R^2 y":>8}{"mean":>8}')
        for key, label in names.items():
            row = metrics['r2'][name][key]
            lines.append(f'{label:<26}{row["x"]:>8.3f}{row["y"]:>8.3f}{row["mean"]:>8.3f}')
        lines.append('... from the motion (chunk - joint state)')
        for key, row in metrics['r2_motion'][name].items():
            lines.append(f'{names[key]:<26}{row["x"]:>8.3f}{row["y"]:>8.3f}{row["mean"]:>8.3f}')
    lines.append(f'{"chunk change (rad, arms)":<26}{"mean |d|":>8}')
    for key, value in metrics['chunk_change_rad'].items():
        text = '-' if value is None else f'{value:.4f}'
        lines.append(f'  {key.replace("_", " "):<24}{text:>8}')
    spread = metrics['seed_spread_rad']
    lines.append(f'  {"across seeds: policy":<24}{spread["policy"]:>8.4f}')
    lines.append(f'  {"across seeds: expert":<24}{spread["expert"]:>8.4f}')
    return '\n'.join(lines)


def evaluate(options: GroundingOptions, policy=None) -> Dict[str, Any]:
    """Collect the seeds, write the arrays and metrics.json; return the report."""
    import torch
    torch.set_num_threads(options.threads)
    policy = policy or load_eval_policy(options.checkpoint, options.device)
    if not hasattr(policy, 'reseed') or policy.action_dim != ACTION_DIM:
        raise ValueError(f'{options.checkpoint}: eval-grounding needs an AHA-WAM policy of '
                         f'the {ACTION_DIM} robot joints')
    policy.set_task(options.task)
    sim_config = sim_config_for(policy, options.checkpoint, options.task,
                                options.step + policy.chunk_len)
    observer = ExpertObserver(sim_config, PolicyViews(sim_config.cameras, policy.image_size))
    load_before, started = os.getloadavg()[0], time.monotonic()
    try:
        data = collect(policy, observer, options)
    finally:
        observer.close()
    data['object_names'] = np.array(object_names(get_task(options.task)))
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / DATA_FILE, **data)
    report = {'options': asdict(options), 'metrics': grounding_metrics(data, options.folds),
              'cameras': list(sim_config.cameras),
              'machine': {'cpus': os.cpu_count(), 'load_average_before': load_before,
                          'load_average_after': os.getloadavg()[0]},
              'wall_seconds': time.monotonic() - started}
    write_json(report, out / METRICS_FILE)
    return report


def parse_options(argv: Optional[Sequence[str]]) -> GroundingOptions:
    """Parse the command line into GroundingOptions."""
    parser = argparse.ArgumentParser(prog='ahawam eval-grounding',
                                     description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--checkpoint', required=True,
                        help='checkpoint directory or random:<preset> (untrained)')
    parser.add_argument('--seeds', type=int, default=100, help='held-out seeds (100)')
    parser.add_argument('--first-seed', type=int, default=FIRST_HELD_OUT_SEED,
                        help=f'first seed ({FIRST_HELD_OUT_SEED}: held out, never a demo)')
    parser.add_argument('--step', type=int, default=DEFAULT_STEP,
                        help=f'control step of the expert observation ({DEFAULT_STEP})')
    parser.add_argument('--out', default='outputs/eval_grounding')
    parser.add_argument('--noise-seed', type=int, default=0, help='starting noise, every seed')
    parser.add_argument('--noise-draws', type=int, default=2,
                        help='extra noise seeds per seed for the noise-only spread (2)')
    parser.add_argument('--folds', type=int, default=5, help='cross-validation folds (5)')
    parser.add_argument('--refresh-steps', type=int, default=REFRESH_STEPS,
                        help=f'steps between planner refreshes ({REFRESH_STEPS})')
    parser.add_argument('--task', default='transfer_cube', choices=sorted(TASKS))
    parser.add_argument('--threads', type=int, default=1, help='torch threads')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    try:
        return GroundingOptions(args.checkpoint, args.seeds, args.first_seed, args.step,
                                args.out, args.noise_seed, args.noise_draws, args.folds,
                                args.refresh_steps, args.task, args.threads, args.device)
    except ValueError as error:
        parser.error(str(error))  # exits 2 with the message


def main(argv: Optional[List[str]] = None) -> int:
    """Measure, print the table and write the report; returns 0."""
    options = parse_options(argv)
    report = evaluate(options)
    last = options.first_seed + options.seeds - 1
    print(f'\n{options.checkpoint}: grounding at step {options.step}, seeds '
          f'{options.first_seed}..{last}, noise seed {options.noise_seed}')
    print(format_table(report['metrics']))
    print(f'load average {report["machine"]["load_average_before"]:.1f} at the start; '
          f'report: {(Path(options.out) / METRICS_FILE).resolve()}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
