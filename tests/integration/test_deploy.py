"""Deploying the example apps to sandbox hosts through the real `invoke` command line: the site
answers through nginx, an unchanged redeploy changes nothing, a code-only change reuses the
venv, a held lock refuses a second deploy and says who holds it."""

import shutil

import pytest
import requests

from tests.integration.helpers import REPO, invoke, on_host
from toolkit import audit

pytestmark = pytest.mark.integration

EXAMPLES = REPO / "examples"


def deploy(sandbox, app, *extra):
    run = invoke("deploy", "--host", sandbox.ssh_alias, "--app", str(app), *extra)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


@pytest.fixture(scope="module")
def flask_host(sandbox, tmp_path_factory):
    """The sandbox with a copy of examples/flask deployed (a copy, so tests may change its code)."""
    app = tmp_path_factory.mktemp("flask") / "app"
    shutil.copytree(EXAMPLES / "flask", app)
    out = deploy(sandbox, app)
    return sandbox, app, out


def test_first_deploy_serves_the_app_through_nginx(flask_host):
    sandbox, app, out = flask_host
    assert f"site: http://{sandbox.address}/" in out
    page = requests.get(f"http://{sandbox.address}/", timeout=10)
    assert page.status_code == 200 and "Hello from Flask on pronghorn" in page.text
    assert requests.get(f"http://{sandbox.address}/healthz", timeout=10).text == "ok"
    css = requests.get(f"http://{sandbox.address}/static/style.css", timeout=10)
    assert css.status_code == 200  # static files come from nginx, straight from the release
    for stage in ("starting", "updating", "publishing", "finishing"):
        assert f"\n  {stage}\n" in out


def test_unchanged_redeploy_changes_nothing(flask_host):
    sandbox, app, _ = flask_host
    out = deploy(sandbox, app)
    assert "0 changed, 0 failed" in out
    assert "unchanged" in out


def test_code_only_change_reuses_the_venv_and_fails_no_request(flask_host, request_loop):
    sandbox, app, _ = flask_host
    code = app / "app.py"
    code.write_text(code.read_text().replace("Hello from Flask on pronghorn", "Hello again"))
    # Requests keep coming through nginx while the service restarts on the new release.
    with request_loop(f"http://{sandbox.address}/") as loop:
        out = deploy(sandbox, app)
    assert loop.done > 0 and loop.failures == [], loop.summary()
    assert "reused venvs/" in out
    assert "Hello again" in requests.get(f"http://{sandbox.address}/", timeout=10).text
    releases = on_host(sandbox, "ls /srv/flaskapp/releases").stdout.split()
    venvs = {on_host(sandbox, f"readlink /srv/flaskapp/releases/{r}/.venv").stdout.strip() for r in releases[-2:]}
    assert len(venvs) == 1


def test_invoke_restart_fails_no_request(flask_host, request_loop):
    sandbox, app, _ = flask_host
    with request_loop(f"http://{sandbox.address}/") as loop:
        for _ in range(3):  # bounded: three restarts, each waits for READY and a health check
            run = invoke("restart", "--host", sandbox.ssh_alias, "--app", str(app))
            assert run.returncode == 0, run.stdout + run.stderr
    assert loop.done > 0 and loop.failures == [], loop.summary()


def test_second_deploy_is_refused_while_the_lock_is_held(flask_host):
    sandbox, app, _ = flask_host
    on_host(sandbox, "mkdir /srv/flaskapp/.deploy-lock && "
                     "echo 'alice@laptop since 2025-01-01 10:00:00 UTC (pid 4242)' > /srv/flaskapp/.deploy-lock/who")
    # Something provisioning would put right: it must stay as it is while alice deploys.
    on_host(sandbox, "chmod 0644 /srv/flaskapp/shared/.env")
    try:
        run = invoke("deploy", "--host", sandbox.ssh_alias, "--app", str(app), "--force")
        assert run.returncode == 1
        assert "provisioning" not in run.stdout  # the lock comes before any change
        assert on_host(sandbox, "stat -c %a /srv/flaskapp/shared/.env").stdout.strip() == "644"
        assert "alice@laptop since 2025-01-01 10:00:00 UTC (pid 4242)" in run.stdout
        assert f"invoke lock.release --host {sandbox.ssh_alias}" in run.stdout
        status = invoke("lock.status", "--host", sandbox.ssh_alias, "--app", str(app))
        assert "held by alice@laptop" in status.stdout
    finally:
        released = invoke("lock.release", "--host", sandbox.ssh_alias, "--app", str(app))
    assert "removed (was held by alice@laptop" in released.stdout
    assert on_host(sandbox, "test -e /srv/flaskapp/.deploy-lock").returncode != 0
    deploy(sandbox, app)  # and once the lock is free, provisioning puts the secrets file right
    assert on_host(sandbox, "stat -c %a /srv/flaskapp/shared/.env").stdout.strip() == "600"


def test_uploads_written_by_the_app_are_served_by_nginx(flask_host):
    sandbox, _, _ = flask_host
    # As the service writes them: the app user, UMask=0027 (so the file is 0640).
    on_host(sandbox, "runuser -u flaskapp -- sh -c 'umask 0027; mkdir -p /srv/flaskapp/shared/media/2025 && "
                     "echo uploaded-bytes > /srv/flaskapp/shared/media/2025/note.txt'")
    got = requests.get(f"http://{sandbox.address}/media/2025/note.txt", timeout=10)
    assert got.status_code == 200 and got.text == "uploaded-bytes\n"
    # ...while other local users cannot read them
    mode = on_host(sandbox, "stat -c '%a %G' /srv/flaskapp/shared/media/2025/note.txt").stdout.split()
    assert mode == ["640", "www-data"]


def test_deploy_log_records_each_release(flask_host):
    sandbox, _, _ = flask_host
    log = on_host(sandbox, "cat /srv/flaskapp/deploy.log").stdout.splitlines()
    entries = [audit.parse(line) for line in log]  # the audit trail's lines (toolkit/audit.py)
    assert entries and all(entries)
    # an unchanged redeploy is recorded too
    assert entries[-1].action == "deploy" and entries[-1].result in ("ok", "unchanged")
    assert any(e.action == "deploy" and e.result == "ok" for e in entries)


@pytest.mark.parametrize("example, page_text", [("django", "Django example"), ("bottle", "Bottle")])
def test_django_and_bottle_examples(fresh_sandbox, example, page_text):
    out = deploy(fresh_sandbox, EXAMPLES / example)
    if example == "django":
        assert "django migrate" in out and "django collectstatic" in out
    page = requests.get(f"http://{fresh_sandbox.address}/", timeout=10)
    assert page.status_code == 200
    assert page_text.lower() in page.text.lower()
    # a second deploy of the same code changes nothing (migrations included)
    again = deploy(fresh_sandbox, EXAMPLES / example)
    assert "0 changed, 0 failed" in again
