"""AHA-WAM, an asynchronous world-action policy, on ROS 2 bimanual robots."""

# Where the package is built with colcon, the generated message modules (ahawam_ros.msg)
# live in the install tree, not in this source tree; extending __path__ lets
# `import ahawam_ros.msg` work when this source tree shadows the installed copy.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = '0.1.0'
