"""
`ahawam distill`: AHA-WAM-Flash, a 1/2/4-step executor distilled from a trained checkpoint.

    ahawam distill --checkpoint CKPT --data DIR --student-steps 2 --steps 2000 --out DIR

The teacher (the checkpoint) stays frozen; the student, initialised from it, trains its
executor only (`model/flash.py`: ODE distillation from the teacher's 16-step trajectories) on
the demonstrations' samples. The student is saved as an ordinary checkpoint whose flow config
takes `--student-steps` Euler steps, so every host runs it as it runs any checkpoint
(`ros2 launch ... checkpoint:=DIR`, `ahawam eval-sim --checkpoint DIR`, `ahawam bench
--checkpoint DIR`); the runtime setting `num_inference_steps` still overrides it.
"""

import argparse
from pathlib import Path
import sys
from typing import List, Optional

from ahawam_ros.data.dataset import DataConfig, load_episodes, PolicyDataset
from ahawam_ros.model.checkpoint import load_checkpoint, save_checkpoint
from ahawam_ros.model.flash import flash_distill_step, make_student
from ahawam_ros.model.sample_builder import collate_samples
import numpy as np
import torch

STUDENT_STEPS = (1, 2, 4)  # the grids the 16-step teacher trajectory contains


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='ahawam distill', description=__doc__.splitlines()[1])
    parser.add_argument('--checkpoint', required=True, help='the trained teacher checkpoint')
    parser.add_argument('--data', required=True, help='directory of demonstration bags')
    parser.add_argument('--mapping', default=None, help="YAML topic mapping of a robot's bags")
    parser.add_argument('--resize-images', action='store_true',
                        help="resize frames to the model's view size")
    parser.add_argument('--student-steps', type=int, default=2, choices=STUDENT_STEPS,
                        help='Euler steps of the student (default: 2)')
    parser.add_argument('--steps', type=int, default=2000, help='optimiser steps (2000)')
    parser.add_argument('--batch-size', type=int, default=8, help='samples per step (8)')
    parser.add_argument('--lr', type=float, default=1e-4, help='Adam learning rate (1e-4)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--log-every', type=int, default=50)
    parser.add_argument('--out', required=True, help='where the student checkpoint goes')
    return parser


def distill(teacher_path: str, data: DataConfig, out: Path, student_steps: int, steps: int,
            batch_size: int, lr: float, seed: int = 0, log_every: int = 50) -> Path:
    """Distil a student from `teacher_path` on the bags of `data`; return its checkpoint."""
    teacher, info = load_checkpoint(teacher_path)
    teacher.requires_grad_(False).eval()
    episodes, _ = load_episodes(data, teacher.config)
    dataset = PolicyDataset(episodes, teacher.config, seed)
    student = make_student(teacher, student_steps)
    optimizer = torch.optim.Adam(student.executor.parameters(), lr=lr)
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    for step in range(1, steps + 1):
        indices = rng.integers(0, len(dataset), batch_size)
        batch = collate_samples([dataset[int(i)] for i in indices])
        loss = flash_distill_step(student, teacher, optimizer, batch, generator=generator)
        if step % log_every == 0 or step == steps:
            print(f'distill step {step}/{steps}: loss {loss:.5f}', flush=True)
    extra = {k: v for k, v in info.configs.items() if k != 'model'}
    extra['distill'] = {'teacher': str(teacher_path), 'student_steps': student_steps,
                        'steps': steps, 'batch_size': batch_size, 'lr': lr, 'seed': seed}
    return save_checkpoint(out, student.eval(), info.step + steps, extra)


def main(argv: Optional[List[str]] = None) -> int:
    """Parse flags, distil, print where the student was saved; return the exit code."""
    args = _parser().parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or not args.lr > 0:
        print('ahawam distill: --steps and --batch-size must be >= 1, --lr > 0', file=sys.stderr)
        return 2
    data = DataConfig(bags=args.data, mapping=args.mapping, resize_images=args.resize_images)
    try:
        path = distill(args.checkpoint, data, Path(args.out), args.student_steps, args.steps,
                       args.batch_size, args.lr, args.seed, args.log_every)
    except (ValueError, FileNotFoundError) as error:
        print(f'ahawam distill: {error}', file=sys.stderr)
        return 2
    print(f'student ({args.student_steps} Euler steps) saved to {path}')
    return 0
