"""A deploy interrupted at a stage boundary, the way a user meets it: `invoke deploy` runs in a
subprocess, the test waits for the line that marks the boundary and sends SIGINT (Ctrl-C) or
SIGKILL (a crashed laptop, a dropped terminal). A bounded request loop through nginx counts
no failed request across the kill and the next deploy, which recovers and succeeds; no lock
is left behind. Also: a step that outlives its timeout is stopped on the host and named.
"""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.integration.helpers import REPO, invoke, on_host

pytestmark = pytest.mark.integration

FLASK = REPO / "examples" / "flask"
APP = "flaskapp"  # the examples' name: one app per host may own the default site ("_")
# Under systemd (which sets INVOCATION_ID) the release takes seconds to start, so a kill right
# after the switch lands before its health check has run.
SLOW_START = "\nimport os, time\nif os.environ.get('INVOCATION_ID'):\n    time.sleep(4)\n"
# The boundaries, as the deploy prints them: the updating stage starts (provisioned, nothing
# uploaded yet); `current` was switched (the service restarts, no health check yet).
BOUNDARIES = {"updating": "  updating", "switched": "current -> releases/"}


def current(sandbox) -> str:
    return on_host(sandbox, f"readlink /srv/{APP}/current").stdout.strip().rsplit("/", 1)[-1]


def lock_exists(sandbox) -> bool:
    return on_host(sandbox, f"test -d /srv/{APP}/.deploy-lock").returncode == 0


def current_is_good(sandbox) -> bool:
    return on_host(sandbox, f"test -e /srv/{APP}/current/.good").returncode == 0


@pytest.fixture(scope="module")
def app_dir(sandbox, tmp_path_factory):
    app = tmp_path_factory.mktemp("interrupted") / "app"
    shutil.copytree(FLASK, app, ignore=shutil.ignore_patterns("__pycache__"))
    # Not the example's exact code: a later module deploying the example changes the host.
    (app / "app.py").write_text((app / "app.py").read_text() + "\n# the interrupted-deploy tests\n")
    run = invoke("deploy", "--host", sandbox.ssh_alias, "--app", str(app))
    assert run.returncode == 0, run.stdout + run.stderr
    return app


def slow_variant(app_dir, tmp_path):
    """A new release (different code) that is slow to start under systemd."""
    app = tmp_path / "slow"
    shutil.copytree(app_dir, app)
    (app / "app.py").write_text((app / "app.py").read_text() + SLOW_START + f"# {tmp_path.name}\n")
    return app


def _interruptible() -> None:
    """In the child: Ctrl-C's default, whatever the test run inherited. A run started in the
    background by a shell without job control (`make test &` in a script) ignores SIGINT, and
    Python then never turns it into KeyboardInterrupt: the deploy would not see the Ctrl-C the
    test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Deploy:
    """`invoke deploy` in a subprocess whose output lines are collected as they come."""

    def __init__(self, sandbox, app):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "invoke", "deploy", "--host", sandbox.ssh_alias, "--app", str(app)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=_interruptible)
        self.lines, self._seen = [], threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()
        with self._seen:
            self.lines.append(None)  # end of output
            self._seen.notify_all()

    def wait_for(self, marker: str, limit: float = 300) -> None:
        deadline = time.monotonic() + limit
        with self._seen:
            while not any(line is not None and marker in line for line in self.lines):
                assert None not in self.lines, f"the deploy ended before {marker!r}:\n{self.output}"
                assert time.monotonic() < deadline, f"no {marker!r} within {limit} s:\n{self.output}"
                self._seen.wait(1)

    def finish(self, limit: float = 300) -> int:
        code = self.proc.wait(limit)
        with self._seen:
            while None not in self.lines:
                self._seen.wait(1)
        return code

    @property
    def output(self) -> str:
        return "".join(line for line in self.lines if line is not None)


@pytest.mark.parametrize("boundary", sorted(BOUNDARIES))
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_deploy_killed_at_a_stage_boundary_is_recovered_by_the_next(sandbox, app_dir, tmp_path,
                                                                     request_loop, sig, boundary):
    before = current(sandbox)
    with request_loop(f"http://{sandbox.address}/", max_requests=20000, max_seconds=400) as loop:
        deploy = Deploy(sandbox, slow_variant(app_dir, tmp_path))
        deploy.wait_for(BOUNDARIES[boundary])
        deploy.proc.send_signal(sig)
        code = deploy.finish()
        assert code != 0
        if sig == signal.SIGINT:
            # Ctrl-C: the deploy put the site back and unlocked before it exited.
            assert "interrupted" in deploy.output, deploy.output
            assert not lock_exists(sandbox)
            assert current(sandbox) == before
            if boundary == "switched":
                assert f"rolled back to {before}: it answers again" in deploy.output, deploy.output
        else:
            assert lock_exists(sandbox)  # a killed process cleans nothing: the next run must
        again = invoke("deploy", "--host", sandbox.ssh_alias, "--app", str(app_dir))
    assert again.returncode == 0, again.stdout + again.stderr
    if sig == signal.SIGKILL:
        assert "taken over from a deploy that no longer runs" in again.stdout, again.stdout
        if boundary == "switched":
            assert "was never verified (an interrupted deploy)" in again.stdout, again.stdout
    assert loop.done > 0 and loop.failures == [], loop.summary()
    assert not lock_exists(sandbox)
    assert current_is_good(sandbox) and current(sandbox) == before  # the same code: put back, unchanged


# A local requirement whose build backend takes ten minutes: pip is surely still at work when
# the deploy is stopped (in-tree backend, no build requirements: nothing is downloaded).
SLOW_BUILD = {
    "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "slowbackend"\nbackend-path = ["."]\n',
    "slowbackend.py": "import time\n\n\ndef get_requires_for_build_wheel(config_settings=None):\n"
                      "    time.sleep(600)\n    return []\n",
}
PIP_RUNS = "pgrep -f 'slowbacken[d]|pip instal[l]'"  # [d], [l]: never pgrep's own shell


def wait_on_host(sandbox, command, succeeds: bool, limit: float = 60) -> bool:
    """Whether `command` comes to succeed (or fail) on the host within `limit` seconds."""
    deadline = time.monotonic() + limit
    while (on_host(sandbox, command).returncode == 0) != succeeds:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_deploy_stopped_while_pip_runs_leaves_no_pip_running_on_the_host(sandbox, app_dir, tmp_path, sig):
    app = slow_variant(app_dir, tmp_path)
    (app / "slowpkg").mkdir()
    for name, text in SLOW_BUILD.items():
        (app / "slowpkg" / name).write_text(text)
    requirements = app / "requirements.txt"
    requirements.write_text(requirements.read_text() + "\n./slowpkg\n")
    deploy = Deploy(sandbox, app)
    try:
        deploy.wait_for("upload releases/")  # uploaded: the venv is built next
        assert wait_on_host(sandbox, PIP_RUNS, True), "pip never started:\n" + deploy.output
        deploy.proc.send_signal(sig)
        assert deploy.finish() != 0
        # Left alone, the build would run ten minutes more.
        assert wait_on_host(sandbox, PIP_RUNS, False, limit=30), "pip still runs after the deploy ended"
    finally:
        deploy.proc.kill()
        on_host(sandbox, "pkill -f 'slowbacken[d]'")
    again = invoke("deploy", "--host", sandbox.ssh_alias, "--app", str(app_dir))
    assert again.returncode == 0, again.stdout + again.stderr
    assert not lock_exists(sandbox) and current_is_good(sandbox)


@pytest.mark.parametrize("command", ["status", "rollback"])
def test_status_or_rollback_put_back_what_a_killed_deploy_left_unverified(sandbox, app_dir, tmp_path, command):
    before = current(sandbox)
    deploy = Deploy(sandbox, slow_variant(app_dir, tmp_path))
    deploy.wait_for(BOUNDARIES["switched"])
    deploy.proc.send_signal(signal.SIGKILL)
    deploy.finish()
    assert current(sandbox) != before and not current_is_good(sandbox)
    run = invoke(command, "--host", sandbox.ssh_alias, "--app", str(app_dir))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "taken over from a deploy that no longer runs" in run.stdout, run.stdout
    assert f"was never verified (an interrupted deploy): current -> releases/{before}" in run.stdout, run.stdout
    assert current(sandbox) == before and not lock_exists(sandbox)
    history = invoke("history", "--host", sandbox.ssh_alias, "--app", str(app_dir), "-n", "3").stdout
    assert f"never verified; put back {before}: ok" in history


def test_a_step_past_its_timeout_is_named_and_stopped_on_the_host(sandbox):
    from toolkit import hosts
    from toolkit.remote import StepTimeout, sh

    conn = hosts.connect(hosts.parse_host(sandbox.ssh_alias))
    try:
        with pytest.raises(StepTimeout, match="manage.py migrate did not finish within 2 s and was stopped"):
            sh(conn, "sleep 300 # ir-timeout-probe", timeout=2, stoppable=True, what="manage.py migrate")
        deadline = time.monotonic() + 20  # the hangup reaches the command within moments
        while sh(conn, "pgrep -f 'ir-timeout-prob[e]'", check=False, timeout=30).ok:  # [e]: not pgrep's own sh
            assert time.monotonic() < deadline, "the timed-out command still runs on the host"
            time.sleep(0.5)
    finally:
        conn.close()


def test_a_failed_first_deploy_leaves_nginx_answering_503_at_once(fresh_sandbox, tmp_path):
    import requests

    app = tmp_path / "app"
    shutil.copytree(FLASK, app, ignore=shutil.ignore_patterns("__pycache__"))
    code = app / "app.py"
    code.write_text(code.read_text().replace('return "ok", 200', 'return "database unreachable", 500'))
    run = invoke("deploy", "--host", fresh_sandbox.ssh_alias, "--app", str(app))
    assert run.returncode == 1
    assert "flaskapp.socket is stopped, so the site answers 503 at once" in run.stdout, run.stdout
    assert on_host(fresh_sandbox, "systemctl is-active flaskapp.socket").stdout.strip() == "inactive"
    # Refused by the stopped socket, nginx answers its page now instead of waiting 60 s for a 504.
    assert requests.get(f"http://{fresh_sandbox.address}/", timeout=15).status_code == 503
    assert on_host(fresh_sandbox, f"test -d /srv/{APP}/.deploy-lock").returncode != 0
