"""
Route the ROS-free core's Python logging (`ahawam_ros.*` loggers) into ROS logging.

The runtime reports a failing model or a failing publish through `logging` (it must not import
rclpy); in a node process those records belong with the nodes' own: on the console in ROS
format, with ROS severities, and in the ROS log files. `bridge_core_logging()` installs one
handler on the `ahawam_ros` logger.
"""

import logging

from rclpy.logging import get_logger

CORE_LOGGER = 'ahawam_ros'


class RosLogHandler(logging.Handler):
    """Forwards Python log records to the rclpy logger of the same name."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            logger = get_logger(record.name)
            # One call site per severity: rclpy refuses a call site that changes severity.
            if record.levelno >= logging.ERROR:
                logger.error(text)
            elif record.levelno >= logging.WARNING:
                logger.warning(text)
            else:
                logger.info(text)
        except Exception:  # noqa: B902 - logging must never raise into the caller
            self.handleError(record)


def bridge_core_logging(level: int = logging.INFO) -> None:
    """Install `RosLogHandler` on the core's logger once (idempotent)."""
    core = logging.getLogger(CORE_LOGGER)
    if not any(isinstance(h, RosLogHandler) for h in core.handlers):
        core.addHandler(RosLogHandler())
    core.setLevel(level)
    core.propagate = False  # printed once, by ROS
