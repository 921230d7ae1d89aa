"""`invoke run/manage/shell` and `env.list/set/unset` without a host: the command lines they build
(as the app user, in the release, no value of the environment on them), the framework's command,
the host programs that read and edit the environment (run here as on the host), and the
refusals a person meets before anything is contacted (a value on the command line, manage for a
Flask app), each with a next step that names a real command and never echoes the value."""

import getpass
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from toolkit import app_commands, host_env, onhost
from toolkit.config import load_app_config
from toolkit.errors import ConfigError
from toolkit.onhost import envfile
from toolkit.render import render_all

REPO = Path(__file__).resolve().parents[2]
INVOKE = REPO / ".venv" / "bin" / "invoke"
NOWHERE = "root@203.0.113.10"  # TEST-NET-3: never contacted, the tasks stop before connecting


@pytest.fixture(scope="module")
def django_cfg():
    return load_app_config(REPO / "examples" / "django")


@pytest.fixture(scope="module")
def flask_cfg():
    return load_app_config(REPO / "examples" / "flask")


def program(name, *args, **kw):
    """As on the host: python3 -c SOURCE ARGS."""
    return subprocess.run([sys.executable, "-c", onhost.program(name), *args], capture_output=True,
                          text=True, timeout=30, **kw)


def invoke(*argv, stdin=""):
    if not INVOKE.exists():
        pytest.skip(f"{INVOKE} is missing: run scripts/bootstrap first")
    return subprocess.run([str(INVOKE), *argv], cwd=REPO, capture_output=True, text=True, timeout=60,
                          input=stdin)


# -- what runs, where, as whom ------------------------------------------------------------------

def test_the_command_after_dashes_keeps_its_words():
    argv = ["invoke", "run", "--host", "h", "--", "sh", "-c", "exit 3", "--", "x"]
    assert app_commands.command_after_dashes(argv) == ["sh", "-c", "exit 3", "--", "x"]
    assert app_commands.command_after_dashes(["invoke", "shell", "--host", "h"]) == []


def test_manage_is_djangos_manage_py(django_cfg):
    assert app_commands.manage_argv(django_cfg, ["createsuperuser"]) == ["python", "manage.py", "createsuperuser"]
    assert app_commands.shell_argv(django_cfg) == ["python", "manage.py", "shell"]


def test_manage_for_a_flask_app_points_at_run_with_flask(flask_cfg):
    with pytest.raises(ConfigError) as caught:
        app_commands.manage_argv(flask_cfg, ["migrate"])
    assert "flask app" in str(caught.value)
    assert caught.value.next_step.endswith("run --host <host> --app <app> -- flask --app app:app --help")


def test_shell_is_the_frameworks(flask_cfg):
    assert app_commands.shell_argv(flask_cfg) == ["flask", "--app", "app:app", "shell"]
    bottle = load_app_config(REPO / "examples" / "bottle")
    assert app_commands.shell_argv(bottle) == ["python"]


def test_the_command_runs_as_the_app_user_in_the_release_with_no_value_on_the_line(django_cfg):
    env = next(f for f in render_all(django_cfg, {"env": {"SECRET_KEY": "s3cr3t-value"}})
               if f.path == django_cfg.layout.env_file)
    assert "s3cr3t-value" in env.content  # the secret is in the file the host reads...
    live = app_commands.Live("/srv/djangoapp/releases/20260101000000")
    line = app_commands.as_app_line(django_cfg, live, ["printenv", "SECRET_KEY"])
    assert "s3cr3t-value" not in line  # ...and never on the command line
    assert line.startswith("cd /srv/djangoapp/releases/20260101000000 && exec runuser -u djangoapp -- "
                           "/srv/djangoapp/releases/20260101000000/.venv/bin/python -c ")
    assert line.endswith(" /srv/djangoapp/shared/.env printenv SECRET_KEY")


class FakeTty:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        return self.tty


def test_a_terminal_only_when_both_ends_are_terminals():
    assert app_commands.wants_tty(FakeTty(True), FakeTty(True))
    assert not app_commands.wants_tty(FakeTty(True), FakeTty(False))  # invoke run -- cat x > file
    assert not app_commands.wants_tty(FakeTty(False), FakeTty(True))  # echo y | invoke run -- ...
    assert not app_commands.wants_tty(None, FakeTty(True))


# -- env_exec: the app's environment on the host ------------------------------------------------

def test_env_exec_reads_the_host_values_last_and_puts_the_venv_first(tmp_path):
    (tmp_path / ".env").write_text("A='deploy'\nB='deploy'\n")
    (tmp_path / ".env.local").write_text("B='host'\n")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    tool = venv / "bin" / "apptool"
    tool.write_text("#!/bin/sh\necho \"$A $B $VIRTUAL_ENV\"\n")
    tool.chmod(0o755)
    python = venv / "bin" / "python"
    python.symlink_to(sys.executable)
    done = subprocess.run([str(python), "-c", onhost.program("env_exec"), str(tmp_path / ".env"), "apptool"],
                          capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"deploy host {venv}"


def test_env_exec_says_command_not_found_with_the_shells_code(tmp_path):
    done = program("env_exec", str(tmp_path / ".env"), "no-such-program-here")
    assert done.returncode == 127
    assert "no-such-program-here: command not found" in done.stderr


# -- env_edit: list masked on the host, set from stdin, unset ------------------------------------

def test_list_shows_only_non_secret_deploy_values(tmp_path):
    env = tmp_path / ".env"
    env.write_text("DEBUG='false'\nSECRET_KEY='k-123'\nOVERRIDDEN='deploy'\n")
    (tmp_path / ".env.local").write_text("OVERRIDDEN='mine'\nAPI_TOKEN='t-456'\n")
    done = program("env_edit", "list", str(env), "DEBUG,OVERRIDDEN")
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert rows == [["DEBUG", "deploy", "false"], ["SECRET_KEY", "deploy", "********"],
                    ["OVERRIDDEN", "host", "********"], ["API_TOKEN", "host", "********"]]
    assert "k-123" not in done.stdout and "t-456" not in done.stdout and "mine" not in done.stdout


def test_set_takes_the_value_from_stdin_and_keeps_the_file_private(tmp_path):
    env = tmp_path / ".env"
    me = getpass.getuser()
    tricky = "it's $HOME `x` \"q\" \\ #"
    assert program("env_edit", "set", str(env), me, "TOKEN", input=tricky + "\n").returncode == 0
    assert program("env_edit", "set", str(env), me, "OTHER", input="2").returncode == 0
    assert program("env_edit", "set", str(env), me, "TOKEN", input="new " + tricky).returncode == 0
    local = tmp_path / ".env.local"
    assert envfile.read(local) == {"TOKEN": "new " + tricky, "OTHER": "2"}
    assert os.stat(local).st_mode & 0o777 == 0o600
    assert not env.exists()  # the deploy's file is never written
    bad = program("env_edit", "set", str(env), me, "X", input="two\nlines")
    assert bad.returncode != 0 and "one line" in bad.stderr
    assert program("env_edit", "unset", str(env), me, "TOKEN").returncode == 0
    assert envfile.read(local) == {"OTHER": "2"}
    assert program("env_edit", "unset", str(env), me, "TOKEN").returncode == host_env.NOT_THERE_EXIT


def test_the_unit_reads_the_host_values_after_the_deploys(django_cfg):
    unit = next(f for f in render_all(django_cfg, mask_secrets=True) if f.path.endswith("/djangoapp.service"))
    lines = [line for line in unit.content.splitlines() if line.startswith("EnvironmentFile=")]
    assert lines == [f"EnvironmentFile={django_cfg.layout.env_file}",
                     f"EnvironmentFile=-{host_env.local_env_file(django_cfg.layout)}"]


def test_only_non_secret_names_are_shown(django_cfg):
    shown = host_env.shown_names(replace(django_cfg, env={**django_cfg.env, "SECRET_KEY": "x"}))
    assert "DEBUG" in shown and "ALLOWED_HOSTS" in shown and "SECRET_KEY" not in shown


# -- refusals before any host is contacted -------------------------------------------------------

def test_a_value_on_the_command_line_is_refused_without_being_echoed():
    with pytest.raises(ConfigError) as caught:
        host_env.check_name("API_TOKEN=hunter2-secret")
    assert "hunter2" not in str(caught.value) and "hunter2" not in caught.value.next_step
    assert caught.value.next_step.endswith("env.set --host <host> --app <app> --name API_TOKEN")
    for bad in ("", "1ABC", "A-B", "A B"):
        with pytest.raises(ConfigError):
            host_env.check_name(bad)
    assert host_env.check_name("_Ok9") == "_Ok9"


def test_the_value_is_one_line_and_not_empty():
    assert host_env.value_from("v a l\n", "X") == "v a l"
    assert host_env.value_from("v\r\n", "X") == "v"
    for bad in ("", "\n", "a\nb", "a\0b", "x" * (host_env.MAX_VALUE + 1)):
        with pytest.raises(ConfigError):
            host_env.value_from(bad, "X")


def test_env_set_with_a_value_in_argv_stops_with_a_hint():
    done = invoke("env.set", "--app", "examples/flask", "--host", NOWHERE, "--name", "API_TOKEN=hunter2")
    assert done.returncode == 2
    assert "hunter2" not in done.stdout + done.stderr
    assert f"invoke env.set --host {NOWHERE} --app examples/flask --name API_TOKEN\n" in done.stderr


def test_manage_for_flask_and_run_without_a_command_stop_with_hints():
    done = invoke("manage", "--app", "examples/flask", "--host", NOWHERE, "--", "migrate")
    assert done.returncode == 2
    assert f"invoke run --host {NOWHERE} --app examples/flask -- flask --app app:app --help\n" in done.stderr
    done = invoke("run", "--app", "examples/flask", "--host", NOWHERE)
    assert done.returncode == 2
    assert f"invoke run --host {NOWHERE} --app examples/flask -- python --version\n" in done.stderr
