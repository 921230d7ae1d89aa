"""What pip installs into an app's venv, read locally from the file that declares it.

    choose(app_dir) -> str               the file to use when deploy.toml names none:
                                         requirements.txt, else pylock.toml, uv.lock, pyproject.toml
    load(app_dir, name) -> Requirements  that file as pip requirements (RequirementsError if it
                                         cannot be turned into them, saying what to do)

- ``requirements.txt`` (any name not below): passed to pip as it is (``-r``, so its own ``-r``,
  ``-c`` and ``./pkg`` lines keep working); ``--hash=`` in it means ``--require-hashes``.
- ``pyproject.toml``: its PEP 621 ``[project] dependencies``. The project itself is not
  installed: a venv is shared by every release with the same dependencies (venvs/HASH), so a copy
  of the app's code in it would go stale on the next release, and an editable install would
  point into the private build folder. A ``src/`` layout is put on the path instead
  (``app_path``: release_commands.venv_script and as_app).
- ``uv.lock`` and ``pylock.toml`` (PEP 751, also ``pylock.NAME.toml``): every package the app
  needs at run time, pinned, with the hashes the lock records: installed with ``--require-hashes``,
  so a file that is not the one locked is refused by pip. No uv is needed: the TOML is read here.
  For uv.lock that is the project's ``dependencies`` followed through the lock, with the extras
  they ask for (``celery[redis]``), not the project's dev groups or its own extras; each package's
  environment marker is the ``or`` of the paths reaching it.

The converted list goes into the release as ``GENERATED`` (packaging.package_source) and is what
pip reads; its text is also what names the venv (packaging.venv_hash).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GENERATED", "Requirements", "RequirementsError", "app_path", "choose", "load"]

GENERATED = ".pronghorn-requirements.txt"
DEFAULT = "requirements.txt"
# Tried in this order when deploy.toml does not name the file.
FALLBACKS = ("pylock.toml", "uv.lock", "pyproject.toml")
PIP_HASHES = ("sha256", "sha384", "sha512")  # the algorithms pip's --hash accepts
MAX_MARKERS = 8
EXPORT_HINT = "uv export --format requirements-txt --no-dev -o requirements.txt"


class RequirementsError(Exception):
    """The dependency file cannot be turned into pip requirements; the text says what to do."""


@dataclass(frozen=True)
class Requirements:
    source: str           # the file named in deploy.toml (or chosen), relative to the app
    text: bytes           # pip requirements; b"" when there are none
    generated: bool       # True: pip reads GENERATED, False: pip reads `source` itself
    hashed: bool          # every requirement pins hashes: pip runs with --require-hashes

    @property
    def pip_file(self) -> str:
        """The file pip's -r reads, relative to the release."""
        return GENERATED if self.generated else self.source


def choose(app_dir: str | Path) -> str:
    """requirements.txt when there is one (the long-standing default), else a lock file, else
    pyproject.toml; requirements.txt also when there is none of them (no dependencies)."""
    app_dir = Path(app_dir)
    if (app_dir / DEFAULT).is_file():
        return DEFAULT
    for name in FALLBACKS:
        if (app_dir / name).is_file():
            return name
    return DEFAULT


def kind(name: str) -> str:
    """"pyproject", "uv", "pylock" or "pip" for a file name; RequirementsError for a TOML file
    that is none of the known ones."""
    base = Path(name).name
    if base == "pyproject.toml":
        return "pyproject"
    if base == "uv.lock":
        return "uv"
    if re.fullmatch(r"pylock(\.[^.]+)?\.toml", base):
        return "pylock"
    if base.endswith(".toml"):
        raise RequirementsError(f"{name} is a TOML file but not pyproject.toml, uv.lock or pylock.toml "
                                f"(PEP 751, pylock.NAME.toml): pip cannot read it as requirements; name one "
                                f"of those, or a requirements.txt")
    return "pip"


def load(app_dir: str | Path, name: str) -> Requirements:
    """The requirements declared by APP_DIR/NAME (no file: none)."""
    path = Path(app_dir) / name
    how = kind(name)
    if not path.is_file():
        return Requirements(name, b"", generated=how != "pip", hashed=False)
    if how == "pip":
        text = path.read_bytes()
        return Requirements(name, text, generated=False, hashed=b"--hash=" in text)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RequirementsError(f"{name} is not valid TOML: {exc}") from None
    lines = {"pyproject": _pyproject, "uv": _uv_lock, "pylock": _pylock}[how](data, name)
    text = "".join(line + "\n" for line in lines).encode()
    return Requirements(name, text, generated=True, hashed=how != "pyproject" and bool(lines))


def app_path(app_dir: str | Path) -> str:
    """"src" when the app's code lives in a src/ layout (a package or module under src/), else ""."""
    src = Path(app_dir) / "src"
    if src.is_dir() and (any(src.glob("*/__init__.py")) or any(src.glob("*.py"))):
        return "src"
    return ""


# -- pyproject.toml ----------------------------------------------------------------------------

def _pyproject(data: dict, name: str) -> list[str]:
    project = data.get("project")
    if not isinstance(project, dict):
        tool = data.get("tool", {})
        which = next((t for t in ("poetry", "pdm", "hatch") if t in tool), "")
        where = f" (its dependencies are in [tool.{which}], which pip does not read)" if which else ""
        raise RequirementsError(f"{name} has no [project] table{where}; list the dependencies in "
                                f"[project] dependencies (PEP 621), or export them to requirements.txt "
                                f"and set [app] requirements = \"requirements.txt\"")
    if "dependencies" in project.get("dynamic", []):
        raise RequirementsError(f"{name} declares its dependencies as dynamic (computed by the build "
                                f"backend), so they cannot be read from the file; list them in [project] "
                                f"dependencies, or write them to requirements.txt")
    deps = project.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise RequirementsError(f"{name}: [project] dependencies must be a list of strings "
                                f"such as \"flask>=3.0\"")
    return [d.strip() for d in deps if d.strip()]


# -- PEP 751 pylock.toml ------------------------------------------------------------------------

def _pylock(data: dict, name: str) -> list[str]:
    if not str(data.get("lock-version", "")).startswith("1."):
        raise RequirementsError(f"{name}: lock-version is {data.get('lock-version')!r}; only PEP 751 "
                                f"version 1.x lock files are read")
    lines = []
    for pkg in data.get("packages", []):
        pname, version = pkg.get("name", "?"), pkg.get("version")
        marker = pkg.get("marker", "")
        if re.search(r"\b(extras|dependency_groups)\b", marker):
            raise RequirementsError(f"{name}: {pname} is installed only for some extras or dependency "
                                    f"groups ({marker}); export the lock for the groups to deploy "
                                    f"(uv export --format pylock.toml --no-dev)")
        if "directory" in pkg or "vcs" in pkg or "archive" in pkg:
            if pkg.get("directory", {}).get("path") in (".", "./"):
                continue  # the project itself: its code is in the release
            raise RequirementsError(f"{name}: {pname} comes from a folder, a VCS or an archive URL, not "
                                    f"from an index, which this reader does not install; publish it to an "
                                    f"index or vendor it into the app")
        files = list(pkg.get("wheels", [])) + ([pkg["sdist"]] if "sdist" in pkg else [])
        hashes = sorted({h for f in files for h in _hashes(f)})
        if not version or not hashes:
            raise RequirementsError(f"{name}: {pname} has no version or no hashes; lock it again with "
                                    f"hashes (a PEP 751 lock records them for every file)")
        lines.append(_line(pname, version, marker, hashes))
    return lines


def _hashes(entry: dict) -> list[str]:
    table = entry.get("hashes", {}) if isinstance(entry, dict) else {}
    return [f"{algo}:{value}" for algo, value in table.items() if algo in PIP_HASHES]


def _line(name: str, version: str, marker: str, hashes: list[str]) -> str:
    head = f"{name}=={version}" + (f" ; {marker}" if marker else "")
    return " \\\n    ".join([head] + [f"--hash={h}" for h in hashes])


# -- uv.lock ------------------------------------------------------------------------------------

def _uv_lock(data: dict, name: str) -> list[str]:
    packages = data.get("package", [])
    by_name: dict[str, dict] = {}
    for pkg in packages:
        pname = _norm(pkg.get("name", ""))
        if pname in by_name:
            raise RequirementsError(f"{name} locks several versions of {pkg.get('name')} (a resolution forked "
                                    f"by environment markers), which this reader does not follow; export "
                                    f"it: {EXPORT_HINT}, and deploy that")
        by_name[pname] = pkg
    roots = [p for p in packages if _is_project(p)]
    if len(roots) != 1:
        raise RequirementsError(f"{name} has {len(roots)} local projects (editable/virtual \".\"), one was "
                                f"expected; export the one to deploy: {EXPORT_HINT}")
    # marker per package: None = unconditional; else the list of alternative markers reaching it
    markers: dict[str, list[str] | None] = {}
    followed = set()  # (package, marker, extra) whose dependencies are queued already
    todo = [(dep, "") for dep in roots[0].get("dependencies", [])]
    while todo:
        dep, via = todo.pop()
        pname = _norm(dep.get("name", ""))
        pkg = by_name.get(pname)
        if pkg is None:
            raise RequirementsError(f"{name}: {dep.get('name')} is a dependency but has no [[package]] entry; "
                                    f"run `uv lock` again")
        marker = _and(via, dep.get("marker", ""))
        known = markers.get(pname, [])
        if known is not None:
            # Past a few alternatives the expression only grows: the package is installed everywhere.
            if not marker or len(known) >= MAX_MARKERS:
                markers[pname] = None
            elif marker not in known:
                markers[pname] = known + [marker]
        if markers[pname] is None:
            marker = ""  # installed everywhere: so are its dependencies (and a cycle stops here)
        # its own dependencies, and those of each extra asked for (celery[redis] -> redis)
        for extra in ("", *dep.get("extra", ())):
            if (pname, marker, extra) in followed:
                continue
            followed.add((pname, marker, extra))
            subs = pkg.get("optional-dependencies", {}).get(extra, []) if extra else pkg.get("dependencies", [])
            todo.extend((sub, marker) for sub in subs)
    lines = []
    for pname in sorted(markers):
        pkg = by_name[pname]
        source = pkg.get("source", {})
        if not ("registry" in source or "url" in source):
            raise RequirementsError(f"{name}: {pkg['name']} comes from {source}, not from an index, so it has no "
                                    f"hash to check; publish it to an index or vendor it into the app")
        files = list(pkg.get("wheels", [])) + ([pkg["sdist"]] if "sdist" in pkg else [])
        hashes = sorted({f["hash"] for f in files if "hash" in f and f["hash"].split(":")[0] in PIP_HASHES})
        if not hashes:
            raise RequirementsError(f"{name}: {pkg['name']} has no file hashes; run `uv lock` again")
        alternatives = markers[pname]
        marker = "" if alternatives is None else " or ".join(f"({m})" for m in alternatives)
        if alternatives is not None and len(alternatives) == 1:
            marker = alternatives[0]
        lines.append(_line(pkg["name"], pkg["version"], marker, hashes))
    return lines


def _is_project(pkg: dict) -> bool:
    source = pkg.get("source", {})
    return any(source.get(k) in (".", "./") for k in ("editable", "virtual", "directory"))


def _and(a: str, b: str) -> str:
    if not a or not b:
        return a or b
    return f"({a}) and ({b})"


def _norm(name: str) -> str:
    """PEP 503 normalised name: how uv.lock's dependency entries refer to packages."""
    return re.sub(r"[-_.]+", "-", name).lower()
