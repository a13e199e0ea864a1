"""The folders import each other in one direction only, lazily or not (static scan)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / 'ahawam_ros'
# Modules at the package root and the generated messages: imported by anyone, import nothing.
LEAVES = {'robot', 'paths', 'images', 'kinematics', 'thread_policy', 'msg', 'srv', '__init__'}
# folder -> the folders it may import; a folder may not import one above it
ALLOWED = {
    'model': set(),
    'data': {'model'},
    'sim': {'data'},  # record_demos hands the expert's episodes to the bag writer
    'runtime': {'model', 'data'},
    'train': {'model', 'data'},
    'eval': {'runtime', 'model', 'data', 'sim'},
    'ros': {'runtime', 'model', 'data', 'sim'},
    'bench': {'eval', 'ros', 'runtime', 'train', 'model', 'data', 'sim'},
}
TOP = {'cli', 'info'}  # entry points: may import anything


def _imports(path: Path):
    """Yield every ahawam_ros module that `path` imports, at module level or inside a function."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == 'ahawam_ros':
                yield from (f'ahawam_ros.{alias.name}' for alias in node.names)
            elif node.module.startswith('ahawam_ros.'):
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith('ahawam_ros.'))


def _folder(parts) -> str:
    return parts[0] if len(parts) > 1 else Path(parts[0]).stem


def test_every_import_goes_down_the_folder_order():
    wrong = []
    for path in sorted(PACKAGE.rglob('*.py')):
        source = _folder(path.relative_to(PACKAGE).parts)
        if source in TOP or source in LEAVES and len(path.relative_to(PACKAGE).parts) == 1:
            continue
        for module in _imports(path):
            target = module.split('.')[1]
            if target == source or target in LEAVES:
                continue
            if target not in ALLOWED.get(source, set()):
                wrong.append(f'{path.relative_to(PACKAGE.parent)}: {source} -> {module}')
    assert not wrong, '\n'.join(wrong)


def test_the_table_has_no_cycle_and_names_every_folder():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / '__init__.py').exists()}
    assert folders - LEAVES <= set(ALLOWED) | {'checkpoints'}, folders
    done, visiting = set(), set()

    def visit(name):
        assert name not in visiting, f'import cycle through {name}'
        if name not in done:
            visiting.add(name)
            for below in ALLOWED[name]:
                visit(below)
            visiting.discard(name)
            done.add(name)
    for name in ALLOWED:
        visit(name)
