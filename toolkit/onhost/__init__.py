"""Small Python programs the toolkit runs on a host: the health check (`health_check.py`),
running a command in the app's environment (`env_exec.py`, which reads shared/.env with
`envfile.py`, the toolkit's one .env reader) and the import check (`import_check.py`). Each is a
real file, unit-tested here (tests/toolkit/test_onhost.py), importing only the standard library
and each other.

How they reach the host: `program(name)` returns the file's source, with the helpers it imports
put in front as modules, and the caller runs it with `python3 -c SOURCE ARGS`. Nothing is
uploaded, so `invoke status` or `restart` on a host deployed by an older toolkit works the same,
no file on the host can be stale, and it costs no extra round trip. The source goes in the
command line rather than on stdin because these programs are chained (env_exec execs the import
check) and the app's own commands keep stdin. A helper imports another by its bare name
(`import envfile`): as a file run from this folder that is the file next to it, and in a
`program()` the bundled module.
"""

from __future__ import annotations

import ast
from pathlib import Path

HERE = Path(__file__).resolve().parent


def source(name: str) -> str:
    return (HERE / f"{name}.py").read_text()


def _imports(name: str) -> list[str]:
    """The helpers of this folder that `name` imports (by `import NAME`)."""
    tree = ast.parse(source(name))
    found = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    return [n for n in found if (HERE / f"{n}.py").is_file() and n != "__init__"]


def program(name: str) -> str:
    """The source of helper `name`, runnable on its own with `python3 -c` (its helpers bundled)."""
    lines = []
    for dep in _imports(name):
        lines.append(f"import sys, types; _m = sys.modules[{dep!r}] = types.ModuleType({dep!r}); "
                     f"exec(compile({source(dep)!r}, {dep + '.py'!r}, 'exec'), _m.__dict__)")
    # The helper itself is compiled under its file name too, so a traceback names its lines.
    lines.append(f"exec(compile({source(name)!r}, {name + '.py'!r}, 'exec'))")
    return "\n".join(lines)
