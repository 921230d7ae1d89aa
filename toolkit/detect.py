"""Which framework an app uses and where its WSGI callable is, found by reading its files.

Used when deploy.toml does not say ``framework`` / ``wsgi``. Detection only *reads* source text
(it never imports the app: importing runs the app's code and needs its dependencies, which live
on the host, not here). The rules, in order:

- Django: ``manage.py`` naming a settings module (``DJANGO_SETTINGS_MODULE``, "PROJECT.settings")
  and ``PROJECT/wsgi.py`` next to it -> ``PROJECT.wsgi:application``.
- Flask: ``app.py``, ``wsgi.py``, ``main.py`` or ``application.py``, or a package's
  ``__init__.py`` (flat, ``PACKAGE/``, or in a ``src/`` layout, ``src/PACKAGE/``), with
  ``NAME = Flask(...)`` -> ``module:NAME``; or a ``def create_app(`` factory -> ``module:create_app()``.
  A package whose ``__init__.py`` re-exports the factory (``from .factory import create_app``)
  counts when flask is imported somewhere in the package. A ``src/`` package is importable on the
  host because the toolkit puts ``src`` on the path (lockfiles.app_path).
- Bottle: a ``bottle`` import and ``NAME = Bottle()`` or ``NAME = default_app()`` -> ``module:NAME``
  (module-level ``@route`` without a named app: DetectError saying which line to add).
- Anything else: DetectError telling the user to set ``wsgi = "module:app"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Detection", "DetectError", "detect_app"]

# Files tried, in this order, for Flask and Bottle apps.
CANDIDATE_MODULES = ("app.py", "wsgi.py", "main.py", "application.py", "server.py")

SETTINGS_RE = re.compile(r"""DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([\w.]+)['"]""")
FLASK_ASSIGN_RE = re.compile(r"^(\w+)\s*=\s*(?:flask\.)?Flask\(", re.M)
FACTORY_RE = re.compile(r"^def (create_app|make_app)\(", re.M)
BOTTLE_IMPORT_RE = re.compile(r"^\s*(import bottle|from bottle import)", re.M)
BOTTLE_ASSIGN_RE = re.compile(r"^(\w+)\s*=\s*(?:bottle\.)?Bottle\(", re.M)
BOTTLE_DEFAULT_RE = re.compile(r"^(\w+)\s*=\s*(?:bottle\.)?default_app\(", re.M)
FLASK_IMPORT_RE = re.compile(r"^\s*(import flask|from flask import)", re.M)
REEXPORT_RE = re.compile(r"^from \.[\w.]* import [^\n]*\b(create_app|make_app)\b", re.M)
NOT_APP_PACKAGES = ("tests", "test", "migrations", "docs")

HOW_TO_SET = ('set it in deploy.toml: [app] wsgi = "module:app" (the module file and the WSGI '
              'callable in it), and framework = "flask", "django", "bottle" or "wsgi"')


class DetectError(Exception):
    """The app's framework or WSGI entry could not be found; the message says what to set."""


@dataclass(frozen=True)
class Detection:
    framework: str          # "django" | "flask" | "bottle"
    wsgi: str               # "module:callable" or "module:factory()"
    settings: str = ""      # Django only: the settings module
    found_in: str = ""      # the file that decided it, for messages


def detect_app(app_dir: str | Path, framework: str | None = None) -> Detection:
    """Detect the app in APP_DIR; with ``framework`` given, look for that framework only."""
    app_dir = Path(app_dir)
    detectors = {"django": _detect_django, "flask": _detect_flask, "bottle": _detect_bottle}
    if framework in detectors:
        found = detectors[framework](app_dir)
        if found:
            return found
        raise DetectError(f"no {framework} WSGI app found in {app_dir}; {HOW_TO_SET}")
    for detector in detectors.values():
        found = detector(app_dir)
        if found:
            return found
    raise DetectError(f"could not tell which WSGI app to run in {app_dir} (looked for Django's "
                      f"manage.py, a Flask(...) or Bottle app or a create_app() factory in "
                      f"{', '.join(CANDIDATE_MODULES)} and in packages, also under src/); "
                      f"{HOW_TO_SET}")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _detect_django(app_dir: Path) -> Detection | None:
    manage = app_dir / "manage.py"
    if not manage.is_file():
        return None
    match = SETTINGS_RE.search(_read(manage))
    settings = match.group(1) if match else _find_settings_module(app_dir)
    if not settings:
        return None
    project = settings.split(".")[0]
    if not (app_dir / project / "wsgi.py").is_file():
        return None
    return Detection("django", f"{project}.wsgi:application", settings=settings, found_in="manage.py")


def _find_settings_module(app_dir: Path) -> str:
    """manage.py without the usual setdefault line: take the one PROJECT with settings.py + wsgi.py."""
    projects = sorted(p.parent.name for p in app_dir.glob("*/settings.py")
                      if (p.parent / "wsgi.py").is_file())
    return f"{projects[0]}.settings" if len(projects) == 1 else ""


def _candidate_files(app_dir: Path):
    """(module name, path) of the files a Flask/Bottle app usually lives in: the usual module
    names at the top, then packages (flat, then under src/), then the usual modules in src/."""
    for filename in CANDIDATE_MODULES:
        path = app_dir / filename
        if path.is_file():
            yield filename[:-3], path
    for folder in (app_dir, app_dir / "src"):
        for init in sorted(folder.glob("*/__init__.py")):
            if init.parent.name not in NOT_APP_PACKAGES:
                yield init.parent.name, init
    for filename in CANDIDATE_MODULES:
        path = app_dir / "src" / filename
        if path.is_file():
            yield filename[:-3], path


def _found_in(app_dir: Path, path: Path) -> str:
    return path.relative_to(app_dir).as_posix()


def _package_imports_flask(init: Path) -> bool:
    """A package's files import flask (its __init__ may only re-export a factory from them)."""
    return any(FLASK_IMPORT_RE.search(_read(p)) for p in sorted(init.parent.glob("*.py")))


def _detect_flask(app_dir: Path) -> Detection | None:
    for module, path in _candidate_files(app_dir):
        text = _read(path)
        if FLASK_IMPORT_RE.search(text):
            assigned = FLASK_ASSIGN_RE.search(text)
            if assigned:
                return Detection("flask", f"{module}:{assigned.group(1)}", found_in=_found_in(app_dir, path))
            factory = FACTORY_RE.search(text)
            if factory:
                return Detection("flask", f"{module}:{factory.group(1)}()", found_in=_found_in(app_dir, path))
        reexported = REEXPORT_RE.search(text) if path.name == "__init__.py" else None
        if reexported and _package_imports_flask(path):
            return Detection("flask", f"{module}:{reexported.group(1)}()", found_in=_found_in(app_dir, path))
    return None


def _detect_bottle(app_dir: Path) -> Detection | None:
    for module, path in _candidate_files(app_dir):
        text = _read(path)
        if not BOTTLE_IMPORT_RE.search(text):
            continue
        for regex in (BOTTLE_ASSIGN_RE, BOTTLE_DEFAULT_RE):
            assigned = regex.search(text)
            if assigned:
                return Detection("bottle", f"{module}:{assigned.group(1)}", found_in=_found_in(app_dir, path))
        if "default_app()" in text or re.search(r"^@(bottle\.)?(route|get|post)\(", text, re.M):
            # Module-level routes live on bottle's default app, which has no name in this module
            # that pronghorn could import; one line from the user fixes that.
            raise DetectError(f"{path.name} uses bottle's default app but gives it no name; add the line "
                              f"`app = bottle.default_app()` at its end (then wsgi = \"{module}:app\" "
                              f"is found), or {HOW_TO_SET}")
    return None
