"""[processes] and [schedule] on a sandbox host, as a person uses them: a Flask app with a `ticker`
process that appends its release's marker to shared/data every second, and a job every 10 s.

deploy -> the ticker runs the release's code as the app user; a changed release -> the ticker
restarts onto it; `invoke rollback` -> back on the old code; a release whose ticker crashes at
once fails its deploy with the crash shown and is rolled back, web and ticker; the timer's job runs and writes;
`invoke status` and `invoke logs --process` show them; removed from deploy.toml -> stopped and
their units gone. Every wait is a bounded poll of the host.
"""

import shutil
import time

import pytest

from tests.integration.helpers import REPO, invoke, on_host

pytestmark = pytest.mark.integration

APP = "prticker"
DATA = f"/srv/{APP}/shared/data"
UNIT_DIR = "/etc/systemd/system"

DEPLOY_TOML = f'''[app]
name = "{APP}"
domains = ["ticker.test"]

[health]
path = "/healthz"
'''

EXTRAS = '''
[processes]
ticker = "python ticker.py"

[schedule]
stamp = { command = "python ticker.py once", on = "*:*:0/10" }

[services]
redis = true
'''

TICKER = '''"""The integration test's process: this release's marker, once a second, into shared/data."""
import os
import sys
import time

marker = open("marker.txt").read().strip()
data = os.environ["APP_DATA_DIR"]
if marker == "crash":
    raise SystemExit("ticker: this release crashes at start")
if sys.argv[1:] == ["once"]:
    with open(os.path.join(data, "stamps.log"), "a") as out:
        out.write(marker + "\\n")
    sys.exit(0)
print(f"ticker started: {marker}", flush=True)
while True:
    if os.path.exists(os.path.join(data, "crash")):  # the test breaks it on the host
        raise SystemExit("ticker: crash file found")
    with open(os.path.join(data, "ticks.log"), "a") as out:
        out.write(marker + "\\n")
    time.sleep(1)
'''


def deploy(app):
    run = invoke("deploy", "--host", app.box.ssh_alias, "--app", str(app.path))
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def host_out(box, command):
    result = on_host(box, command)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def wait_for(box, command, want, seconds=40):
    """Poll `command` on the host (bounded: `seconds`) until its output is `want`; the last output."""
    out = ""
    for _ in range(int(seconds)):
        out = on_host(box, command).stdout.strip()
        if out == want:
            return out
        time.sleep(1)
    return out


def last_tick(box):
    return f"tail -n 1 {DATA}/ticks.log 2>/dev/null"


class App:
    def __init__(self, box, path):
        self.box, self.path = box, path

    def set_marker(self, marker):
        (self.path / "marker.txt").write_text(marker + "\n")


@pytest.fixture(scope="module")
def ticker_app(sandbox, tmp_path_factory):
    path = tmp_path_factory.mktemp("processes") / "app"
    shutil.copytree(REPO / "examples" / "flask", path, ignore=shutil.ignore_patterns("__pycache__"))
    (path / "deploy.toml").write_text(DEPLOY_TOML + EXTRAS)
    (path / "ticker.py").write_text(TICKER)
    app = App(sandbox, path)
    app.set_marker("v1")
    deploy(app)
    return app


def test_the_process_runs_the_live_release_as_the_app_user(ticker_app):
    box = ticker_app.box
    assert wait_for(box, last_tick(box), "v1") == "v1"
    pid = host_out(box, f"systemctl show -p MainPID --value {APP}-ticker.service")
    assert host_out(box, f"ps -o user= -p {pid}") == APP
    assert host_out(box, f"readlink /proc/{pid}/cwd") == host_out(box, f"readlink -f /srv/{APP}/current")
    logs = invoke("logs", "--host", box.ssh_alias, "--app", str(ticker_app.path), "--process", "ticker")
    assert logs.returncode == 0 and "ticker started: v1" in logs.stdout, logs.stdout + logs.stderr


def test_provisioning_again_changes_nothing(ticker_app):
    """Processes, timers and redis as wanted: their steps are ok (nothing restarted, no new password)."""
    run = invoke("provision", "--host", ticker_app.box.ssh_alias, "--app", str(ticker_app.path))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 changed, 0 failed" in run.stdout, run.stdout


def test_a_new_release_restarts_the_process_and_a_rollback_takes_it_back(ticker_app):
    box = ticker_app.box
    ticker_app.set_marker("v2")
    out = deploy(ticker_app)
    assert "restart the processes" in out
    assert wait_for(box, last_tick(box), "v2") == "v2"
    run = invoke("rollback", "--host", box.ssh_alias, "--app", str(ticker_app.path))
    assert run.returncode == 0, run.stdout + run.stderr
    assert wait_for(box, last_tick(box), "v1") == "v1"


def test_a_process_crashing_in_the_new_release_fails_the_deploy_and_both_are_rolled_back(ticker_app):
    box = ticker_app.box
    ticker_app.set_marker("crash")
    run = invoke("deploy", "--host", box.ssh_alias, "--app", str(ticker_app.path))
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "ticker did not stay up" in out and "ticker: this release crashes at start" in out, out
    assert "rolled back to" in out and "it answers again" in out, out
    next_line = next(line for line in out.splitlines() if line.strip().startswith("next:"))
    assert "logs" in next_line and "--process ticker" in next_line, out
    assert wait_for(box, last_tick(box), "v1") == "v1"          # the ticker is back on the old code
    assert host_out(box, f"systemctl show -p NRestarts --value {APP}-ticker.service") == "0"
    assert host_out(box, f"readlink -f /srv/{APP}/current/marker.txt | xargs cat") == "v1"
    logs = invoke("logs", "--host", box.ssh_alias, "--app", str(ticker_app.path), "--process", "ticker")
    assert "this release crashes at start" in logs.stdout, logs.stdout + logs.stderr
    ticker_app.set_marker("v1")


def test_a_first_release_whose_process_crashes_leaves_nothing_running(ticker_app, tmp_path):
    """No good release to go back to: the site answers 503 and the process is stopped, not left
    crash-looping on a release that failed."""
    box, app = ticker_app.box, tmp_path / "firstcrash"
    shutil.copytree(REPO / "examples" / "flask", app, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "deploy.toml").write_text('[app]\nname = "prfirst"\ndomains = ["first.test"]\n'
                                     '[processes]\nbad = "python -c \'raise SystemExit(4)\'"\n')
    run = invoke("deploy", "--host", box.ssh_alias, "--app", str(app))
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "bad did not stay up (it exited with status 4" in out, out
    assert "its processes are stopped too" in out, out
    assert on_host(box, "systemctl is-active prfirst-bad.service prfirst.socket").stdout.split() \
        == ["inactive", "inactive"]


def test_the_scheduled_job_runs_and_status_shows_it(ticker_app):
    box = ticker_app.box
    assert wait_for(box, f"test -s {DATA}/stamps.log && echo ran", "ran", seconds=40) == "ran"
    # The crash tests above make a crashing release live for a few seconds; a run of the timer in
    # that window fails (as it should) and stays the last run until the next one, 10 s later.
    result = f"systemctl show -p Result --value {APP}-stamp.service"
    assert wait_for(box, result, "success", seconds=40) == "success"
    status = invoke("status", "--host", box.ssh_alias, "--app", str(ticker_app.path))
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"{APP}-ticker.service" in status.stdout and "enabled / active" in status.stdout
    assert f"{APP}-stamp.timer" in status.stdout and "last run:" in status.stdout
    assert "(ok)" in status.stdout and "next:" in status.stdout


def test_redis_answers_with_the_apps_password_only_and_on_localhost(ticker_app):
    box = ticker_app.box
    env = f"set -a; . /srv/{APP}/shared/.env; set +a"
    assert host_out(box, f'{env}; redis-cli --no-auth-warning -u "$REDIS_URL" ping') == "PONG"
    assert "NOAUTH" in on_host(box, "redis-cli -h 127.0.0.1 ping").stdout
    assert host_out(box, f'{env}; redis-cli --no-auth-warning -u "$REDIS_URL" config get bind') \
        .splitlines()[-1] == "127.0.0.1 -::1"
    password = host_out(box, f'{env}; echo "$REDIS_URL"').split(":")[2].split("@")[0]
    cmdline = host_out(box, "tr '\\0' ' ' < /proc/$(systemctl show -p MainPID --value redis-server)/cmdline")
    exec_start = host_out(box, "systemctl show -p ExecStart --value redis-server")
    assert "/etc/redis/pronghorn.conf" in exec_start and password not in exec_start + cmdline
    assert host_out(box, "stat -c '%U:%G %a' /etc/redis/pronghorn.conf") == "root:redis 640"


def test_a_process_crashing_after_its_deploy_makes_status_say_so(ticker_app):
    box = ticker_app.box
    host_out(box, f"touch {DATA}/crash")
    try:
        # Restart=always brings it back every 2 s and it ends again: never "active" for long.
        assert wait_for(box, f"systemctl show -p NRestarts --value {APP}-ticker.service | grep -qv '^0$' "
                             "&& echo crashing", "crashing") == "crashing"
        status = invoke("status", "--host", box.ssh_alias, "--app", str(ticker_app.path))
        assert status.returncode == 1, status.stdout + status.stderr
        line = next(line for line in status.stdout.splitlines() if f"{APP}-ticker.service" in line)
        # between two crashes the unit is "active" for a moment: the restart count says it all the same
        assert "systemd restarted it" in line, line
        assert "ticker: not running" in status.stdout and "--process ticker" in status.stdout
    finally:
        host_out(box, f"rm -f {DATA}/crash")


def test_removed_from_deploy_toml_they_are_stopped_and_removed(ticker_app):
    box = ticker_app.box
    (ticker_app.path / "deploy.toml").write_text(DEPLOY_TOML)
    deploy(ticker_app)
    assert on_host(box, f"systemctl is-active {APP}-ticker.service {APP}-stamp.timer").stdout.split() \
        == ["inactive", "inactive"]
    for unit in ("ticker.service", "stamp.service", "stamp.timer"):
        assert on_host(box, f"test -e {UNIT_DIR}/{APP}-{unit}").returncode == 1, unit
    before = host_out(box, f"wc -l < {DATA}/ticks.log")
    time.sleep(2)  # not a timing assertion: a running ticker would have written meanwhile
    assert host_out(box, f"wc -l < {DATA}/ticks.log") == before
