"""`invoke history` shows the host's audit trail: after deploys, a rollback, a lock.release and a
restart, each is listed, newest last, with who did it and how it went; the file is root's alone."""

import shutil

import pytest

from tests.integration.helpers import REPO, invoke, on_host
from toolkit import lock

pytestmark = pytest.mark.integration

APP = "flaskapp"  # the examples' name: one app per host may own the default site ("_")


def test_history_lists_deploy_rollback_lock_release_and_restart(sandbox, tmp_path):
    app = tmp_path / "app"
    shutil.copytree(REPO / "examples" / "flask", app, ignore=shutil.ignore_patterns("__pycache__"))
    # Not the example's exact code: a later module deploying the example changes the host.
    (app / "app.py").write_text((app / "app.py").read_text() + "\n# the history test\n")
    host = ["--host", sandbox.ssh_alias, "--app", str(app)]

    first = invoke("deploy", *host)
    assert first.returncode == 0, first.stdout + first.stderr
    (app / "app.py").write_text((app / "app.py").read_text() + "\n# a second release\n")
    second = invoke("deploy", *host)
    assert second.returncode == 0, second.stdout + second.stderr
    newer = on_host(sandbox, f"readlink /srv/{APP}/current").stdout.strip().rsplit("/", 1)[-1]
    back = invoke("rollback", *host)
    assert back.returncode == 0, back.stdout + back.stderr
    # A lock someone else left behind (another machine: never taken over, only released by hand).
    left = "bob@elsewhere since 2026-01-01 10:00:00 UTC (pid 1)"
    assert on_host(sandbox, f"mkdir /srv/{APP}/.deploy-lock && echo '{left}' > /srv/{APP}/.deploy-lock/who"
                   ).returncode == 0
    assert invoke("lock.release", *host).returncode == 0
    assert invoke("restart", *host).returncode == 0

    shown = invoke("history", *host, "-n", "4")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    rows = [line.split(None, 4) for line in shown.stdout.splitlines() if line.startswith("  20")]
    assert [row[2] for row in rows] == ["deploy", "rollback", "lock", "restart"], shown.stdout
    assert all(row[1] == lock.who() for row in rows)
    deploy, rollback, released, restart = (row[4] for row in rows)
    assert rows[0][3] == newer and deploy == "ok"
    assert rollback == f"ok, from {newer}"
    assert released == f"released (was held by {left})"
    assert restart == "ok"
    assert on_host(sandbox, f"stat -c '%U %a' /srv/{APP}/deploy.log").stdout.split() == ["root", "600"]
