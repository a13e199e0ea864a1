#!/usr/bin/env bash
# The two-task recipe, nothing privileged, as one command: scripted demonstrations of both
# ALOHA tasks, then `ahawam train` (autoencoder, joint stage, executor stage) with the grasp
# points in hindsight as the position target (no episode.json object positions are read).
#
#   scripts/train_recipe.sh [WORK [TRAIN FLAGS...]]     # WORK default: outputs/recipe
#
# TRAIN FLAGS are added to the `ahawam train` command of a new run, for a variant of the recipe
# (an ablation: `--model-set executor.context_adapter=false`, `--executor-early-fraction 0`).
# A variant may share the demonstrations of another work directory: link WORK/demos to them
# (the decoded episodes are then shared too).
#
# Every step is kept under WORK and skipped when it is done, so running the command again
# after an interruption continues where it stopped (the recording of an unfinished seed
# range is redone; training continues from its last checkpoint with `ahawam train --resume`).
# The result is WORK/run/policy; `ahawam export WORK/run/policy DST --fp16` packages it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mkdir -p "${1:-$ROOT/outputs/recipe}" && cd "${1:-$ROOT/outputs/recipe}" && pwd)"
[ $# -gt 0 ] && shift
EXTRA=("$@")
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"
log() { printf '[recipe %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# One seed range of one task into DIR/<task>_<first>; a marker says it finished.
# Every second seed replays its commands with DART noise (the recorded labels stay clean).
demos() {  # task first count dir [record-demos flags...]
  local task="$1" first="$2" count="$3" dir="$4"
  local out="$dir/${task}_$first"
  shift 4
  [ -f "$out/.complete" ] && return
  rm -rf "$out" && mkdir -p "$dir"
  ahawam record-demos --task "$task" --seed "$first" --episodes "$count" \
    --action-noise 0.03 --noisy-every 2 --out "$out" "$@" > "$out.log" 2>&1
  touch "$out/.complete"
}

# Waits for both background recordings; fails when either did (a bare `wait` would not).
both() {  # pid pid
  local rc=0
  wait "$1" || rc=1
  wait "$2" || rc=1
  return "$rc"
}

start=$SECONDS
log "demonstrations into $WORK/demos (two recordings at a time, one per core)"
# Seeds 0..99 of each task: every stage. Seeds 100..299: the executor stage only. Evaluation
# seeds start at 1000. (TransferCube seeds placed over wider boxes, `--placement-margin`, cost
# the executor stage 10 of 100 episodes: TRAINING.md.)
J="$WORK/demos/joint" M="$WORK/demos/more"
demos transfer_cube 0 100 "$J" & a=$!; demos insertion 0 100 "$J" & both $a $!
demos transfer_cube 100 100 "$M" & a=$!; demos insertion 100 100 "$M" & both $a $!
demos transfer_cube 200 100 "$M" & a=$!; demos insertion 200 100 "$M" & both $a $!
log "demonstrations done in $(( (SECONDS - start) / 60 )) min: \
$(find "$WORK/demos/joint" -name metadata.yaml | wc -l) for every stage, \
$(find "$WORK/demos/more" -name metadata.yaml | wc -l) more for the executor stage"

# Whether the run's policy is its last step (the joint stage's policy, written before the
# executor stage, is not).
finished() {
  python - "$WORK/run" <<'PY'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
try:
    step = json.loads((run / 'policy' / 'state.json').read_text())['step']
    config = json.loads((run / 'train_config.json').read_text())
except (OSError, KeyError, ValueError):
    sys.exit(1)
sys.exit(0 if step == config['steps'] + config['executor_steps'] else 1)
PY
}

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
if finished; then
  log "training: $WORK/run is finished"
elif [ -f "$WORK/run/latest" ]; then
  log "training: continuing $WORK/run"
  ahawam train --resume "$WORK/run"
else
  log "training into $WORK/run"
  ahawam train --data "$WORK/demos/joint" --executor-data "$WORK/demos/more" \
    --preset small --resize-images --out "$WORK/run" --seed 0 \
    --ae-steps 500 --steps 3000 --batch-size 16 --lr 4e-4 --checkpoint-every 250 \
    --executor-steps 25000 --executor-early-fraction 0.7 --executor-early-steps 48 \
    --object-loss-weight 0 --grasp-loss-weight 1 --grasp-target each "${EXTRA[@]}"
fi
log "done in $(( (SECONDS - start) / 60 )) min: $WORK/run/policy"
