"""Maintenance mode on a sandbox host (issue 14): `invoke maintenance.on` makes nginx answer the
app's visitors with 503, Retry-After and the maintenance page, while the app keeps running for
the host itself (`invoke status`'s health check, `invoke run`) and a deploy meanwhile goes
through and keeps it on; `status` says it is on, the audit trail has both changes, and
`maintenance.off` serves the app again."""

import pytest
import requests

from tests.integration.helpers import invoke

pytestmark = pytest.mark.integration

APP = "maintapp"

APP_PY = '''def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"{text}"]
'''


def write_app(folder, text):
    (folder / "app.py").write_text(APP_PY.format(text=text))
    (folder / "deploy.toml").write_text(f'[app]\nname = "{APP}"\nframework = "wsgi"\nwsgi = "app:app"\n'
                                        f'domains = ["{APP}.test"]\n')


def test_maintenance_on_serves_503_to_visitors_and_off_serves_the_app(sandbox, tmp_path):
    app = tmp_path / APP
    app.mkdir()
    write_app(app, "version one")
    where = ["--host", sandbox.ssh_alias, "--app", str(app)]

    def visit(path="/"):
        return requests.get(f"http://{sandbox.address}{path}", headers={"Host": f"{APP}.test"}, timeout=10)

    done = invoke("deploy", *where)
    assert done.returncode == 0, done.stdout + done.stderr
    assert visit().text == "version one"

    on = invoke("maintenance.on", *where)
    assert on.returncode == 0, on.stdout + on.stderr
    assert "maintenance.off" in on.stdout  # says how to end it
    for path in ("/", "/some/page?x=1"):
        page = visit(path)
        assert page.status_code == 503
        assert page.headers["Retry-After"] == "300"
        assert "Down for maintenance" in page.text and "version one" not in page.text

    # the host itself still reaches the app: status's health check, invoke run
    status = invoke("status", *where)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "maintenance: on since" in status.stdout
    run = invoke("run", *where, "--", "python", "-c", "print('runs on the host')")
    assert run.returncode == 0 and "runs on the host" in run.stdout, run.stdout + run.stderr

    # a deploy while it is on goes through (its health check comes from the host) and keeps it on
    write_app(app, "version two")
    during = invoke("deploy", *where)
    assert during.returncode == 0, during.stdout + during.stderr
    assert visit().status_code == 503

    off = invoke("maintenance.off", *where)
    assert off.returncode == 0, off.stdout + off.stderr
    answer = visit()
    assert (answer.status_code, answer.text) == (200, "version two")
    assert "maintenance" not in invoke("status", *where).stdout
    again = invoke("maintenance.off", *where)
    assert again.returncode == 0 and "was not on" in again.stdout

    history = [line.split() for line in invoke("history", *where).stdout.splitlines() if " maintenance " in line]
    assert [fields[-1] for fields in history][-2:] == ["on", "off"], history  # the second off changed nothing
