"""Settings: defaults, the command line, the environment, config files, hooks and precedence."""

import os
import pathlib
import sys
import textwrap

import pytest

from pronghorn import config as config_module
from pronghorn.config import Config, ConfigError, InfoRequested, load_config

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def in_empty_dir(tmp_path, monkeypatch):
    """Every test runs in an empty directory, so no stray ./pronghorn.conf.py is picked up."""
    monkeypatch.chdir(tmp_path)


def load(argv, **environ):
    return load_config(argv, environ)


def error_of(argv, **environ):
    with pytest.raises(ConfigError) as info:
        load(argv, **environ)
    return str(info.value)


def write_conf(path, text):
    path.write_text(textwrap.dedent(text))
    return str(path)


# -- defaults --------------------------------------------------------------------------------


def test_defaults_match_gunicorn_where_gunicorn_has_the_setting():
    cfg = load(["app:app"])
    assert cfg.app_uri == "app:app"
    assert cfg.bind == ["127.0.0.1:8000"]
    assert (cfg.workers, cfg.threads, cfg.backlog) == (1, 1, 2048)
    assert (cfg.timeout, cfg.graceful_timeout) == (30, 30)
    assert (cfg.limit_request_line, cfg.limit_request_fields, cfg.limit_request_field_size) == (4094, 100, 8190)
    assert cfg.forwarded_allow_ips == ["127.0.0.1", "::1"]
    assert cfg.access_log_format == '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    assert cfg.accesslog is None and cfg.errorlog == "-" and cfg.loglevel == "info"
    assert cfg.sendfile is True and cfg.preload_app is False and cfg.reload is False
    assert cfg.secure_scheme_headers["X-FORWARDED-PROTO"] == "https"


def test_pronghorn_own_defaults():
    cfg = load(["app:app"])
    assert cfg.keepalive == 5
    assert cfg.header_timeout == 10 and cfg.body_timeout == 30
    assert cfg.limit_request_body == 1024**3
    assert cfg.max_worker_memory == 0


def test_user_and_group_default_to_the_current_ids():
    cfg = load(["app:app"])
    assert cfg.user == os.geteuid() and cfg.group == os.getegid()


def test_every_hook_is_callable_by_default_and_does_nothing():
    cfg = Config()
    for hook in config_module.HOOKS:
        assert getattr(cfg, hook.name)(*range(len(hook.params))) is None


def test_config_with_overrides_checks_the_values():
    assert Config(workers=3, bind="0.0.0.0:9000").bind == ["0.0.0.0:9000"]
    with pytest.raises(ConfigError, match="workers: 'x' is not a whole number"):
        Config(workers="x")
    with pytest.raises(ConfigError, match="did you mean 'workers'"):
        Config(worker=2)


# -- command line ----------------------------------------------------------------------------


def test_gunicorn_style_command_line():
    cfg = load(["-w", "4", "-b", "0.0.0.0:80", "--bind", "unix:/run/app.sock", "-t", "60",
                "--keep-alive", "2", "--max-requests", "1000", "--max-requests-jitter", "50",
                "--preload", "--reuse-port", "--no-sendfile", "-n", "shop", "-e", "A=1", "-e", "B=x=y",
                "--log-level", "DEBUG", "--access-logfile", "-", "myproject.wsgi:application"])
    assert cfg.workers == 4
    assert cfg.bind == ["0.0.0.0:80", "unix:/run/app.sock"]
    assert cfg.timeout == 60 and cfg.keepalive == 2
    assert (cfg.max_requests, cfg.max_requests_jitter) == (1000, 50)
    assert cfg.preload_app and cfg.reuse_port and not cfg.sendfile
    assert cfg.proc_name == "shop"
    assert cfg.raw_env == ["A=1", "B=x=y"] and cfg.env == {"A": "1", "B": "x=y"}
    assert cfg.loglevel == "debug" and cfg.accesslog == "-"
    assert cfg.sources["workers"] == "command line"


def test_the_app_may_come_before_the_flags():
    assert load(["app:app", "-w", "2"]).workers == 2


@pytest.mark.parametrize("flag", ["--limit-request-field_size", "--limit-request-field-size"])
def test_field_size_flag_accepts_both_spellings(flag):
    assert load([flag, "100", "a:b"]).limit_request_field_size == 100


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1:8000", "127.0.0.1:8000"),
    ("localhost", "localhost:8000"),
    ("[::1]:9000", "[::1]:9000"),
    ("[::]", "[::]:8000"),
    ("unix:/run/x.sock", "unix:/run/x.sock"),
    ("fd://3", "fd://3"),
])
def test_bind_forms(address, expected):
    assert load(["-b", address, "a:b"]).bind == [expected]


@pytest.mark.parametrize("address, complaint", [
    ("127.0.0.1:http", "'http' is not a port number"),
    ("127.0.0.1:70000", "port 70000 is out of range"),
    ("::1:8000", "write IPv6 addresses in brackets"),
    ("[zz]:80", "'zz' is not an IPv6 address"),
    ("fd://x", "'x' is not a file descriptor number"),
    ("unix:", "no socket path"),
])
def test_bad_bind_addresses_are_named(address, complaint):
    message = error_of(["-b", address, "a:b"])
    assert message.startswith("--bind: ") and complaint in message


def test_umask_is_octal_as_written():
    assert load(["-m", "022", "a:b"]).umask == 0o22
    assert load(["-m", "0o027", "a:b"]).umask == 0o27
    assert load(["-m", "0", "a:b"]).umask == 0


def test_user_and_group_names_are_resolved_to_ids():
    cfg = load(["-u", "root", "-g", "root", "a:b"])
    assert (cfg.user, cfg.group) == (0, 0)
    assert load(["-u", "1234", "-g", "4321", "a:b"]).user == 1234


def test_unknown_user_is_a_clear_error():
    assert error_of(["-u", "no-such-user-here", "a:b"]) == (
        "--user: no user named 'no-such-user-here' on this machine (expected e.g. --user www-data)"
    )
    assert "no group named 'nogrp-x'" in error_of(["-g", "nogrp-x", "a:b"])


def test_forwarded_allow_ips():
    assert load(["--forwarded-allow-ips", "10.0.0.1, 10.1.0.0/16", "a:b"]).forwarded_allow_ips == [
        "10.0.0.1", "10.1.0.0/16"]
    assert load(["--forwarded-allow-ips", "*", "a:b"]).forwarded_allow_ips == ["*"]
    assert "'proxy' is not an IP address" in error_of(["--forwarded-allow-ips", "proxy", "a:b"])


def test_timeouts_accept_fractions_and_keep_whole_numbers_as_ints():
    cfg = load(["--header-timeout", "2.5", "-t", "0", "a:b"])
    assert cfg.header_timeout == 2.5 and cfg.timeout == 0 and isinstance(cfg.timeout, int)
    assert "is not a number of seconds" in error_of(["--body-timeout", "-1", "a:b"])


def test_reload_extra_files_and_pythonpath():
    cfg = load(["--reload", "--reload-extra-file", "a.html", "--reload-extra-file", "b.toml",
                "--pythonpath", "src,lib", "a:b"])
    assert cfg.reload and cfg.reload_extra_files == ["a.html", "b.toml"]
    assert cfg.pythonpath == ["src", "lib"]


def test_chdir_must_exist(tmp_path):
    assert load(["--chdir", str(tmp_path), "a:b"]).chdir == str(tmp_path)
    assert error_of(["--chdir", "/no/such/dir", "a:b"]).startswith("--chdir: '/no/such/dir' is not a directory")


# -- errors: one line, named, with what is allowed --------------------------------------------


def test_bad_number_error_text():
    assert error_of(["--workers", "abc", "a:b"]) == (
        "--workers: 'abc' is not a whole number (expected e.g. --workers 4)"
    )


def test_short_flag_errors_name_the_long_flag():
    assert error_of(["-w", "0", "a:b"]) == "--workers: '0' is out of range (allowed: 1 or more)"


def test_limit_out_of_range_names_the_range():
    assert error_of(["--limit-request-line", "9000", "a:b"]) == (
        "--limit-request-line: '9000' is out of range (allowed: 0..8190)"
    )
    assert "(allowed: 0..32768)" in error_of(["--limit-request-fields", "40000", "a:b"])


def test_missing_value():
    assert error_of(["a:b", "-w"]) == "--workers: needs a value (expected e.g. --workers 4)"


def test_unknown_flag_suggests_the_close_one():
    assert error_of(["--wokers", "2", "a:b"]) == "--wokers: unknown flag (did you mean '--workers'?)"
    assert error_of(["--frobnicate", "a:b"]) == "--frobnicate: unknown flag (see pronghorn --help)"


def test_flags_are_not_abbreviated():
    assert "unknown flag" in error_of(["--work", "2", "a:b"])


def test_switch_with_a_value():
    assert error_of(["--preload=yes", "a:b"]) == "--preload: takes no value (remove =yes)"


def test_two_apps():
    assert error_of(["a:b", "c:d"]).startswith("unexpected argument 'c:d'")


def test_no_app():
    assert error_of([]).startswith("no application given")
    assert load(["--print-config"]).app_uri is None
    assert load(["--check-config"]).app_uri is None


def test_every_error_is_one_line():
    for argv in (["-w", "x", "a:b"], ["--bad"], [], ["-b", "[::1", "a:b"], ["-k", "gevent", "a:b"]):
        assert "\n" not in error_of(argv)


# -- gunicorn flags: accepted or refused -------------------------------------------------------


@pytest.mark.parametrize("value, expected", [("sync", "sync"), ("gthread", "gthread"),
                                             ("gunicorn.workers.gthread.ThreadWorker", "gthread")])
def test_sync_and_gthread_worker_classes_are_accepted(value, expected):
    cfg = load(["-k", value, "--threads", "4", "a:b"])
    assert cfg.worker_class == expected and cfg.threads == 4


def test_other_worker_classes_are_refused_naming_what_is_allowed():
    message = error_of(["-k", "gevent", "a:b"])
    assert message.startswith("--worker-class: 'gevent' is not supported")
    assert "(allowed: sync, gthread)" in message


@pytest.mark.parametrize("argv, complaint", [
    (["--certfile", "c.pem", "--keyfile", "k.pem"], "--certfile: 'c.pem' is not a file"),
    (["--log-config", "nope.ini"], "--log-config: 'nope.ini' is not a file"),
    (["--statsd-host", "localhost"], "--statsd-host: 'localhost' is not HOST:PORT"),
    (["--log-syslog-to", "syslog.example"], "--log-syslog-to: 'syslog.example' is not udp://HOST:PORT"),
    (["--root-path", "api"], "--root-path: 'api' does not start with '/'"),
])
def test_gunicorn_flags_naming_files_or_addresses_check_them_up_front(argv, complaint):
    assert error_of(argv + ["a:b"]).startswith(complaint)


# -- help and version ----------------------------------------------------------------------------


def test_help_and_version():
    with pytest.raises(InfoRequested) as info:
        load(["--help"])
    assert "--workers" in str(info.value) and "--limit-request-field_size" in str(info.value)
    with pytest.raises(InfoRequested) as info:
        load(["-v"])
    assert str(info.value).startswith("pronghorn ")


# -- environment ------------------------------------------------------------------------------


def test_web_concurrency_sets_the_default_workers():
    assert load(["a:b"], WEB_CONCURRENCY="3").workers == 3
    assert load(["-w", "5", "a:b"], WEB_CONCURRENCY="3").workers == 5
    assert error_of(["a:b"], WEB_CONCURRENCY="lots") == (
        "WEB_CONCURRENCY: 'lots' is not a whole number (expected e.g. WEB_CONCURRENCY=4)"
    )


def test_forwarded_allow_ips_from_the_environment():
    assert load(["a:b"], FORWARDED_ALLOW_IPS="*").forwarded_allow_ips == ["*"]


def test_port_from_the_environment_binds_all_interfaces_as_gunicorn():
    assert load(["a:b"], PORT="5000").bind == ["0.0.0.0:5000"]
    assert load(["-b", "127.0.0.1:1", "a:b"], PORT="5000").bind == ["127.0.0.1:1"]


def test_env_args_are_shell_split():
    cfg = load(["a:b"], PRONGHORN_CMD_ARGS="-w 3 --access-logformat '%(h)s %(r)s' --name 'my app'")
    assert cfg.workers == 3 and cfg.access_log_format == "%(h)s %(r)s" and cfg.proc_name == "my app"
    assert cfg.sources["workers"] == "PRONGHORN_CMD_ARGS"


def test_env_args_errors_say_where_they_came_from():
    assert error_of(["a:b"], PRONGHORN_CMD_ARGS="--workers x") == (
        "PRONGHORN_CMD_ARGS: --workers: 'x' is not a whole number (expected e.g. --workers 4)"
    )
    assert error_of(["a:b"], PRONGHORN_CMD_ARGS="-w 'unclosed").startswith("PRONGHORN_CMD_ARGS: cannot split")


# -- config file ------------------------------------------------------------------------------


def test_config_file_sets_settings_and_hooks(tmp_path):
    path = write_conf(tmp_path / "conf.py", """
        import multiprocessing
        from os import cpu_count
        bind = ["unix:/run/a.sock", "127.0.0.1:9000"]
        workers = 2
        wsgi_app = "shop.wsgi:application"
        TWO = 2
        _helper = "ignored"
        def post_fork(server, worker):
            worker.touched = True
    """)
    cfg = load(["-c", path])
    assert cfg.bind == ["unix:/run/a.sock", "127.0.0.1:9000"]
    assert cfg.workers == 2 and cfg.app_uri == "shop.wsgi:application"
    assert cfg.config_file == path and cfg.sources["workers"] == path

    class Worker:
        touched = False

    worker = Worker()
    cfg.post_fork(None, worker)
    assert worker.touched
    assert cfg.pre_fork(None, worker) is None  # untouched hooks stay no-ops


def test_default_config_file_is_picked_up_from_the_working_directory(tmp_path):
    (tmp_path / "pronghorn.conf.py").write_text("workers = 7\n")
    cfg = load(["a:b"])
    assert cfg.workers == 7 and cfg.config_file.endswith("pronghorn.conf.py")


def test_default_config_file_is_looked_up_in_chdir(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "pronghorn.conf.py").write_text("workers = 6\n")
    assert load(["--chdir", str(site), "a:b"]).workers == 6


def test_config_file_from_a_module_in_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "deploy_settings.py").write_text("workers = 9\nkeepalive = 1\n")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "deploy_settings", raising=False)
    cfg = load(["-c", "python:deploy_settings", "a:b"])
    assert (cfg.workers, cfg.keepalive) == (9, 1)
    assert str(tmp_path) not in sys.path  # load_config leaves sys.path as it was
    assert error_of(["-c", "python:no_such_settings", "a:b"]) == (
        "-c python:no_such_settings: cannot import config module 'no_such_settings': "
        "ModuleNotFoundError: No module named 'no_such_settings'"
    )


def test_unknown_setting_in_the_default_config_file(tmp_path):
    (tmp_path / "pronghorn.conf.py").write_text("worker = 4\n")
    assert error_of(["a:b"]) == "pronghorn.conf.py: unknown setting 'worker' (did you mean 'workers'?)"


def test_misspelt_hook_is_an_unknown_setting(tmp_path):
    path = write_conf(tmp_path / "c.py", "def post_forks(server, worker):\n    pass\n")
    assert error_of(["-c", path, "a:b"]) == f"{path}: unknown setting 'post_forks' (did you mean 'post_fork'?)"


def test_bad_value_in_config_file(tmp_path):
    path = write_conf(tmp_path / "c.py", "workers = 'four'\nerrorlog = 3\n")
    assert error_of(["-c", path, "a:b"]) == (
        f"{path}: workers: 'four' is not a whole number (expected e.g. workers = 4)"
    )


def test_string_setting_example_is_a_python_literal(tmp_path):
    path = write_conf(tmp_path / "c.py", "errorlog = 3\n")
    assert error_of(["-c", path, "a:b"]) == (
        f"{path}: errorlog: 3 is not a string (expected e.g. errorlog = '/var/log/app/error.log')"
    )


def test_hook_with_the_wrong_arity_names_the_signature(tmp_path):
    path = write_conf(tmp_path / "c.py", "def post_fork(worker):\n    pass\n")
    assert error_of(["-c", path, "a:b"]) == (
        f"{path}: hook post_fork takes 1 parameter, expected def post_fork(server, worker): ..."
    )


def test_hooks_with_defaults_or_varargs_fit(tmp_path):
    path = write_conf(tmp_path / "c.py", """
        def post_request(*args):
            pass
        def when_ready(server, extra=None):
            pass
    """)
    cfg = load(["-c", path, "a:b"])
    assert cfg.post_request.__name__ == "post_request" and cfg.when_ready.__name__ == "when_ready"


def test_hook_that_is_not_a_function(tmp_path):
    path = write_conf(tmp_path / "c.py", "on_starting = 3\n")
    assert error_of(["-c", path, "a:b"]).startswith(f"{path}: hook on_starting 3 is not a function")


def test_gunicorn_setting_with_a_bad_value_in_config_file(tmp_path):
    path = write_conf(tmp_path / "c.py", "header_map = 'keep'\n")
    assert error_of(["-c", path, "a:b"]).startswith(
        f"{path}: header_map: 'keep' is not one of: drop, refuse, dangerous")


def test_config_file_errors(tmp_path):
    assert error_of(["-c", "missing.py", "a:b"]).startswith("-c: config file 'missing.py' not found")
    broken = write_conf(tmp_path / "broken.py", "workers = (\n")
    assert error_of(["-c", broken, "a:b"]).startswith(f"{broken}: line 1: syntax error")
    raising = write_conf(tmp_path / "raising.py", "x = 1\nworkers = int('many')\n")
    assert error_of(["-c", raising, "a:b"]) == (
        f"{raising}: line 2: ValueError: invalid literal for int() with base 10: 'many'"
    )


def test_config_file_list_settings_accept_a_single_string(tmp_path):
    path = write_conf(tmp_path / "c.py", "bind = '0.0.0.0:80'\nraw_env = 'A=1'\nforwarded_allow_ips = '*'\n")
    cfg = load(["-c", path, "a:b"])
    assert cfg.bind == ["0.0.0.0:80"] and cfg.raw_env == ["A=1"] and cfg.forwarded_allow_ips == ["*"]


# -- precedence: CLI > PRONGHORN_CMD_ARGS > config file > WEB_CONCURRENCY > default -------------


def test_precedence(tmp_path):
    path = write_conf(tmp_path / "c.py", "workers = 3\ntimeout = 40\nkeepalive = 9\nbacklog = 100\n")
    cfg = load(["-c", path, "-w", "5", "a:b"], WEB_CONCURRENCY="2",
               PRONGHORN_CMD_ARGS="-w 4 -t 50")
    assert cfg.workers == 5  # command line beats everything
    assert cfg.timeout == 50  # env args beat the file
    assert cfg.keepalive == 9  # the file beats the default
    assert cfg.graceful_timeout == 30  # the default
    assert load(["-c", path, "a:b"], WEB_CONCURRENCY="2").workers == 3  # file beats WEB_CONCURRENCY


def test_config_file_named_in_env_args(tmp_path):
    path = write_conf(tmp_path / "c.py", "workers = 3\n")
    assert load(["a:b"], PRONGHORN_CMD_ARGS=f"-c {path}").workers == 3


def test_repeatable_flag_on_the_command_line_replaces_the_file_list(tmp_path):
    path = write_conf(tmp_path / "c.py", "bind = ['127.0.0.1:1', '127.0.0.1:2']\n")
    assert load(["-c", path, "-b", "127.0.0.1:3", "a:b"]).bind == ["127.0.0.1:3"]


# -- print-config and the reference ---------------------------------------------------------


def test_print_config_lists_every_setting_sorted():
    lines = config_module.print_config_lines(load(["-w", "3", "-m", "022", "a:b"]))
    names = [line.split(" = ")[0] for line in lines]
    assert names == sorted(names)
    assert set(names) == {s.name for s in config_module.SETTINGS} | {h.name for h in config_module.HOOKS}
    assert "workers = 3" in lines and "umask = 0o22" in lines and "post_fork = (no-op)" in lines


def test_reference_document_covers_every_setting_flag_and_hook():
    text = (REPO / "docs" / "server-reference.md").read_text()
    for setting in config_module.SETTINGS:
        assert f"`{setting.name}`" in text, setting.name
        for flag in setting.flags:
            assert f"`{flag}`" in text, flag
    for hook in config_module.HOOKS:
        assert hook.signature in text, hook.name


def test_reference_document_is_the_generated_one():
    text = (REPO / "docs" / "server-reference.md").read_text()
    assert text == config_module.reference_markdown(), (
        "docs/server-reference.md is stale: python -m pronghorn.config > docs/server-reference.md"
    )


def test_access_log_format_atoms_are_checked_at_load_time():
    assert load(["--access-logformat", "json", "a:b"]).access_log_json
    assert error_of(["--access-logformat", "%(h)s %(zz)s", "a:b"]).startswith(
        "--access-logformat: unknown access log atom %(zz)s (allowed: h l u t r m U q H s B b f a T D M L p"
    )


def test_log_files_need_an_existing_directory(tmp_path):
    assert load(["--error-logfile", str(tmp_path / "e.log"), "--access-logfile", "-", "a:b"]).errorlog == str(
        tmp_path / "e.log")
    message = error_of(["--access-logfile", "/no/such/dir/access.log", "a:b"])
    assert message == ("--access-logfile: the directory /no/such/dir does not exist "
                       "(create it, or use - for the console) (expected e.g. --access-logfile -)")
    assert "is a directory, not a file" in error_of(["--log-file", str(tmp_path), "a:b"])


def test_relative_config_file_is_also_looked_for_in_chdir(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "prod.conf.py").write_text("workers = 8\n")
    assert load(["--chdir", str(site), "-c", "prod.conf.py", "a:b"]).workers == 8


def test_proxy_trust_matches_addresses_and_networks():
    trusted = config_module.proxy_trust(["127.0.0.1", "10.1.0.0/16", "fd00::/8"])
    assert trusted("127.0.0.1") and trusted("10.1.200.3") and trusted("fd00::5")
    assert not trusted("10.2.0.1") and not trusted("192.0.2.1") and not trusted("not-an-ip")
    assert config_module.proxy_trust(["*"])("192.0.2.1")
    plain = config_module.proxy_trust(["127.0.0.1", "::1"])
    assert plain("::1") and not plain("127.0.0.2")


# -- drop-in for gunicorn: checked against the gunicorn installed next to us -------------------

PRONGHORN_ONLY = {"max_worker_memory", "header_timeout", "body_timeout", "send_timeout", "limit_request_body",
                  "stats_file", "metrics_bind", "request_timeout"}
DIFFERENT_DEFAULTS = {"keepalive", "sendfile", "chdir", "pythonpath", "user", "group",
                      "forwarded_allow_ips", "forwarder_headers", "proxy_allow_ips",
                      "umask", "uwsgi_allow_ips",
                      "control_socket"}  # documented choices, or the same meaning in another type


def gunicorn_settings():
    gunicorn_config = pytest.importorskip("gunicorn.config")
    return {s.name: s for s in gunicorn_config.KNOWN_SETTINGS}


def test_every_shared_setting_keeps_gunicorns_name_flags_and_default():
    theirs = gunicorn_settings()
    for setting in config_module.SETTINGS:
        if setting.name in PRONGHORN_ONLY:
            assert setting.name not in theirs
            continue
        assert setting.name in theirs, f"{setting.name} is not a gunicorn setting name"
        assert set(theirs[setting.name].cli or ()) <= set(setting.flags), setting.name
        if setting.name not in DIFFERENT_DEFAULTS:
            assert setting.default == theirs[setting.name].default, setting.name


def test_hooks_have_gunicorns_names_and_parameter_counts():
    import inspect

    theirs = gunicorn_settings()
    for hook in config_module.HOOKS:
        assert len(inspect.signature(theirs[hook.name].default).parameters) == len(hook.params), hook.name


def test_refused_settings_are_real_gunicorn_settings():
    theirs = gunicorn_settings()
    for name, (flags, _, _) in config_module.REFUSED.items():
        assert name in theirs, name
        assert set(theirs[name].cli or ()) <= set(flags), name


def test_worker_connections_is_gunicorns_flag_and_default():
    assert load(["a:b"]).worker_connections == 1000
    assert load(["--worker-connections", "50", "a:b"]).worker_connections == 50
    assert error_of(["--worker-connections", "0", "a:b"]).startswith("--worker-connections")
