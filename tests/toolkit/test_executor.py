"""The executor against a fake host: a dry run runs nothing, files of one step go up in one tar,
failures become RemoteError (or the change's own explanation), background changes run later."""

import io
import tarfile
from dataclasses import dataclass

import pytest

from toolkit import executor
from toolkit.errors import DeployError, RemoteError
from toolkit.executor import Change
from toolkit.remote import Result
from toolkit.report import Reporter


@dataclass(frozen=True)
class File:
    path: str
    content: str
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"


class FakeHost:
    """Records the scripts run; answers exit 0, or what `answers` says for a script containing a key."""

    def __init__(self):
        self.scripts, self.stdins, self.answers = [], [], {}

    def sh(self, c, script, what=None, check=True, stdin=None, timeout=None):
        self.scripts.append(script)
        self.stdins.append(stdin)
        for needle, result in self.answers.items():
            if needle in script:
                return result
        return Result("", "", 0)


@pytest.fixture
def fake(monkeypatch):
    host = FakeHost()
    monkeypatch.setattr("toolkit.executor.sh", host.sh)
    return host


def members(tar_bytes):
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return [(m.name, m.mode, m.uname) for m in tar.getmembers()]


A = File("/etc/a.conf", "a\n")
B = File("/srv/shop/shared/.env", "B='1'\n", 0o600, "shop", "shop")


def test_no_changes_is_ok_and_runs_nothing(fake):
    rep = Reporter(out=io.StringIO())
    assert executor.apply(None, rep, "systemd units", []) is False
    assert fake.scripts == []
    assert "ok" in rep.out.getvalue() and "systemd units" in rep.out.getvalue()


def test_dry_run_prints_the_plan_and_runs_nothing(fake):
    rep = Reporter(out=io.StringIO(), dry=True)
    changes = [Change("a.conf", "missing", files=(A,)), Change("enabled x.socket", script="systemctl enable x")]
    assert executor.apply(None, rep, "systemd units", changes, dry=True) is True
    assert fake.scripts == []
    assert "would change" in rep.out.getvalue()
    assert "a.conf (missing), enabled x.socket" in rep.out.getvalue()


def test_files_of_one_step_go_up_in_one_tar_before_the_script(fake):
    rep = Reporter(out=io.StringIO())
    changes = [Change("a.conf", "missing", files=(A,)), Change(".env", "content", files=(B,)),
               Change("", script="systemctl daemon-reload")]
    assert executor.apply(None, rep, "app files", changes) is True
    assert len(fake.scripts) == 2
    assert fake.scripts[0].startswith("tar -xzf - -C /")
    assert members(fake.stdins[0]) == [("etc/a.conf", 0o644, "root"), ("srv/shop/shared/.env", 0o600, "shop")]
    assert fake.scripts[1] == "systemctl daemon-reload"
    assert "changed" in rep.out.getvalue() and "a.conf (missing), .env (content)" in rep.out.getvalue()


def test_files_and_script_in_one_change_share_a_round_trip(fake):
    executor.apply(None, Reporter(out=io.StringIO()), "x", [Change("a", files=(A,), script="update-it")])
    assert fake.scripts == ["tar -xzf - -C / --same-owner --same-permissions --no-overwrite-dir && update-it"]


def test_tar_on_stdin_is_left_to_the_script(fake):
    executor.apply(None, Reporter(out=io.StringIO()), "x",
                   [Change("a", files=(A,), script="my own unpacking", tar_on_stdin=True)])
    assert fake.scripts == ["my own unpacking"] and members(fake.stdins[0])[0][0] == "etc/a.conf"


def test_failure_is_a_remote_error_naming_the_command_and_the_step_failed(fake):
    fake.answers = {"useradd": Result("useradd: bad\n", "", 9)}
    rep = Reporter(out=io.StringIO())
    with pytest.raises(RemoteError, match=r"creating user shop failed \(exit 9\):\nuseradd: bad"):
        executor.apply(None, rep, "user shop", [Change("created user", script="useradd shop",
                                                       label="creating user shop")])
    assert "failed" in rep.out.getvalue()


def test_a_change_can_explain_its_failure(fake):
    fake.answers = {"nginx -t": Result("duplicate default server", "", 1)}

    def explain(output):
        return DeployError("two defaults", "fix it") if "duplicate" in output else None

    with pytest.raises(DeployError, match="two defaults"):
        executor.apply(None, Reporter(out=io.StringIO()), "nginx site",
                       [Change("site", script="nginx -t", explain=explain)])


def test_background_changes_run_after_the_step_and_raise_when_waited_for(fake):
    fake.answers = {"nginx": Result("E: Unable to locate package nginx", "", 100)}
    rep = Reporter(out=io.StringIO())
    changes = [Change("install python3-venv", script="apt-get install python3-venv"),
               Change("nginx in the background", script="apt-get install nginx", background=True)]
    changed, job = executor.apply_started(None, rep, "apt packages", changes)
    assert changed and job is not None
    with pytest.raises(RemoteError, match="Unable to locate"):
        job.result(timeout=10)
    assert fake.scripts == ["apt-get install python3-venv", "apt-get install nginx"]


def test_dry_run_starts_nothing_in_the_background(fake):
    changed, job = executor.apply_started(None, Reporter(out=io.StringIO(), dry=True), "apt packages",
                                          [Change("nginx", script="apt-get install nginx", background=True)],
                                          dry=True)
    assert (changed, job, fake.scripts) == (True, None, [])
