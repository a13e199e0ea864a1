"""
`ahawam eval-imagination`: does the world model predict the frames that come.

    ahawam eval-imagination --checkpoint CKPT [--seeds 20] [--steps 0 100 200] [--out DIR]

For each held-out seed the scripted expert runs the task; at each anchor step s the planner
refreshes on the expert's frames as it was trained to see them (its memory: frames at
s - j history_stride, then frame s) and predicts its F future frames (`AhaWamPolicy.imagine`:
steps s + f frame_stride). Each prediction is scored by PSNR against the frame that came,
beside two references at the policy's resolution: copying frame s (a model that learned
nothing of motion scores about this) and the autoencoder's own reconstruction of the frame
that came (the best a prediction in its latent space can score).

Shapes: V views, H x W pixels, F future frames.
"""

import argparse
from dataclasses import asdict, dataclass
import os
from pathlib import Path
import time
from typing import Dict, List, Optional, Sequence

from ahawam_ros.eval.closed_loop.metrics import write_json
from ahawam_ros.eval.closed_loop.policy import load_eval_policy, PolicyViews, sim_config_for
from ahawam_ros.eval.grounding.cli import ExpertObserver
from ahawam_ros.model.imagination import psnr, to_pixels
from ahawam_ros.robot import FIRST_HELD_OUT_SEED
from ahawam_ros.sim.tasks import TASKS
import numpy as np

REPORT_FILE = 'imagination.json'


@dataclass(frozen=True)
class ImaginationOptions:
    """What `ahawam eval-imagination` measures; validated on construction."""

    checkpoint: str
    seeds: int = 20
    first_seed: int = FIRST_HELD_OUT_SEED
    steps: Sequence[int] = (0, 100, 200)
    num_steps: int = 0  # Euler steps; 0: the checkpoint's
    out: str = 'outputs/eval_imagination'
    task: str = 'transfer_cube'
    device: str = 'cpu'

    def __post_init__(self):
        if self.seeds < 1 or any(step < 0 for step in self.steps) or not self.steps:
            raise ValueError(f'seeds must be >= 1 and steps >= 0, got {self.seeds}, '
                             f'{list(self.steps)}')
        if self.task not in TASKS:
            raise ValueError(f'task must be one of {sorted(TASKS)}, got {self.task!r}')


def frame_steps(step: int, planner) -> Dict[str, List[int]]:
    """Return the memory, current and future steps of a prediction at `step`."""
    memory = [step - j * planner.history_stride for j in range(planner.memory_size, 0, -1)]
    future = [step + f * planner.frame_stride for f in range(1, planner.num_future_frames + 1)]
    return {'memory': [s for s in memory if s >= 0], 'current': [step], 'future': future}


def score_anchor(policy, frames: Dict[int, np.ndarray], steps: Dict[str, List[int]],
                 num_steps: Optional[int], seed: int) -> Dict[str, List[float]]:
    """Refresh on the memory and current frames, predict; return PSNRs per future frame."""
    import torch
    policy.reset()
    for step in steps['memory'] + steps['current']:
        policy.plan(frames[step], step)
    predicted = policy.imagine(num_steps, seed)  # (F, V, H, W, 3)
    current = torch.from_numpy(frames[steps['current'][0]])
    actual = torch.from_numpy(np.stack([frames[s] for s in steps['future']]))  # (F, V, H, W, 3)
    with torch.inference_mode():
        model = policy.model
        latents = model.encode(actual.to(policy.device))  # (F, C, h, w)
        reconstructed = to_pixels(model, latents[None])[0].cpu()
    rows = {'predicted': [], 'copy_current': [], 'reconstruction': []}
    for f in range(actual.shape[0]):
        rows['predicted'].append(psnr(torch.from_numpy(predicted[f]), actual[f]))
        rows['copy_current'].append(psnr(current, actual[f]))
        rows['reconstruction'].append(psnr(reconstructed[f], actual[f]))
    return rows


def evaluate(options: ImaginationOptions, policy=None) -> Dict:
    """Score every seed and anchor; write and return the report."""
    import torch
    policy = policy or load_eval_policy(options.checkpoint, options.device)
    if not hasattr(policy, 'imagine'):
        raise ValueError(f'{options.checkpoint}: eval-imagination needs an AHA-WAM policy')
    policy.set_task(options.task)
    planner = policy.model.config.planner
    anchors = {step: frame_steps(step, planner) for step in options.steps}
    last = max(s for steps in anchors.values() for s in steps['future'])
    sim_config = sim_config_for(policy, options.checkpoint, options.task, last + 1)
    observer = ExpertObserver(sim_config, PolicyViews(sim_config.cameras, policy.image_size))
    scores = {step: {'predicted': [], 'copy_current': [], 'reconstruction': []}
              for step in options.steps}
    started = time.monotonic()
    try:
        for seed in range(options.first_seed, options.first_seed + options.seeds):
            wanted = sorted({s for steps in anchors.values() for group in steps.values()
                             for s in group})
            inputs = observer.observe(seed, last, 1, wanted)
            frames = dict(inputs.frames)
            for step, steps in anchors.items():
                row = score_anchor(policy, frames, steps, options.num_steps or None, seed)
                for name, values in row.items():
                    scores[step][name].append(values)
    finally:
        observer.close()
    report = {'options': asdict(options), 'torch_threads': torch.get_num_threads(),
              'future_steps': {str(step): steps['future'] for step, steps in anchors.items()},
              'psnr_db': {str(step): {name: np.mean(values, axis=0).tolist()
                                      for name, values in rows.items()}
                          for step, rows in scores.items()},
              'load_average': os.getloadavg()[0], 'wall_seconds': time.monotonic() - started}
    write_json(report, Path(options.out) / REPORT_FILE)
    return report


def format_table(report: Dict) -> str:
    """Return the printed table: mean PSNR per anchor step and future frame."""
    lines = [f'{"step":>6}{"future step":>13}{"predicted":>11}{"copy s":>9}{"AE ceiling":>12}']
    for step, rows in report['psnr_db'].items():
        for f, future in enumerate(report['future_steps'][step]):
            lines.append(f'{step:>6}{future:>13}{rows["predicted"][f]:>9.1f}dB'
                         f'{rows["copy_current"][f]:>7.1f}dB{rows["reconstruction"][f]:>10.1f}dB')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Measure, print the table and write the report; return 0 (2 for bad options)."""
    parser = argparse.ArgumentParser(prog='ahawam eval-imagination',
                                     description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--checkpoint', required=True,
                        help='checkpoint directory or random:<preset> (untrained)')
    parser.add_argument('--seeds', type=int, default=20, help='held-out seeds (20)')
    parser.add_argument('--first-seed', type=int, default=FIRST_HELD_OUT_SEED)
    parser.add_argument('--steps', type=int, nargs='+', default=[0, 100, 200],
                        help='anchor steps of the predictions (0 100 200)')
    parser.add_argument('--num-steps', type=int, default=0,
                        help="Euler steps of a prediction (0: the checkpoint's)")
    parser.add_argument('--task', default='transfer_cube', choices=sorted(TASKS))
    parser.add_argument('--out', default='outputs/eval_imagination')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    try:
        options = ImaginationOptions(args.checkpoint, args.seeds, args.first_seed,
                                     tuple(args.steps), args.num_steps, args.out, args.task,
                                     args.device)
    except ValueError as error:
        parser.error(str(error))
    report = evaluate(options)
    print(f'\n{options.checkpoint}: imagination on seeds {options.first_seed}..'
          f'{options.first_seed + options.seeds - 1} (PSNR against the frames that came)')
    print(format_table(report))
    print(f'report: {(Path(options.out) / REPORT_FILE).resolve()}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
