"""
`ahawam train`: train AHA-WAM on a directory of demonstration bags.

    ahawam train --data DIR --preset small --out OUT [--steps N --ae-steps N ...]
    ahawam train --data DIR --mapping config/mappings/aloha_interbotix.yaml --resize-images ...
    ahawam train --resume OUT            # continue the run in OUT where it stopped
    torchrun --nproc-per-node 2 -m ahawam_ros.train --data DIR ...   # data parallel

A resumed run takes its settings from the checkpoint; flags given with --resume override them
(only those that do not change the schedule are useful there: --num-workers, --device,
--checkpoint-every, --log-every, --out).
"""

import argparse
import json
import sys
from typing import Any, Dict, List, Optional

from ahawam_ros.data.dataset import DataConfig
from ahawam_ros.model.config import GRASP_TARGETS
from ahawam_ros.model.overrides import apply_overrides, parse_assignments
from ahawam_ros.model.presets import get_preset, PRESETS
from ahawam_ros.train.config import DEVICES, PRECISIONS, STRATEGIES, TrainConfig
from ahawam_ros.train.distributed import shutdown_distributed
from ahawam_ros.train.state import load_trainer_state, resolve_resume


# flag destination -> DataConfig field (the rest are TrainConfig fields)
DATA_FLAGS = {'data': 'bags', 'cache_dir': 'cache_dir', 'features': 'feature_preset',
              'mapping': 'mapping', 'resize_images': 'resize_images',
              'start_stride': 'start_stride'}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='ahawam train', description=__doc__.strip().splitlines()[0],
        argument_default=argparse.SUPPRESS)  # only given flags override config / checkpoint
    defaults = TrainConfig(data=DataConfig(bags='DIR'))

    def add(flag: str, text: str, **kwargs: Any) -> None:
        value = getattr(defaults, flag[2:].replace('-', '_'), None)
        if isinstance(value, (int, float, str)) and 'default' not in text:
            text = f'{text} (default: {value})'
        parser.add_argument(flag, help=text, **kwargs)

    add('--data', 'directory of rosbag2 demonstration bags (required)', metavar='DIR')
    add('--cache-dir', 'decoded-episode cache (default: DIR/.ahawam_cache)', metavar='DIR')
    add('--features', "FeatureConfig preset (default: each bag's own)", metavar='PRESET')
    add('--mapping', "YAML topic and joint mapping of a robot's bags, e.g. "
        'config/mappings/aloha_interbotix.yaml', metavar='FILE')
    add('--resize-images', "resize frames to the model's view size", action='store_true')
    add('--start-stride', 'control steps between sample starts (default: 1)', type=int)
    add('--preset', f'model preset, one of {sorted(PRESETS)}')
    add('--out', 'output directory', metavar='DIR')
    add('--steps', 'policy-stage optimiser steps', type=int)
    add('--ae-steps', 'autoencoder-stage optimiser steps', type=int)
    add('--autoencoder', 'trained autoencoder checkpoint (skips stage 1)', metavar='DIR')
    add('--batch-size', 'global batch size, split over ranks', type=int)
    add('--lr', 'peak learning rate of the policy stage', type=float)
    add('--ae-lr', 'peak learning rate of the autoencoder stage', type=float)
    add('--weight-decay', 'AdamW weight decay', type=float)
    add('--seed', 'seed of initialisation, data order and noise', type=int)
    add('--num-workers', 'DataLoader workers per rank', type=int)
    add('--checkpoint-every', 'steps between checkpoints', type=int)
    add('--log-every', 'steps between log lines', type=int)
    add('--device', 'where to train', choices=DEVICES)
    add('--precision', 'bf16 autocasts the forward passes', choices=PRECISIONS)
    add('--executor-steps', 'stage 3: executor steps on the frozen planner (default: 0)',
        type=int)
    add('--executor-batch-size', 'stage 3: chunks per batch', type=int)
    add('--executor-lr', 'stage 3: peak learning rate', type=float)
    add('--executor-anchor-stride', 'stage 3: steps between the kept planner frames', type=int)
    add('--executor-early-fraction', 'stage 3: share of chunks drawn from the approach',
        type=float)
    add('--executor-early-steps', 'stage 3: where the approach ends (control steps)', type=int)
    add('--executor-data', "stage 3: more demonstration bags, trained on beside --data's",
        metavar='DIR')
    add('--object-loss-weight', "weight of the object-position target (a simulator's "
        "privileged state; 0 trains on what a robot records; default: the preset's)",
        type=float)
    add('--grasp-loss-weight', 'weight of the grasp-point target taken in hindsight from '
        "joints and commands (any robot's data; needs --object-loss-weight 0 where the preset "
        "has an object target; default: the preset's)", type=float)
    add('--grasp-target', 'which grasp points: first (the object the first gripper to close '
        'picks up) or each (every object a gripper picks up, a slot per arm; default: the '
        "preset's)", choices=GRASP_TARGETS)
    add('--model-set', "change a field of the preset's model config, NAME=VALUE with NAME "
        "dotted as in the checkpoint's config.json (repeatable; e.g. "
        'executor.context_adapter=false, executor.width=128)', action='append',
        metavar='NAME=VALUE')
    add('--strategy', 'joint stage over ranks: ddp (a replica each) or fsdp (sharded)',
        choices=STRATEGIES)
    add('--activation-checkpointing', "recompute each DiT block's activations in backward",
        action='store_true')
    add('--plan', 'print the memory plan (per rank: weights, gradients, optimiser, '
        'activations; which strategy fits) for --preset, --batch-size, --precision and '
        'the sizes below, then exit', action='store_true')
    add('--world-size', '--plan: ranks (default: 1)', type=int)
    add('--device-memory-gib', "--plan: memory per rank (default: this machine's GPU, else "
        'its available RAM)', type=float)
    add('--resume', 'checkpoint or output directory to continue from', metavar='DIR')
    return parser


def build_config(args: Dict[str, Any], base: Optional[Dict[str, Any]] = None) -> TrainConfig:
    """Merge parsed flags `args` into `base` (a TrainConfig dict, default: TrainConfig())."""
    values = json.loads(json.dumps(base)) if base else TrainConfig(
        data=DataConfig(bags=args.get('data', 'data'))).to_dict()
    for flag, value in args.items():
        if flag in DATA_FLAGS:
            values['data'][DATA_FLAGS[flag]] = value
        elif flag == 'model_set':
            values['model_overrides'] = {**values.get('model_overrides', {}),
                                         **parse_assignments(value)}
        elif flag != 'resume':
            values[flag] = value
    return TrainConfig.from_dict(values)


def print_plan(args: Dict[str, Any]) -> int:
    """Print the memory plan of the flags (`train/memory_plan.py`); return the exit code."""
    from ahawam_ros.train import memory_plan  # torch: after the flags are parsed
    defaults = TrainConfig(data=DataConfig(bags='DIR'))
    preset, batch = args.get('preset', defaults.preset), args.get('batch_size',
                                                                  defaults.batch_size)
    precision, world = args.get('precision', defaults.precision), args.get('world_size', 1)
    try:
        config = apply_overrides(get_preset(preset), parse_assignments(args.get('model_set', [])))
        counts = memory_plan.count_parameters(config)
        memory = (args['device_memory_gib'] * memory_plan.GIB if 'device_memory_gib' in args
                  else memory_plan.device_memory_bytes(args.get('device', defaults.device)))
        rows = memory_plan.plan(config, counts, batch, world, precision)
    except ValueError as exc:
        print(f'ahawam train: {exc}', file=sys.stderr)
        return 2
    print(memory_plan.format_plan(config, counts, rows, batch, world, memory, precision))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Parse flags, train, print where the policy was saved; return the exit code."""
    args = vars(_parser().parse_args(argv))
    if args.pop('plan', False):
        return print_plan(args)
    for flag in ('world_size', 'device_memory_gib'):
        if flag in args:
            print(f'ahawam train: --{flag.replace("_", "-")} is a --plan option', file=sys.stderr)
            return 2
    resume = args.get('resume')
    try:
        if resume is None and 'data' not in args:
            raise ValueError('--data DIR is required (or --resume DIR)')
        if resume is not None and 'model_set' in args:
            raise ValueError('--model-set with --resume: a resumed run keeps the model it '
                             'saved; --model-set starts a new run')
        base = load_trainer_state(resolve_resume(resume))['train_config'] if resume else None
        config = build_config(args, base)
    except (ValueError, FileNotFoundError) as exc:
        print(f'ahawam train: {exc}', file=sys.stderr)
        return 2
    from ahawam_ros.train.trainer import Trainer  # torch-heavy: after the flags are valid
    try:
        try:
            trainer = Trainer(config)  # loads the data: bad bags fail here, by name
        except (ValueError, FileNotFoundError, MemoryError) as exc:
            print(f'ahawam train: {exc}', file=sys.stderr)
            return 2
        final = trainer.run(resume)
        if trainer.info.is_main:
            print(f'policy saved to {final}')
    finally:
        shutdown_distributed()
    return 0
