"""Framework and WSGI entry detection from an app's files (never importing them)."""

import sys
from pathlib import Path

import pytest

# The toolkit is not an installed package: make the repository importable when pytest
# runs without `pythonpath = .` (as tests/server/*.py do for the server).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from toolkit.detect import DetectError, detect_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write(app_dir, files):
    for name, text in files.items():
        path = app_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return app_dir


@pytest.mark.parametrize("example, framework, wsgi", [
    ("flask", "flask", "app:app"),
    ("django", "django", "guestbook.wsgi:application"),
    ("bottle", "bottle", "app:app"),
])
def test_examples_are_detected(example, framework, wsgi):
    found = detect_app(EXAMPLES / example)
    assert (found.framework, found.wsgi) == (framework, wsgi)


def test_django_settings_module_comes_from_manage_py(tmp_path):
    write(tmp_path, {
        "manage.py": 'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings.prod")\n',
        "shop/__init__.py": "", "shop/settings/__init__.py": "", "shop/wsgi.py": "",
    })
    found = detect_app(tmp_path)
    assert (found.framework, found.wsgi, found.settings) == ("django", "shop.wsgi:application", "shop.settings.prod")


def test_django_without_setdefault_line_uses_the_one_project(tmp_path):
    write(tmp_path, {"manage.py": "# custom\n", "site1/settings.py": "", "site1/wsgi.py": ""})
    assert detect_app(tmp_path).settings == "site1.settings"


def test_manage_py_without_wsgi_module_is_not_django(tmp_path):
    write(tmp_path, {"manage.py": 'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")\n'})
    with pytest.raises(DetectError):
        detect_app(tmp_path)


@pytest.mark.parametrize("filename, code, wsgi", [
    ("app.py", "from flask import Flask\napp = Flask(__name__)\n", "app:app"),
    ("wsgi.py", "import flask\napplication = flask.Flask(__name__)\n", "wsgi:application"),
    ("app.py", "from flask import Flask\n\ndef create_app():\n    return Flask(__name__)\n", "app:create_app()"),
    ("web/__init__.py", "from flask import Flask\n\ndef create_app(config=None):\n    ...\n", "web:create_app()"),
])
def test_flask_apps_and_factories(tmp_path, filename, code, wsgi):
    write(tmp_path, {filename: code})
    found = detect_app(tmp_path)
    assert (found.framework, found.wsgi) == ("flask", wsgi)


def test_app_py_is_preferred_over_other_modules(tmp_path):
    write(tmp_path, {"main.py": "from flask import Flask\nmain_app = Flask(__name__)\n",
                     "app.py": "from flask import Flask\napp = Flask(__name__)\n"})
    assert detect_app(tmp_path).wsgi == "app:app"


@pytest.mark.parametrize("code, wsgi", [
    ("from bottle import Bottle\nweb = Bottle()\n", "app:web"),
    ("import bottle\n@bottle.route('/')\ndef i(): return 'x'\napp = bottle.default_app()\n", "app:app"),
])
def test_bottle_apps(tmp_path, code, wsgi):
    write(tmp_path, {"app.py": code})
    found = detect_app(tmp_path)
    assert (found.framework, found.wsgi) == ("bottle", wsgi)


def test_bottle_default_app_without_a_name_says_which_line_to_add(tmp_path):
    write(tmp_path, {"app.py": "from bottle import route, run\n@route('/')\ndef i():\n    return 'x'\n"})
    with pytest.raises(DetectError, match=r"app = bottle.default_app\(\)"):
        detect_app(tmp_path)


def test_nothing_recognisable_tells_the_user_what_to_set(tmp_path):
    write(tmp_path, {"app.py": "def application(environ, start_response):\n    ...\n"})
    with pytest.raises(DetectError) as info:
        detect_app(tmp_path)
    assert 'wsgi = "module:app"' in str(info.value)


def test_a_mention_of_flask_in_a_comment_is_not_an_app(tmp_path):
    write(tmp_path, {"app.py": "# this is not from flask import Flask\nx = 1\n"})
    with pytest.raises(DetectError):
        detect_app(tmp_path)


def test_asking_for_a_framework_that_is_not_there(tmp_path):
    write(tmp_path, {"app.py": "from flask import Flask\napp = Flask(__name__)\n"})
    with pytest.raises(DetectError, match="no django WSGI app found"):
        detect_app(tmp_path, framework="django")


FACTORY = "from flask import Flask\n\n\ndef create_app(test_config=None):\n    app = Flask(__name__)\n    return app\n"


@pytest.mark.parametrize("files, wsgi, found_in", [
    # the Flask tutorial's flat package
    ({"flaskr/__init__.py": FACTORY}, "flaskr:create_app()", "flaskr/__init__.py"),
    # a src/ layout (pyproject.toml only)
    ({"pyproject.toml": "[project]\nname = 'shop'\n", "src/shop/__init__.py": FACTORY},
     "shop:create_app()", "src/shop/__init__.py"),
    # the factory in a module of the package, re-exported by its __init__
    ({"src/shop/__init__.py": "from .factory import create_app\n", "src/shop/factory.py": FACTORY},
     "shop:create_app()", "src/shop/__init__.py"),
    ({"src/app.py": "from flask import Flask\napp = Flask(__name__)\n"}, "app:app", "src/app.py"),
])
def test_factories_in_packages_flat_and_src(tmp_path, files, wsgi, found_in):
    found = detect_app(write(tmp_path, files))
    assert (found.framework, found.wsgi, found.found_in) == ("flask", wsgi, found_in)


def test_a_reexport_without_flask_in_the_package_is_not_a_flask_app(tmp_path):
    write(tmp_path, {"src/tool/__init__.py": "from .core import create_app\n",
                     "src/tool/core.py": "def create_app():\n    return object()\n"})
    with pytest.raises(DetectError, match="src/"):
        detect_app(tmp_path)


def test_tests_packages_are_not_the_app(tmp_path):
    write(tmp_path, {"src/tests/__init__.py": FACTORY, "src/shop/__init__.py": FACTORY})
    assert detect_app(tmp_path).wsgi == "shop:create_app()"
