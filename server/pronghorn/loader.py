"""Find and import the WSGI application named on the command line.

Accepted forms of the app URI (gunicorn's):

    module                      the module's `application`, else its `app`
    module:name                 an attribute (dotted names allowed: module:api.wsgi_app)
    module:create_app()         a factory, called with no arguments
    module:create_app('x', n=1) a factory with literal arguments, read with ast (never eval)

Before importing, `--chdir` is entered and put on sys.path, then `--pythonpath` entries go in
front of it. The chdir path is kept as given (not resolved), so modules loaded from
`/srv/app/current` keep that path in their __file__ and each new worker re-enters the symlink:
a `current -> releases/N` switch is picked up by a reload.

Every failure is an AppImportError whose text names the module or attribute and what to check.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import os
import sys
import traceback
from typing import Any, Callable


class AppImportError(Exception):
    """The app could not be loaded; str(err) says what and what to check."""


def apply_paths(chdir: str | None, pythonpath: list[str]) -> None:
    """Enter --chdir and put it and --pythonpath at the front of sys.path (pythonpath first).

    Without --chdir the current directory goes on sys.path, as `python -m` would do: the
    console script's own directory is on sys.path instead, which is never where the app is.
    """
    if chdir:
        try:
            os.chdir(chdir)
        except OSError as err:
            raise AppImportError(f"--chdir {chdir}: {err.strerror}") from None
    base = chdir or os.getcwd()
    wanted = [os.path.abspath(p) for p in pythonpath] + [base]
    for path in reversed(wanted):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)


def load_app(cfg: Any) -> Callable:
    """cfg.app_uri (or cfg.paste) -> the WSGI callable, after applying cfg.chdir and cfg.pythonpath."""
    if getattr(cfg, "paste", None) and not getattr(cfg, "wsgi_app", None):
        apply_paths(cfg.chdir, cfg.pythonpath)
        return load_paste_app(cfg.paste, getattr(cfg, "raw_paste_global_conf", []))
    if not cfg.app_uri:
        raise AppImportError("no application given: name it, e.g. pronghorn myproject.wsgi:application")
    apply_paths(cfg.chdir, cfg.pythonpath)
    return import_app(cfg.app_uri)


def load_paste_app(spec: str, global_conf: list[str]) -> Callable:
    """--paste FILE[#name] (or config:FILE#name): the app of a PasteDeploy ini file, as gunicorn.

    PasteDeploy is optional: without it the error names the package to install.
    """
    try:
        from paste.deploy import loadapp
    except ImportError:
        raise AppImportError(f"--paste {spec}: the PasteDeploy package is not installed in this "
                             "Python (pip install PasteDeploy), or give the app as module:attr") from None
    path = spec[len("config:"):] if spec.startswith("config:") else spec
    path, _, name = path.partition("#")
    if not os.path.isfile(path):
        raise AppImportError(f"--paste {spec}: no such file {os.path.abspath(path)}")
    uri = "config:" + os.path.abspath(path) + ("#" + name if name else "")
    defaults = dict(item.split("=", 1) for item in global_conf)
    try:
        return loadapp(uri, global_conf=defaults)
    except Exception as err:
        raise AppImportError(f"--paste {spec}: {_last_line(err)}") from None


def import_app(uri: str) -> Callable:
    """Import the app named by uri (see the module docstring) and check it is callable."""
    module_name, _, expression = uri.partition(":")
    module_name = module_name.strip()
    if not module_name:
        raise AppImportError(f"{uri!r}: no module name before ':' (expected e.g. myproject.wsgi:application)")
    target = _parse_expression(uri, expression.strip()) if expression.strip() else None
    module = _import_module(module_name)

    if target is None:
        app = _default_app(module, module_name)
        shown = module_name
    else:
        names, call = target
        app = _get_attribute(module, module_name, names)
        shown = f"{module_name}:{'.'.join(names)}"
        if call is not None:
            app = _call_factory(app, shown, *call)
            shown += "()"
    if app is None:
        raise AppImportError(f"{uri!r} is None, not a WSGI application (did a factory forget to return the app?)")
    if not callable(app):
        raise AppImportError(
            f"{uri!r} is a {type(app).__name__}, not a WSGI application "
            "(expected a function or object taking (environ, start_response))"
        )
    return app


# A parsed "name.attr(args, kw=...)" : (['name', 'attr'], None) or (names, (args, kwargs)).
Target = tuple[list[str], "tuple[list[Any], dict[str, Any]] | None"]


def _parse_expression(uri: str, expression: str) -> Target:
    try:
        node = ast.parse(expression, mode="eval").body
    except SyntaxError:
        raise AppImportError(
            f"{uri!r}: cannot read {expression!r} (expected a name like app or a call like create_app())"
        ) from None
    call = None
    if isinstance(node, ast.Call):
        try:
            args = [ast.literal_eval(arg) for arg in node.args]
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
        except ValueError:
            raise AppImportError(
                f"{uri!r}: factory arguments must be literals (strings, numbers, True/False/None, "
                "lists, dicts), e.g. create_app('production', debug=False)"
            ) from None
        if any(kw.arg is None for kw in node.keywords):
            raise AppImportError(f"{uri!r}: **kwargs are not allowed in the factory call")
        call = (args, kwargs)
        node = node.func
    names = _dotted_names(node)
    if names is None:
        raise AppImportError(
            f"{uri!r}: {expression!r} is not a name or a call of one (expected e.g. app or create_app())"
        )
    return names, call


def _dotted_names(node: ast.AST) -> list[str] | None:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        inner = _dotted_names(node.value)
        return None if inner is None else inner + [node.attr]
    return None


def _import_module(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            head = ", ".join(repr(p) for p in sys.path[:3])
            raise AppImportError(
                f"no module named {module_name!r} (looked in sys.path: {head}, ...); "
                "check the name, --chdir and --pythonpath"
            ) from None
        raise AppImportError(
            f"importing {module_name!r} failed: {_last_line(err)} {_where(err)}; "
            "is that package installed in this virtualenv?"
        ) from None
    except SyntaxError as err:
        raise AppImportError(
            f"importing {module_name!r} failed: syntax error in {err.filename}, line {err.lineno}: {err.msg}"
        ) from None
    except Exception as err:
        raise AppImportError(f"importing {module_name!r} failed: {_last_line(err)} {_where(err)}".rstrip()) from None


def _default_app(module, module_name: str):
    for name in ("application", "app"):
        if hasattr(module, name):
            return getattr(module, name)
    raise AppImportError(
        f"module {module_name!r} has no 'application' or 'app' "
        f"(name the app, e.g. {module_name}:my_app{_callables_hint(module)})"
    )


def _get_attribute(module, module_name: str, names: list[str]):
    obj = module
    for depth, name in enumerate(names):
        if not hasattr(obj, name):
            owner = module_name if depth == 0 else f"{module_name}:{'.'.join(names[:depth])}"
            candidates = [n for n in dir(obj) if not n.startswith("__")]
            close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else _callables_hint(obj, prefix="; ")
            raise AppImportError(f"{owner!r} has no attribute {name!r}{hint}")
        obj = getattr(obj, name)
    return obj


def _callables_hint(obj, prefix: str = "; ") -> str:
    names = [n for n in sorted(dir(obj)) if not n.startswith("_") and callable(getattr(obj, n, None))
             and getattr(getattr(obj, n), "__module__", None) == getattr(obj, "__name__", None)]
    return f"{prefix}callables defined there: {', '.join(names[:6])}" if names else ""


def _call_factory(factory, shown: str, args: list[Any], kwargs: dict[str, Any]):
    if not callable(factory):
        raise AppImportError(f"{shown!r} is a {type(factory).__name__}, it cannot be called as a factory")
    try:
        return factory(*args, **kwargs)
    except Exception as err:
        raise AppImportError(f"app factory {shown}() raised {_last_line(err)} {_where(err)}".rstrip()) from None


def _last_line(err: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(err), err)).strip().splitlines()[-1]


def _where(err: BaseException) -> str:
    """'(at FILE:LINE)' for the innermost frame of the traceback, outside importlib."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if "importlib" not in f.filename]
    if not frames:
        return ""
    frame = frames[-1]
    return f"(at {frame.filename}:{frame.lineno})"
