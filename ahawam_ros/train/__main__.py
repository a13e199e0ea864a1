"""`python -m ahawam_ros.train`: the same as `ahawam train`."""

import sys

from ahawam_ros.train.cli import main

if __name__ == '__main__':
    sys.exit(main())
