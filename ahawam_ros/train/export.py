"""
`ahawam export`: package a trained policy checkpoint for shipping (half-precision weights).

    ahawam export outputs/train/policy ahawam_ros/checkpoints/default --fp16

Copies the configs, normalisation statistics and step; the weights are stored in fp16 when
asked (half the size; loading casts them back to float32). Prints the size on disk.
"""

import argparse
from pathlib import Path
import shutil
from typing import List, Optional

from ahawam_ros.model.checkpoint import load_checkpoint, save_checkpoint
import torch


def export_checkpoint(source: Path, target: Path, fp16: bool) -> int:
    """Write `source` as a fresh checkpoint at `target`; return its size in bytes."""
    model, info = load_checkpoint(source)
    extra = {k: v for k, v in info.configs.items() if k != 'model'}
    staging = target.with_name(target.name + '.partial')
    if staging.exists():
        shutil.rmtree(staging)
    save_checkpoint(staging, model, info.step, extra,
                    weights_dtype=torch.float16 if fp16 else None)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)  # never a half-written checkpoint at `target`
    return sum(f.stat().st_size for f in target.iterdir())


def main(argv: Optional[List[str]] = None) -> int:
    """Parse arguments and export."""
    parser = argparse.ArgumentParser(prog='ahawam export', description=__doc__.splitlines()[1])
    parser.add_argument('source', type=Path, help='trained policy checkpoint directory')
    parser.add_argument('target', type=Path, help='directory to write (replaced)')
    parser.add_argument('--fp16', action='store_true', help='store weights in half precision')
    args = parser.parse_args(argv)
    size = export_checkpoint(args.source, args.target, args.fp16)
    print(f'wrote {args.target} ({size / 1e6:.1f} MB)')
    return 0
