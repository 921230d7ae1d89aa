"""`invoke TASK -h` prints the task's help, for every task, and each flag's help fits its task.

invoke gives each flag a short form from its first free letter, so a task with `--host` once took
`-h` for it: `invoke deploy -h` ran the config check instead of printing usage. These tests run
`.venv/bin/invoke TASK -h` from the repository's top folder (where the README runs everything) the
way a user would, for every task the collection has, so a new task or flag is covered by itself.
"""

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INVOKE = REPO / ".venv" / "bin" / "invoke"
sys.path.insert(0, str(REPO))

from tasks import ns  # noqa: E402

TASKS = sorted(ns.task_names)


def arguments(name):
    # get_arguments() pops the help texts off the task it is called on: ask a copy.
    return copy.deepcopy(ns[name]).get_arguments()


def flags(arg):
    return [("--" if len(n) > 1 else "-") + n for n in arg.names]


def invoke(*argv):
    if not INVOKE.exists():
        pytest.skip(f"{INVOKE} is missing: run scripts/bootstrap first")
    return subprocess.run([str(INVOKE), *argv], cwd=REPO, capture_output=True, text=True, timeout=60)


def one_line(text):
    """invoke wraps help texts to the terminal: compare them with the line breaks undone."""
    return re.sub(r"\s+", " ", text)


def test_every_task_is_covered():
    # The list is read from tasks.py's collection; this guards against it coming back empty.
    assert {"deploy", "provision", "rollback", "logs", "lock.release", "sandbox.up"} <= set(TASKS)


@pytest.mark.parametrize("name", TASKS)
def test_no_flag_takes_h(name):
    # Checked in this process first, so a regression fails here rather than by running the task
    # (sandbox.up -h would then build a sandbox host) in the test below.
    taken = [flag for arg in arguments(name) for flag in flags(arg) if flag == "-h"]
    assert not taken, f"a flag of {name} has -h as its short form: -h must stay help"


@pytest.mark.parametrize("name", TASKS)
def test_dash_h_prints_the_tasks_usage(name):
    for arg in arguments(name):  # never run a task for real (see above)
        assert "-h" not in flags(arg)
    result = invoke(name, "-h")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert out.startswith(f"Usage: inv[oke] [--core-opts] {name} "), out
    assert ns[name].__doc__.split()[0] in out  # its docstring
    for arg in arguments(name):
        for flag in flags(arg):
            assert re.search(rf"(^|[\s,]){re.escape(flag)}([\s=,]|$)", out, re.M), (flag, out)
    # The task did not run: no config check (there is no deploy.toml at the repository's top
    # folder, so deploy & co. would have stopped with "error: ..."), nothing on stderr.
    assert "error:" not in out and "next:" not in out, out
    assert result.stderr == ""
    # -h, --help and `invoke --help TASK` are one and the same.
    assert invoke(name, "--help").stdout == out
    assert invoke("--help", name).stdout == out


@pytest.mark.parametrize("name", TASKS)
def test_every_flag_has_help(name):
    for arg in arguments(name):
        assert arg.help and len(arg.help) > 10, f"{name} --{arg.name} has no help text"


HOST_TASKS = [name for name in TASKS if any(arg.name == "host" for arg in arguments(name))]


@pytest.mark.parametrize("name", [name for name in HOST_TASKS if name != "deploy"])
def test_host_help_fits_the_task(name):
    (host,) = [arg for arg in arguments(name) if arg.name == "host"]
    assert "where to deploy" not in host.help.lower()
    assert "deploy the app to" not in host.help.lower()
    # ... and what the user reads says the same.
    out = one_line(invoke(name, "-h").stdout)
    assert "where to deploy" not in out.lower()
    assert one_line(host.help) in out


def test_host_help_differs_from_task_to_task():
    texts = {name: [a.help for a in arguments(name) if a.name == "host"][0] for name in HOST_TASKS}
    assert len(set(texts.values())) == len(texts), texts
    assert "deploy" in texts["deploy"]


def test_other_short_flags_are_kept():
    # Only -h was given up: without a short form of its own, invoke would read `deploy -d` as its
    # own --debug and deploy for real instead of doing a dry run.
    by_name = {arg.name: flags(arg) for arg in arguments("deploy")}
    assert "-d" in by_name["dry"] and "-f" in by_name["force"] and "-a" in by_name["app"]
    assert by_name["host"] == ["--host"]
    assert {arg.name: flags(arg) for arg in arguments("logs")}["n"] == ["-n"]  # README: logs -n 20
