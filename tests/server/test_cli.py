"""The `pronghorn` command: exit statuses and what it prints for errors, checks and listings."""

import os
import pathlib
import subprocess
import sys

import pytest

import pronghorn
from pronghorn import cli

SERVER_DIR = str(pathlib.Path(pronghorn.__file__).resolve().parents[1])


@pytest.fixture(autouse=True)
def clean(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("PRONGHORN_CMD_ARGS", "WEB_CONCURRENCY", "PORT", "FORWARDED_ALLOW_IPS"):
        monkeypatch.delenv(name, raising=False)
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def run_main(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_bad_flag_value_is_one_line_and_status_2(capsys):
    status, out, err = run_main(["--workers", "abc", "app:app"], capsys)
    assert status == 2 and out == ""
    assert err == "pronghorn: error: --workers: 'abc' is not a whole number (expected e.g. --workers 4)\n"


def test_unknown_setting_in_config_file(tmp_path, capsys):
    (tmp_path / "pronghorn.conf.py").write_text("worker = 2\n")
    status, _, err = run_main(["app:app"], capsys)
    assert status == 2
    assert err == "pronghorn: error: pronghorn.conf.py: unknown setting 'worker' (did you mean 'workers'?)\n"


def test_version_and_help_exit_0(capsys):
    status, out, _ = run_main(["--version"], capsys)
    assert status == 0 and out == f"pronghorn {pronghorn.__version__}\n"
    status, out, _ = run_main(["-h"], capsys)
    assert status == 0 and out.startswith("usage: pronghorn") and "--graceful-timeout" in out


def test_print_config(capsys):
    status, out, _ = run_main(["--print-config", "-w", "3", "app:app"], capsys)
    lines = out.splitlines()
    assert status == 0
    assert "workers = 3" in lines and "wsgi_app = 'app:app'" in lines
    assert lines == sorted(lines)


def test_check_config_imports_the_app(tmp_path, capsys):
    (tmp_path / "goodapp.py").write_text("def application(environ, start_response):\n    return []\n")
    status, out, err = run_main(["--check-config", "goodapp"], capsys)
    assert (status, out, err) == (0, "config ok\n", "")


def test_check_config_reports_the_app_error_and_exits_1(tmp_path, capsys):
    (tmp_path / "brokenapp.py").write_text("raise ImportError('flask is missing')\n")
    status, out, err = run_main(["--check-config", "brokenapp:app"], capsys)
    assert status == 1 and out == ""
    assert err.startswith("pronghorn: error: importing 'brokenapp' failed: ImportError: flask is missing")
    assert err.count("\n") == 1


def test_check_config_without_an_app_checks_only_the_settings(capsys):
    assert run_main(["--check-config", "-w", "2"], capsys)[:2] == (0, "config ok\n")


def test_check_config_prints_why_an_accepted_gunicorn_flag_has_no_effect(tmp_path, capsys):
    """A gunicorn user sees, before starting, what the server would warn about at start."""
    (tmp_path / "pronghorn.conf.py").write_text("http_parser = 'python'\n")
    status, out, err = run_main(["--check-config", "--permit-obsolete-folding", "-w", "2"], capsys)
    assert (status, out) == (0, "config ok\n")  # a warning, not a failed check
    assert err.splitlines() == [
        "pronghorn: warning: permit_obsolete_folding has no effect in pronghorn: folded header "
        "lines stay a 400 (request smuggling, RFC 9112 5.2)",
        "pronghorn: warning: http_parser has no effect in pronghorn: pronghorn has one HTTP parser",
    ]


def test_check_config_with_a_bad_setting_reports_it_and_exits_1(capsys):
    status, _, err = run_main(["--check-config", "-t", "soon", "app:app"], capsys)
    assert status == 1 and err.startswith("pronghorn: error: --timeout: 'soon' is not a number of seconds")


def test_run_hands_the_config_to_the_arbiter(monkeypatch, capsys):
    """main() builds the Config and gives it to Arbiter(cfg).run(); nothing else."""
    seen = []

    class FakeArbiter:
        def __init__(self, cfg):
            seen.append(cfg)

        def run(self):
            raise SystemExit(0)

    fake_module = type(sys)("pronghorn.arbiter")
    fake_module.Arbiter = FakeArbiter
    monkeypatch.setitem(sys.modules, "pronghorn.arbiter", fake_module)
    status, _, _ = run_main(["-w", "2", "app:app"], capsys)
    assert status == 0 and seen[0].workers == 2 and seen[0].app_uri == "app:app"


def test_python_dash_m_pronghorn_as_a_real_process(tmp_path):
    env = dict(os.environ, PYTHONPATH=SERVER_DIR)
    env.pop("PRONGHORN_CMD_ARGS", None)
    result = subprocess.run([sys.executable, "-m", "pronghorn", "--limit-request-line", "9000", "app:app"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("pronghorn: error: --limit-request-line: '9000' is out of range "
                             "(allowed: 0..8190)\n")


@pytest.mark.parametrize("argv", [["--workers", "2", "mine:app"], []], ids=["flags", "config-file-only"])
def test_reload_rereads_the_argv_main_was_given_not_sys_argv(tmp_path, monkeypatch, argv):
    # HUP and USR2 read the command line again; an embedding script's own argv must be the one.
    (tmp_path / "pronghorn.conf.py").write_text("wsgi_app = 'mine:app'\n")
    monkeypatch.setattr(sys, "argv", ["embedder", "--workers", "9", "other:app"])
    from pronghorn.arbiter import Arbiter
    seen = []
    monkeypatch.setattr(Arbiter, "run", lambda self: seen.append(self.argv))
    cli.main(argv)
    assert seen == [argv]
