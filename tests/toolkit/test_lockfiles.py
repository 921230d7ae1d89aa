"""What pip installs, read from an app's files (toolkit/lockfiles.py): pyproject.toml's PEP 621
dependencies, uv.lock and pylock.toml turned into a hashed list, and deploy.toml refusing a TOML
file pip cannot read. The lock files in tests/toolkit/lockfiles/ are in the formats uv writes."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from toolkit import lockfiles  # noqa: E402
from toolkit.config import load_app_config  # noqa: E402
from toolkit.errors import ConfigError  # noqa: E402

LOCKS = Path(__file__).resolve().parent / "lockfiles"
FLASK_APP = "from flask import Flask\n\n\ndef create_app():\n    return Flask(__name__)\n"


def requirement_lines(text: bytes) -> dict[str, str]:
    """name -> its requirement line (continuations joined)."""
    joined = re.sub(r"\s*\\\n\s*", " ", text.decode())
    return {line.split("==")[0]: line for line in joined.splitlines() if line}


def test_uv_lock_is_the_projects_runtime_closure_with_every_hash(tmp_path):
    shutil.copy(LOCKS / "uv.lock", tmp_path)
    reqs = lockfiles.load(tmp_path, "uv.lock")
    assert (reqs.generated, reqs.hashed, reqs.pip_file) == (True, True, lockfiles.GENERATED)
    lines = requirement_lines(reqs.text)
    # flask and what it pulls in; not the dev group (pytest, iniconfig), not the project itself
    assert sorted(lines) == ["blinker", "click", "colorama", "flask", "itsdangerous", "jinja2",
                             "markupsafe", "werkzeug"]
    # colorama only where click needs it; both of its files' hashes, the wheel's and the sdist's
    assert lines["colorama"].startswith("colorama==0.4.6 ; sys_platform == 'win32' --hash=sha256:")
    assert "--hash=sha256:08695f5cb7ed6e0531a20572697297273c47b8cae5a63ffc6d6ed5c201be6e44" in lines["colorama"]
    assert "--hash=sha256:4f1d9991f5acc0ca119f9d443620b77f9d6b33703e51011c16baf57afb285fc6" in lines["colorama"]
    assert lines["flask"] == ("flask==3.1.3 --hash=sha256:"
                              "f4bcbefc124291925f1a26446da31a5178f9483862233b23c0c96a20701f670c")


def test_pylock_keeps_markers_and_hashes_and_skips_the_project(tmp_path):
    shutil.copy(LOCKS / "pylock.toml", tmp_path)
    reqs = lockfiles.load(tmp_path, "pylock.toml")
    assert reqs.hashed and reqs.generated
    lines = requirement_lines(reqs.text)
    assert sorted(lines) == ["click", "colorama", "itsdangerous"]
    assert lines["colorama"].startswith("colorama==0.4.6 ; sys_platform == 'win32' ")
    assert lines["itsdangerous"] == ("itsdangerous==2.2.0 --hash=sha256:"
                                     "c6242fc49e35958c8b15141343aa660db5fc54d4f13a1db01a3f5891b98700ef")


def test_the_generated_list_is_what_pip_reads(tmp_path):
    """pip itself parses the list (a dry run, no download: --no-index and the hashes as given)."""
    shutil.copy(LOCKS / "uv.lock", tmp_path)
    (tmp_path / "reqs.txt").write_bytes(lockfiles.load(tmp_path, "uv.lock").text)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-deps",
                           "--require-hashes", "--isolated", "-r", str(tmp_path / "reqs.txt")],
                          capture_output=True, text=True, timeout=120)
    # No index to fetch from: pip gets as far as looking flask up, past parsing every line.
    assert "Invalid requirement" not in done.stderr and "hash" not in done.stderr.lower(), done.stderr
    assert "No matching distribution found for" in done.stderr, done.stderr


def test_pyproject_dependencies(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "shop"\nversion = "1"\ndependencies = ["flask>=3.0,<4", "requests; python_version >= \'3.8\'"]\n'
        '[project.optional-dependencies]\ndev = ["pytest"]\n')
    reqs = lockfiles.load(tmp_path, "pyproject.toml")
    assert reqs.text == b"flask>=3.0,<4\nrequests; python_version >= '3.8'\n"
    assert reqs.generated and not reqs.hashed


@pytest.mark.parametrize("text, says", [
    ('[tool.poetry.dependencies]\nflask = "^3"\n', "[tool.poetry]"),
    ('[project]\nname = "x"\ndynamic = ["dependencies"]\n', "dynamic"),
    ('[project\nname = "x"\n', "not valid TOML"),
])
def test_pyproject_pip_cannot_use_is_refused_when_deploy_toml_is_loaded(tmp_path, text, says):
    (tmp_path / "pyproject.toml").write_text(text)
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    (tmp_path / "deploy.toml").write_text('[app]\nname = "shop"\nrequirements = "pyproject.toml"\n')
    with pytest.raises(ConfigError) as err:
        load_app_config(tmp_path)
    assert "[app] requirements" in str(err.value) and says in str(err.value)


def test_an_unknown_toml_file_is_refused(tmp_path):
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    (tmp_path / "deps.toml").write_text("")
    (tmp_path / "deploy.toml").write_text('[app]\nname = "shop"\nrequirements = "deps.toml"\n')
    with pytest.raises(ConfigError, match="not pyproject.toml, uv.lock or pylock.toml"):
        load_app_config(tmp_path)


def test_uv_lock_forked_by_markers_says_to_export(tmp_path):
    text = (LOCKS / "uv.lock").read_text() + (
        '\n[[package]]\nname = "flask"\nversion = "2.3.3"\nsource = { registry = "https://pypi.org/simple" }\n')
    (tmp_path / "uv.lock").write_text(text)
    with pytest.raises(lockfiles.RequirementsError, match="uv export"):
        lockfiles.load(tmp_path, "uv.lock")


def test_a_src_layout_with_only_pyproject_needs_nothing_in_deploy_toml(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop"\nversion = "1"\ndependencies = ["flask"]\n')
    (tmp_path / "src" / "shop").mkdir(parents=True)
    (tmp_path / "src" / "shop" / "__init__.py").write_text(FLASK_APP)
    (tmp_path / "deploy.toml").write_text('[app]\nname = "shop"\n')
    cfg = load_app_config(tmp_path)
    assert (cfg.framework, cfg.wsgi, cfg.requirements, cfg.app_path) == (
        "flask", "shop:create_app()", "pyproject.toml", "src")


def test_which_file_is_chosen(tmp_path):
    assert lockfiles.choose(tmp_path) == "requirements.txt"  # none: no dependencies
    for name, chosen in (("pyproject.toml", "pyproject.toml"), ("uv.lock", "uv.lock"),
                         ("pylock.toml", "pylock.toml"), ("requirements.txt", "requirements.txt")):
        (tmp_path / name).write_text("")
        assert lockfiles.choose(tmp_path) == chosen


def uv_package(name, deps="", extras="", source='{ registry = "https://pypi.org/simple" }'):
    """One [[package]] of a uv.lock, with a wheel whose hash is made from its name."""
    digest = __import__("hashlib").sha256(name.encode()).hexdigest()
    text = f'\n[[package]]\nname = "{name}"\nversion = "1.0"\nsource = {source}\n'
    if deps:
        text += f"dependencies = [{deps}]\n"
    if "registry" in source:
        text += f'wheels = [{{ url = "https://files.example/{name}-1.0-py3-none-any.whl", hash = "sha256:{digest}" }}]\n'
    if extras:
        text += f"\n[package.optional-dependencies]\n{extras}\n"
    return text


def test_uv_lock_follows_the_extras_asked_for_and_stops_on_cycles(tmp_path):
    lock = 'version = 1\nrevision = 2\nrequires-python = ">=3.11"\n' + "".join([
        uv_package("shop", '{ name = "celery", extra = ["redis"] }', source='{ virtual = "." }'),
        # celery[redis] pulls redis in; celery[sqs] is not asked for
        uv_package("celery", '{ name = "kombu" }', 'redis = [{ name = "redis" }]\nsqs = [{ name = "boto3" }]'),
        uv_package("kombu", '{ name = "vine" }, { name = "celery", marker = "python_version < \'3.99\'" }'),
        uv_package("vine", '{ name = "kombu", marker = "sys_platform == \'linux\'" }'),  # a cycle
        uv_package("redis"), uv_package("boto3"),
    ])
    (tmp_path / "uv.lock").write_text(lock)
    lines = requirement_lines(lockfiles.load(tmp_path, "uv.lock").text)
    assert sorted(lines) == ["celery", "kombu", "redis", "vine"]
    assert all(" ; " not in line for line in lines.values())  # every one reached unconditionally


def test_a_named_file_that_is_not_there_is_refused(tmp_path):
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    (tmp_path / "deploy.toml").write_text('[app]\nname = "shop"\nrequirements = "requirements/prod.txt"\n')
    with pytest.raises(ConfigError, match="no such file"):
        load_app_config(tmp_path)
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "prod.txt").write_text("flask\n")
    assert load_app_config(tmp_path).requirements == "requirements/prod.txt"
