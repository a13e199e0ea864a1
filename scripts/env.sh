# Source me: `source scripts/env.sh` puts the venv and the colcon install on this shell's paths.
# (Created by `scripts/ahawam.sh setup`.)
_ahawam_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_ahawam_venv="${AHAWAM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ahawam_ros/venv}"
# shellcheck disable=SC1091
source "$_ahawam_venv/bin/activate"
export AMENT_PREFIX_PATH="$_ahawam_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$_ahawam_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
if [ -f "$_ahawam_root/install/setup.bash" ]; then
  # colcon's setup scripts read unset variables.
  _ahawam_nounset=$(set +o | grep nounset)
  set +u
  # shellcheck disable=SC1091
  source "$_ahawam_root/install/setup.bash"
  eval "$_ahawam_nounset"
fi
# Never let discovery leave this machine (ROS_LOCALHOST_ONLY is ignored by Kilted).
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
unset _ahawam_root _ahawam_venv _ahawam_nounset
