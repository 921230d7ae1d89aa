"""The app loader against small modules written into a temp directory."""

import os
import sys
import textwrap

import pytest

from pronghorn.config import Config
from pronghorn.loader import AppImportError, apply_paths, import_app, load_app

APP = """
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"application"]
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A directory for app modules; sys.path, sys.modules and the cwd are restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(directory, name, text):
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def call(app):
    statuses = []
    body = b"".join(app({}, lambda status, headers, exc_info=None: statuses.append(status)))
    return statuses[0], body


def load(uri, **settings):
    return load_app(Config(wsgi_app=uri, **settings))


def error(uri, **settings):
    with pytest.raises(AppImportError) as info:
        load(uri, **settings)
    return str(info.value)


def test_module_colon_attribute(site):
    write(site, "plainapp.py", APP)
    assert call(load("plainapp:application")) == ("200 OK", b"application")


def test_module_alone_uses_application_then_app(site):
    write(site, "onlyapp.py", APP.replace("def application", "def app"))
    write(site, "bothapps.py", APP + "app = None\n")
    assert load("onlyapp").__name__ == "app"
    assert load("bothapps").__name__ == "application"


def test_module_alone_without_either_name(site):
    write(site, "noapp.py", "def wsgi(environ, start_response):\n    pass\n")
    message = error("noapp")
    assert message == "module 'noapp' has no 'application' or 'app' (name the app, e.g. noapp:my_app; callables defined there: wsgi)"


def test_factory_without_arguments(site):
    write(site, "factory.py", APP + "def create_app():\n    return application\n")
    assert call(load("factory:create_app()")) == ("200 OK", b"application")


def test_factory_with_literal_arguments(site):
    write(site, "factoryargs.py", """
        def create_app(name, debug=False, tags=()):
            def app(environ, start_response):
                start_response("200 OK", [])
                return [f"{name} {debug} {list(tags)}".encode()]
            return app
    """)
    app = load("factoryargs:create_app('prod', debug=True, tags=['a', 1])")
    assert call(app) == ("200 OK", b"prod True ['a', 1]")


@pytest.mark.parametrize("expression", ["create_app(os.getcwd())", "create_app(x)", "create_app(1 + 1)",
                                        "create_app(**opts)"])
def test_factory_arguments_are_never_evaluated(site, expression):
    write(site, "strict.py", APP + "def create_app(*a, **k):\n    return application\n")
    message = error(f"strict:{expression}")
    assert "factory arguments must be literals" in message or "**kwargs are not allowed" in message


def test_not_a_name_or_call(site):
    assert "is not a name or a call" in error("strict:app[0]")
    assert "cannot read" in error("strict:create_app(")


def test_dotted_attribute(site):
    write(site, "nested.py", APP + "class api:\n    wsgi = staticmethod(application)\n")
    assert call(load("nested:api.wsgi")) == ("200 OK", b"application")


def test_package_module(site):
    write(site, "proj/__init__.py", "")
    write(site, "proj/wsgi.py", APP)
    assert call(load("proj.wsgi:application"))[1] == b"application"


def test_module_not_found_names_it_and_sys_path(site):
    message = error("nosuchmodule:app")
    assert message.startswith("no module named 'nosuchmodule' (looked in sys.path: ")
    assert repr(str(site)) in message and "check the name, --chdir and --pythonpath" in message


def test_missing_dependency_inside_the_app_is_not_reported_as_the_app_missing(site):
    write(site, "needsdep.py", "import not_installed_dependency_xyz\n" + APP)
    message = error("needsdep:application")
    assert message.startswith("importing 'needsdep' failed: ModuleNotFoundError: No module named 'not_installed_dependency_xyz'")
    assert "needsdep.py:1" in message and "virtualenv" in message


def test_error_while_importing_shows_the_last_line_and_place(site):
    write(site, "crashes.py", "x = 1\nraise RuntimeError('settings missing')\n")
    message = error("crashes:app")
    assert message.startswith("importing 'crashes' failed: RuntimeError: settings missing (at ")
    assert "crashes.py:2)" in message


def test_syntax_error_in_the_app(site):
    write(site, "badsyntax.py", "def app(:\n")
    assert "syntax error in" in error("badsyntax:app") and "line 1" in error("badsyntax:app")


def test_missing_attribute_lists_close_names(site):
    write(site, "closeapp.py", APP)
    assert error("closeapp:aplication") == "'closeapp' has no attribute 'aplication'; did you mean application?"


def test_factory_raising_shows_the_exception(site):
    write(site, "badfactory.py", "def create_app():\n    raise KeyError('DATABASE_URL')\n")
    message = error("badfactory:create_app()")
    assert message.startswith("app factory badfactory:create_app() raised KeyError: 'DATABASE_URL' (at ")
    assert "badfactory.py:2)" in message


def test_object_not_callable(site):
    write(site, "notcallable.py", "application = {'not': 'an app'}\n")
    assert error("notcallable:application") == (
        "'notcallable:application' is a dict, not a WSGI application "
        "(expected a function or object taking (environ, start_response))"
    )


def test_factory_returning_none(site):
    write(site, "returnsnone.py", "def create_app():\n    pass\n")
    assert "is None, not a WSGI application" in error("returnsnone:create_app()")


def test_no_module_name():
    with pytest.raises(AppImportError, match="no module name before ':'"):
        import_app(":app")


def test_chdir_is_entered_and_searched(site):
    project = site / "project"
    write(project, "chdirapp.py", APP)
    os.chdir("/")
    app = load("chdirapp:application", chdir=str(project))
    assert call(app)[1] == b"application"
    assert os.getcwd() == str(project)
    assert sys.path[0] == str(project)


def test_pythonpath_goes_before_chdir(site):
    first, second = site / "first", site / "second"
    write(first, "shadow.py", APP.replace('b"application"', 'b"first"'))
    write(second, "shadow.py", APP.replace('b"application"', 'b"second"'))
    app = load("shadow:application", chdir=str(second), pythonpath=[str(first)])
    assert call(app)[1] == b"first"
    assert sys.path[:2] == [str(first), str(second)]


def test_chdir_through_a_symlink_keeps_the_symlink_path(site):
    """The deploy layout: modules must be found under current/, not the resolved release."""
    release = site / "releases" / "1"
    write(release, "releasedapp.py", APP)
    (site / "current").symlink_to(release)
    load("releasedapp:application", chdir=str(site / "current"))
    assert sys.modules["releasedapp"].__file__ == str(site / "current" / "releasedapp.py")


def test_without_chdir_the_working_directory_is_searched(site):
    write(site, "cwdapp.py", APP)
    sys.path[:] = [p for p in sys.path if p not in ("", str(site))]
    assert call(load("cwdapp"))[1] == b"application"


def test_apply_paths_does_not_duplicate_entries(site):
    apply_paths(str(site), ["lib"])
    apply_paths(str(site), ["lib"])
    assert sys.path.count(str(site)) == 1 and sys.path.count(str(site / "lib")) == 1
