"""The deploy on the second distribution of the host matrix: Debian 13 (trixie), whose Python 3.13,
systemd 257 and nginx 1.26 are nearer to what Ubuntu 24.04 users run than Debian 12's. One slow
scenario through the real `invoke` command line (first deploy, code-only change, rollback); the
rest of the integration suite covers the same steps in depth on Debian 12 (`sandbox`).
"""

import shutil

import pytest
import requests

from tests.integration.helpers import REPO, invoke, on_host

pytestmark = pytest.mark.integration

FIRST_PAGE = "Hello from Flask on pronghorn"
CHANGED_PAGE = "Hello from Debian 13"


def deploy(box, app, *extra):
    run = invoke("deploy", "--host", box.ssh_alias, "--app", str(app), *extra)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def page(box):
    response = requests.get(f"http://{box.address}/", timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def live_release(box):
    return on_host(box, "readlink /srv/flaskapp/current").stdout.strip()


def test_deploy_change_and_rollback_on_debian_13(trixie_sandbox, tmp_path):
    box = trixie_sandbox
    assert 'VERSION_ID="13"' in on_host(box, "cat /etc/os-release").stdout
    app = tmp_path / "flask"
    shutil.copytree(REPO / "examples" / "flask", app)

    out = deploy(box, app)
    assert f"site: http://{box.address}/" in out and "python 3.13" in out
    assert FIRST_PAGE in page(box)
    first = live_release(box)

    code = app / "app.py"
    code.write_text(code.read_text().replace(FIRST_PAGE, CHANGED_PAGE))
    out = deploy(box, app)
    assert "reused venvs/" in out  # a code-only change keeps the venv, on 3.13 as on 3.11
    assert CHANGED_PAGE in page(box)
    assert live_release(box) != first

    back = invoke("rollback", "--host", box.ssh_alias, "--app", str(app))
    assert back.returncode == 0, back.stdout + back.stderr
    text = page(box)
    assert FIRST_PAGE in text and CHANGED_PAGE not in text
    assert live_release(box) == first
    assert on_host(box, "systemctl is-active flaskapp.service nginx").stdout.split() == ["active", "active"]
