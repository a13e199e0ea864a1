"""
Write requirements/lock.txt: exact versions of what pip installed in the current venv.

`pip freeze` also lists the egg-info metadata that ROS 2 wheels carry inside them (e.g.
`action_msgs`), which are not installable distributions; only distributions with pip's
INSTALLER record are kept. Run in the venv after changing requirements/*.txt.
"""

from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / 'requirements' / 'lock.txt'
HEADER = ('# Exact versions resolved from ros.txt core.txt sim.txt test.txt; installed by\n'
          '# scripts/ahawam.sh. Regenerate with scripts/freeze_lock.py inside the venv.\n')


def main() -> None:
    """Collect pip-installed distributions and write them sorted, one `name==version` a line."""
    pins = {}
    for dist in metadata.distributions():
        if (dist.read_text('INSTALLER') or '').strip() != 'pip' or dist.metadata['Name'] == 'pip':
            continue
        name = dist.metadata['Name']
        version = dist.version.split('+')[0]  # torch 2.13.0+cpu: the local wheel is 2.13.0
        pins[name.lower()] = f'{name}=={version}'
    LOCK.write_text(HEADER + '\n'.join(pins[key] for key in sorted(pins)) + '\n')
    print(f'wrote {len(pins)} pins to {LOCK}')


if __name__ == '__main__':
    main()
