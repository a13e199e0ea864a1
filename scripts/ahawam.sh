#!/usr/bin/env bash
# The two commands of the README, from a fresh clone:
#   scripts/ahawam.sh demo   set up (if needed), then run the system on the embedded default
#   scripts/ahawam.sh test   set up (if needed), then run the test suite
# Also: `setup` (venv + colcon build only), `exec CMD...` (run CMD in the environment).
# Set-up is idempotent: the venv is reinstalled only when requirements/lock.txt changes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Outside the clone: CMake refuses exported include paths (numpy's) inside the source tree.
VENV="${AHAWAM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ahawam_ros/venv}"
PYTHON="${AHAWAM_PYTHON:-python3}"

log() { printf '[ahawam] %s\n' "$*" >&2; }

setup_venv() {
  local want have=''
  want="$(sha256sum "$ROOT/requirements/lock.txt" | cut -d' ' -f1)"
  [ -f "$VENV/.ahawam-lock" ] && have="$(cat "$VENV/.ahawam-lock")"
  if [ -x "$VENV/bin/python" ] && [ "$want" = "$have" ]; then
    return
  fi
  log "creating the virtual environment in $VENV (pinned: requirements/lock.txt)"
  [ -x "$VENV/bin/python" ] || { mkdir -p "$(dirname "$VENV")" && "$PYTHON" -m venv "$VENV"; }
  # (this machine's pip configuration warns about every package it looks up: filtered)
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$ROOT/requirements/lock.txt" 2> >(grep -v 'is ignored: it is neither' >&2)
  echo "$want" > "$VENV/.ahawam-lock"
}

build() {
  log 'building the package with colcon (messages + Python sources)'
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  (cd "$ROOT" && colcon --log-base "$ROOT/log" build --base-paths "$ROOT" \
    --build-base "$ROOT/build" --install-base "$ROOT/install" --symlink-install \
    --event-handlers console_direct- --cmake-args -DBUILD_TESTING=OFF >/dev/null \
    2> >(grep -v "doesn't contain any 'local_setup" >&2)) || {
    log "colcon build failed; see $ROOT/log/latest_build"; exit 1; }
}

enter_env() {
  # shellcheck disable=SC1091
  source "$ROOT/scripts/env.sh"
}

setup() { setup_venv; build; }

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  setup) setup ;;
  demo) setup; enter_env; exec ahawam demo "$@" ;;
  test) setup; enter_env; cd "$ROOT"; exec python -m pytest test "$@" ;;
  exec) enter_env; exec "$@" ;;
  *) echo "usage: $0 {demo|test|setup|exec CMD...}" >&2; exit 2 ;;
esac
