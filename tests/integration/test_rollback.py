"""Releases that fail never take the site down: a release whose app cannot be imported is
refused before the switch, one that fails under the server is rolled back automatically, and
a bounded request loop running meanwhile sees no failed request. `invoke rollback` and
`invoke releases` through the real command line."""

import shutil

import pytest
import requests

from tests.integration.helpers import REPO, invoke, on_host

pytestmark = pytest.mark.integration

FLASK = REPO / "examples" / "flask"


def current_release(sandbox):
    return on_host(sandbox, "readlink /srv/flaskapp/current").stdout.strip()


@pytest.fixture(scope="module")
def app_dir(sandbox, tmp_path_factory):
    app = tmp_path_factory.mktemp("rollback") / "app"
    shutil.copytree(FLASK, app)
    run = invoke("deploy", "--host", sandbox.ssh_alias, "--app", str(app))
    assert run.returncode == 0, run.stdout + run.stderr
    return app


def variant(app_dir, tmp_path, code):
    """A copy of the app with `code` appended to app.py."""
    bad = tmp_path / "app"
    shutil.copytree(app_dir, bad)
    (bad / "app.py").write_text((bad / "app.py").read_text() + "\n" + code)
    return bad


def test_release_that_cannot_import_is_refused_before_the_switch(sandbox, app_dir, tmp_path, request_loop):
    bad = variant(app_dir, tmp_path, "raise RuntimeError('broken release')\n")
    before = current_release(sandbox)
    with request_loop(f"http://{sandbox.address}/") as loop:
        run = invoke("deploy", "--host", sandbox.ssh_alias, "--app", str(bad))
    assert run.returncode == 1
    assert "RuntimeError: broken release" in run.stdout
    assert "nothing was switched" in run.stdout
    assert current_release(sandbox) == before
    assert loop.done > 0 and loop.failures == [], loop.summary()
    newest = on_host(sandbox, "ls /srv/flaskapp/releases | tail -n 1").stdout.strip()
    assert on_host(sandbox, f"test -e /srv/flaskapp/releases/{newest}/.failed").returncode == 0


def test_release_that_fails_under_the_server_is_rolled_back(sandbox, app_dir, tmp_path, request_loop):
    # Imports fine over ssh; under systemd (which sets INVOCATION_ID) it raises at import.
    bad = variant(app_dir, tmp_path, "import os\nif os.environ.get('INVOCATION_ID'):\n"
                                     "    raise RuntimeError('fails under systemd')\n")
    before = current_release(sandbox)
    with request_loop(f"http://{sandbox.address}/") as loop:
        run = invoke("deploy", "--host", sandbox.ssh_alias, "--app", str(bad))
    assert run.returncode == 1
    assert "roll back to" in run.stdout and "it answers again" in run.stdout
    assert "fails under systemd" in run.stdout  # the journal shows the reason
    assert current_release(sandbox) == before
    assert loop.done > 0 and loop.failures == [], loop.summary()
    assert requests.get(f"http://{sandbox.address}/healthz", timeout=10).status_code == 200
    assert on_host(sandbox, "test -e /srv/flaskapp/.deploy-lock").returncode != 0


def test_release_failing_its_health_check_is_rolled_back(sandbox, app_dir, tmp_path, request_loop):
    bad = tmp_path / "app"
    shutil.copytree(app_dir, bad)
    code = bad / "app.py"
    code.write_text(code.read_text().replace('return "ok", 200', 'return "database unreachable", 500'))
    before = current_release(sandbox)
    # The bad release serves / fine while its /healthz fails: the site's users see no error
    # through the switch, the failed check, the rollback and the restarts.
    with request_loop(f"http://{sandbox.address}/") as loop:
        run = invoke("deploy", "--host", sandbox.ssh_alias, "--app", str(bad))
    assert run.returncode == 1
    assert loop.done > 0 and loop.failures == [], loop.summary()
    assert "health check of http://localhost/healthz failed: got 500, expected 200" in run.stdout
    assert "database unreachable" in run.stdout  # the app's own answer is shown
    assert "it answers again" in run.stdout
    assert current_release(sandbox) == before
    assert requests.get(f"http://{sandbox.address}/healthz", timeout=10).text == "ok"


def test_rollback_and_releases(sandbox, app_dir, tmp_path, request_loop):
    newer = variant(app_dir, tmp_path, "# a newer release\n")
    assert invoke("deploy", "--host", sandbox.ssh_alias, "--app", str(newer)).returncode == 0
    live = current_release(sandbox).rsplit("/", 1)[-1]
    listing = invoke("releases", "--host", sandbox.ssh_alias, "--app", str(newer)).stdout
    assert f"* {live}  good" in listing
    assert "failed" in listing  # the failed releases of the tests above are listed, marked
    with request_loop(f"http://{sandbox.address}/") as loop:
        back = invoke("rollback", "--host", sandbox.ssh_alias, "--app", str(newer))
    assert back.returncode == 0, back.stdout + back.stderr
    assert loop.done > 0 and loop.failures == [], loop.summary()
    now = current_release(sandbox).rsplit("/", 1)[-1]
    assert now != live and now < live
    # a failed release is never a rollback target
    failed = [line.split()[0] for line in listing.splitlines() if " failed " in line]
    refused = invoke("rollback", "--host", sandbox.ssh_alias, "--app", str(newer), "--to", failed[0])
    assert refused.returncode == 1
    assert "only good releases can be rolled back to" in refused.stdout
    # and forward again
    forward = invoke("rollback", "--host", sandbox.ssh_alias, "--app", str(newer), "--to", live)
    assert forward.returncode == 0
    assert current_release(sandbox).endswith(live)
