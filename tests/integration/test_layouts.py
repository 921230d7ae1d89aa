"""Modern project layouts deployed to sandbox hosts (issue 14): a Flask app factory in a src/
layout whose dependencies are only in pyproject.toml deploys with nothing but its name in
deploy.toml, its code follows `current` through new releases and rollbacks although the venv is
reused; and hashed dependencies are installed with --require-hashes: a requirements.txt with
--hash lines, a uv.lock (read here, no uv), and a pylock.toml whose hash does not match the file
pip downloads is refused with the previous release still serving."""

import hashlib
import shutil
import subprocess
import sys

import pytest
import requests

from tests.integration.helpers import invoke, on_host

pytestmark = pytest.mark.integration

SRC_APP = "srcshop"

SHOP_INIT = '''"""The shop: an app factory, as the Flask tutorial writes it."""
from flask import Flask

from shop.views import pages  # the package by its own name: src/ is on the path


def create_app():
    app = Flask(__name__)
    app.register_blueprint(pages)
    return app
'''

SHOP_VIEWS = '''from flask import Blueprint

pages = Blueprint("pages", __name__)


@pages.get("/")
def index():
    return "shop {version}"
'''

PYPROJECT = '''[project]
name = "shop"
version = "0.1.0"
requires-python = ">=3.9"
dependencies = ["flask>=3.0,<4"]

[project.optional-dependencies]
dev = ["pytest"]

[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"
'''


def deploy(box, app):
    return invoke("deploy", "--host", box.ssh_alias, "--app", str(app), timeout=900)


def src_app(folder, version):
    (folder / "src" / "shop").mkdir(parents=True, exist_ok=True)
    (folder / "src" / "shop" / "__init__.py").write_text(SHOP_INIT)
    (folder / "src" / "shop" / "views.py").write_text(SHOP_VIEWS.format(version=version))
    (folder / "pyproject.toml").write_text(PYPROJECT)
    (folder / "deploy.toml").write_text(f'[app]\nname = "{SRC_APP}"\n')
    return folder


def test_src_layout_with_only_pyproject_deploys_with_just_its_name(fresh_sandbox, tmp_path):
    app = src_app(tmp_path / SRC_APP, "v1")
    done = deploy(fresh_sandbox, app)
    assert done.returncode == 0, done.stdout + done.stderr
    page = requests.get(f"http://{fresh_sandbox.address}/", timeout=10)
    assert (page.status_code, page.text) == (200, "shop v1")
    # pip installed the declared dependencies, not the project (a copy would go stale in a
    # venv that later releases reuse)
    venv = f"/srv/{SRC_APP}/current/.venv/bin/python"
    names = "import importlib.metadata as m; print(sorted(d.metadata['Name'].lower() for d in m.distributions()))"
    listed = on_host(fresh_sandbox, f"{venv} -c \"{names}\"")
    assert "'flask'" in listed.stdout, listed.stdout + listed.stderr
    assert "'shop'" not in listed.stdout

    # the app's own Python (`invoke run`) imports the live release's package
    run = invoke("run", "--host", fresh_sandbox.ssh_alias, "--app", str(app), "--",
                 "python", "-c", "import shop; print(shop.__file__)")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"/srv/{SRC_APP}/current/src/shop/__init__.py" in run.stdout

    # new code, same dependencies: the venv is reused and the new code is served
    src_app(app, "v2")
    again = deploy(fresh_sandbox, app)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "reused venvs/" in again.stdout
    assert requests.get(f"http://{fresh_sandbox.address}/", timeout=10).text == "shop v2"

    # and a rollback serves the old code again from the same venv
    back = invoke("rollback", "--host", fresh_sandbox.ssh_alias, "--app", str(app))
    assert back.returncode == 0, back.stdout + back.stderr
    assert requests.get(f"http://{fresh_sandbox.address}/", timeout=10).text == "shop v1"


# -- hashed dependencies ------------------------------------------------------------------------

LOCKED = "lockedapp"

LOCKED_APP = '''import importlib


def app(environ, start_response):
    found = []
    for name in ("itsdangerous", "blinker"):
        try:
            importlib.import_module(name)
            found.append(name)
        except ImportError:
            pass
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [" ".join(found).encode()]
'''


def wheel_sha256(requirement, into):
    """The sha256 of the wheel pip downloads for `requirement` (pure-Python wheels: the file the
    host's pip fetches is the same one)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                    "-d", str(into), requirement], check=True, timeout=300)
    name = requirement.split("==")[0].replace("-", "_").lower()
    wheel = next(p for p in into.glob("*.whl") if p.name.lower().startswith(name + "-"))
    return hashlib.sha256(wheel.read_bytes()).hexdigest()


def uv_lock(its_hash, blinker_hash):
    return f'''version = 1
revision = 2
requires-python = ">=3.9"

[[package]]
name = "blinker"
version = "1.9.0"
source = {{ registry = "https://pypi.org/simple" }}
wheels = [
    {{ url = "https://files.pythonhosted.org/packages/blinker-1.9.0-py3-none-any.whl", hash = "sha256:{blinker_hash}" }},
]

[[package]]
name = "itsdangerous"
version = "2.2.0"
source = {{ registry = "https://pypi.org/simple" }}
wheels = [
    {{ url = "https://files.pythonhosted.org/packages/itsdangerous-2.2.0-py3-none-any.whl", hash = "sha256:{its_hash}" }},
]

[[package]]
name = "{LOCKED}"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [
    {{ name = "blinker" }},
    {{ name = "itsdangerous" }},
]
'''


PYLOCK = '''lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.9"

[[packages]]
name = "itsdangerous"
version = "2.2.0"
index = "https://pypi.org/simple"
wheels = [{{ url = "https://files.pythonhosted.org/packages/itsdangerous-2.2.0-py3-none-any.whl", hashes = {{ sha256 = "{sha}" }} }}]
'''


def test_hashed_requirements_uv_lock_and_a_pylock_that_does_not_match(sandbox, tmp_path):
    wheels = tmp_path / "wheels"
    its_hash = wheel_sha256("itsdangerous==2.2.0", wheels)
    blinker_hash = wheel_sha256("blinker==1.9.0", wheels)
    app = tmp_path / LOCKED
    app.mkdir()
    (app / "app.py").write_text(LOCKED_APP)
    (app / "deploy.toml").write_text(f'[app]\nname = "{LOCKED}"\nframework = "wsgi"\nwsgi = "app:app"\n'
                                     f'domains = ["{LOCKED}.test"]\n')

    def page():
        return requests.get(f"http://{sandbox.address}/", headers={"Host": f"{LOCKED}.test"}, timeout=10).text

    # a requirements.txt with --hash: pip runs with --require-hashes
    (app / "requirements.txt").write_text(f"itsdangerous==2.2.0 \\\n    --hash=sha256:{its_hash}\n")
    done = deploy(sandbox, app)
    assert done.returncode == 0, done.stdout + done.stderr
    assert page() == "itsdangerous"

    # uv.lock alone (no requirements.txt): read here, installed with its hashes
    (app / "requirements.txt").unlink()
    (app / "uv.lock").write_text(uv_lock(its_hash, blinker_hash))
    done = deploy(sandbox, app)
    assert done.returncode == 0, done.stdout + done.stderr
    assert page() == "itsdangerous blinker"
    generated = on_host(sandbox, f"cat /srv/{LOCKED}/current/.pronghorn-requirements.txt").stdout
    assert f"--hash=sha256:{blinker_hash}" in generated

    # a pylock.toml whose hash is not the downloaded file's: pip refuses it, nothing is switched
    (app / "uv.lock").unlink()
    wrong = hashlib.sha256(b"not the wheel").hexdigest()
    (app / "pylock.toml").write_text(PYLOCK.format(sha=wrong))
    refused = deploy(sandbox, app)
    assert refused.returncode != 0
    out = refused.stdout + refused.stderr
    assert "DO NOT MATCH THE HASHES" in out and wrong in out, out
    assert "still runs the previous release" in out
    assert page() == "itsdangerous blinker"
    # ... and with the right hash it goes through
    (app / "pylock.toml").write_text(PYLOCK.format(sha=its_hash))
    done = deploy(sandbox, app)
    assert done.returncode == 0, done.stdout + done.stderr
    assert page() == "itsdangerous"
    shutil.rmtree(wheels)
