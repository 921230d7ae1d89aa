"""Secrets changed between deploys, on a sandbox host (issue 14): a secret changed in the local
environment with the code unchanged restarts the app on the next deploy, which then has the new
value (before, .env was rewritten and the app kept the old one); and a secret set only on the host
with `invoke env.set` (shared/.env.local) satisfies deploy.toml's [app] secrets, without a copy
of it in shared/.env."""

import os
import subprocess
import sys

import pytest
import requests

from tests.integration.helpers import REPO, on_host

pytestmark = pytest.mark.integration

APP = "secretapp"

# The test app shows the values and its master's pid, so the test sees what the running server has.
APP_PY = '''import os


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{os.environ.get('API_TOKEN', '-')} {os.environ.get('HOST_ONLY', '-')} {os.getppid()}".encode()]
'''


def deploy_toml(secrets):
    return (f'[app]\nname = "{APP}"\nframework = "wsgi"\nwsgi = "app:app"\ndomains = ["{APP}.test"]\n'
            f"secrets = {secrets!r}\n".replace("'", '"'))


def invoke(*args, env=None, stdin=""):
    environ = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "HOST_ONLY")}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, capture_output=True, text=True,
                           timeout=900, input=stdin, env={**environ, **(env or {})})


def page(box):
    answer = requests.get(f"http://{box.address}/", headers={"Host": f"{APP}.test"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.text.split()


def test_changed_secret_restarts_and_a_host_set_secret_is_enough(sandbox, tmp_path):
    app = tmp_path / APP
    app.mkdir()
    (app / "app.py").write_text(APP_PY)
    (app / "deploy.toml").write_text(deploy_toml(["API_TOKEN"]))
    where = ["--host", sandbox.ssh_alias, "--app", str(app)]

    done = invoke("deploy", *where, env={"API_TOKEN": "first-value"})
    assert done.returncode == 0, done.stdout + done.stderr
    token, _, pid = page(sandbox)
    assert token == "first-value"

    # the same code, a new value in the local environment: .env changes and the app restarts
    again = invoke("deploy", *where, env={"API_TOKEN": "second-value"})
    assert again.returncode == 0, again.stdout + again.stderr
    assert "unchanged" in again.stdout and "health check" in again.stdout, again.stdout
    assert "second-value" not in again.stdout + again.stderr  # a secret's value is never shown
    token, _, new_pid = page(sandbox)
    assert token == "second-value" and new_pid != pid
    # nothing changed: no restart
    same = invoke("deploy", *where, env={"API_TOKEN": "second-value"})
    assert same.returncode == 0, same.stdout + same.stderr
    assert page(sandbox)[2] == new_pid

    # a secret set only on the host (env.set, its value on stdin) and then listed in deploy.toml
    setting = invoke("env.set", *where, "--name", "HOST_ONLY", stdin="from-the-host\n")
    assert setting.returncode == 0, setting.stdout + setting.stderr
    (app / "deploy.toml").write_text(deploy_toml(["API_TOKEN", "HOST_ONLY"]))
    listed = invoke("deploy", *where, env={"API_TOKEN": "second-value"})
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert page(sandbox)[:2] == ["second-value", "from-the-host"]
    # .env has no copy of it (env.unset must be able to take it away)
    dotenv = on_host(sandbox, f"cat /srv/{APP}/shared/.env").stdout
    assert "HOST_ONLY" not in dotenv and "API_TOKEN" in dotenv
    # and once unset, the next deploy says it has no value, naming env.set as one way to give it
    unset = invoke("env.unset", *where, "--name", "HOST_ONLY")
    assert unset.returncode == 0, unset.stdout + unset.stderr
    missing = invoke("deploy", *where, env={"API_TOKEN": "second-value"})
    assert missing.returncode != 0
    assert "HOST_ONLY has no value" in missing.stdout + missing.stderr
    assert "env.set --name HOST_ONLY" in missing.stdout + missing.stderr
