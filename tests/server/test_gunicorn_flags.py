"""Every gunicorn 27 setting outside ASGI, HTTP/2 and its dirty workers is accepted: the list is
taken from the gunicorn installed next to us, so a setting gunicorn adds fails here until it is
handled. Then the black-box behaviour of the settings that do something: --log-config,
--log-syslog, --root-path, --header-map, --paste without PasteDeploy, the no-effect warnings."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from pronghorn import config
from tests.server.harness import REPO, _env, request, serve

gunicorn_config = pytest.importorskip("gunicorn.config")

OUT_OF_SCOPE_SECTIONS = {"HTTP/2", "Dirty Arbiters", "Dirty Arbiter Hooks"}
OUT_OF_SCOPE_PREFIXES = ("asgi_", "websocket_")
NOT_SETTINGS = {"config"}  # -c/--config: the config file itself (test_config.py)
STILL_REFUSED = set(config.REFUSED)  # refused with a reason (none today)

# A good value for each setting whose gunicorn default is not one (None, an enum, a file).
SAMPLES = {
    "bind": "127.0.0.1:8000", "user": str(os.geteuid()), "group": str(os.getegid()),
    "chdir": "/", "pythonpath": "/tmp", "worker_tmp_dir": "/tmp", "tmp_upload_dir": "/tmp",
    "pidfile": "/tmp/pronghorn-flags-test.pid", "errorlog": "-", "accesslog": "-",
    "raw_env": "A=1", "raw_paste_global_conf": "A=1", "reload_extra_files": "x.html",
    "statsd_host": "127.0.0.1:8125", "proc_name": "flags", "syslog_prefix": "flags",
    "ssl_version": "TLS", "cert_reqs": "0", "ciphers": "ECDHE+AESGCM", "paste": "app.ini",
    "wsgi_app": "tests.server.apps:hello", "umask": "022", "keepalive": "2",
    "forwarder_headers": "SCRIPT_NAME", "proxy_protocol": "auto", "root_path": "/api",
    "secure_scheme_headers": {"X-FORWARDED-PROTO": "https"}, "logconfig_dict": {"version": 1},
    "worker_class": "gthread", "stats_file": "/tmp/pronghorn-flags-stats.json",
    "statsd_prefix": "shop", "dogstatsd_tags": "env:test",
}
FILES = {"logconfig", "logconfig_json", "certfile", "keyfile", "ca_certs"}


def in_scope(setting):
    if setting.section in OUT_OF_SCOPE_SECTIONS or setting.name.startswith(OUT_OF_SCOPE_PREFIXES):
        return False
    return setting.name not in NOT_SETTINGS | STILL_REFUSED


def gunicorn_settings():
    return [s for s in gunicorn_config.KNOWN_SETTINGS if in_scope(s)]


def sample(setting, files):
    if setting.name in FILES:
        return files[setting.name]
    if setting.name in SAMPLES:
        return SAMPLES[setting.name]
    default = setting.default
    if isinstance(default, bool) or default is None or callable(default):
        return default
    if isinstance(default, (int, str)) and type(default) in (int, str) and default != "":
        return str(default)
    if isinstance(default, list):
        return ",".join(default)
    raise AssertionError(f"no sample value for gunicorn setting {setting.name}: add one to SAMPLES")


def flag_args(setting, files):
    flag = [f for f in setting.cli if f.startswith("--")][0]
    if setting.action in ("store_true", "store_const"):
        return [flag]
    value = sample(setting, files)
    assert isinstance(value, str), f"{setting.name}: sample must be text for the command line"
    return [flag, value]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Real files for the settings that name one (a self-signed certificate, log configs)."""
    base = tmp_path_factory.mktemp("flags")
    cert, key = base / "cert.pem", base / "key.pem"
    make_certificate(cert, key)
    ini = base / "logging.ini"
    ini.write_text(LOG_INI.format(path=base / "log.txt"))
    js = base / "logging.json"
    js.write_text(json.dumps({"version": 1}))
    return {"logconfig": str(ini), "logconfig_json": str(js), "certfile": str(cert),
            "keyfile": str(key), "ca_certs": str(cert)}


def make_certificate(cert, key):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)


LOG_INI = """\
[loggers]
keys=root,error,access

[handlers]
keys=file

[formatters]
keys=plain

[logger_root]
level=WARNING
handlers=

[logger_error]
level=INFO
handlers=file
propagate=0
qualname=gunicorn.error

[logger_access]
level=INFO
handlers=file
propagate=0
qualname=gunicorn.access

[handler_file]
class=FileHandler
formatter=plain
args=('{path}', 'a')

[formatter_plain]
format=%(name)s %(message)s
"""


@pytest.mark.parametrize("setting", [s for s in gunicorn_settings() if s.cli],
                         ids=lambda s: s.name)
def test_each_gunicorn_flag_is_accepted(setting, files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.ini").write_text("")
    argv = flag_args(setting, files)
    if setting.name == "keyfile":
        argv += ["--certfile", files["certfile"]]
    if setting.name == "certfile":
        argv += ["--keyfile", files["keyfile"]]
    cfg = config.load_config(argv + ["tests.server.apps:hello"], {})
    assert setting.name in config.SETTINGS_BY_NAME or setting.name in config.HOOKS_BY_NAME
    assert cfg.sources[setting.name] == "command line"


@pytest.mark.parametrize("setting", [s for s in gunicorn_settings() if not s.cli],
                         ids=lambda s: s.name)
def test_each_gunicorn_config_file_setting_is_accepted(setting, files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if setting.name in config.HOOKS_BY_NAME or callable(setting.default):
        value = "lambda *args: None"
    else:
        value = repr(sample(setting, files))
    (tmp_path / "pronghorn.conf.py").write_text(f"{setting.name} = {value}\n")
    cfg = config.load_config([] if setting.name == "wsgi_app" else ["tests.server.apps:hello"], {})
    assert cfg.sources[setting.name] == "pronghorn.conf.py"


def test_a_command_line_with_every_gunicorn_flag_passes_check_config(files, tmp_path):
    (tmp_path / "app.ini").write_text("")
    argv = []
    for setting in gunicorn_settings():
        if setting.cli and setting.name not in ("wsgi_app", "check_config", "print_config"):
            argv += flag_args(setting, files)
    proc = subprocess.run([sys.executable, "-m", "pronghorn", "--check-config", *argv,
                           "tests.server.apps:hello"], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "config ok" in proc.stdout


def test_a_certificate_without_its_key_is_a_clear_error(files):
    with pytest.raises(config.ConfigError, match="--certfile needs --keyfile too"):
        config.load_config(["--certfile", files["certfile"], "a:b"], {})


def test_protocol_uwsgi_is_refused_naming_what_to_do():
    with pytest.raises(config.ConfigError, match="pronghorn speaks HTTP only"):
        config.load_config(["--protocol", "uwsgi", "a:b"], {})


def test_no_effect_settings_warn_once_each_and_defaults_do_not():
    assert config.no_effect_warnings(config.Config()) == []
    cfg = config.Config(permit_obsolete_folding=True, http_parser="python")
    lines = config.no_effect_warnings(cfg)
    assert len(lines) == 2
    assert lines[0].startswith("permit_obsolete_folding has no effect in pronghorn: folded header lines stay a 400")


# -- black-box: the server started with these settings ------------------------------------------


def get(srv, target, *headers):
    head = "".join(h + "\r\n" for h in headers)
    return request(srv.port, f"GET {target} HTTP/1.1\r\nHost: x\r\n{head}Connection: close\r\n\r\n".encode())


def wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_log_config_file_gets_the_error_and_access_lines(tmp_path):
    log = tmp_path / "log.txt"
    ini = tmp_path / "logging.ini"
    ini.write_text(LOG_INI.format(path=log))
    with serve("tests.server.apps:hello", "--log-config", str(ini), "--permit-obsolete-folding") as srv:
        status, _, _ = get(srv, "/logged")
        assert status == 200
        assert wait_for(lambda: "GET /logged HTTP/1.1" in log.read_text())
    text = log.read_text()
    assert "gunicorn.error Starting pronghorn" in text
    assert "gunicorn.error permit_obsolete_folding has no effect in pronghorn" in text
    assert "gunicorn.access 127.0.0.1" in text


def test_a_broken_log_config_stops_the_start_with_one_line(tmp_path):
    ini = tmp_path / "broken.ini"
    ini.write_text("[loggers]\nkeys=root\n")
    proc = subprocess.run([sys.executable, "-m", "pronghorn", "--log-config", str(ini),
                           "-b", "127.0.0.1:0", "tests.server.apps:hello"], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"pronghorn: error: --log-config {ini}: cannot apply the logging config")


def test_syslog_gets_the_error_and_access_lines_over_udp():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10)
    address = "udp://127.0.0.1:%d" % receiver.getsockname()[1]
    seen = []
    with receiver, serve("tests.server.apps:hello", "--log-syslog", "--log-syslog-to", address,
                         "--log-syslog-prefix", "shop", "--log-syslog-facility", "daemon") as srv:
        assert get(srv, "/via-syslog")[0] == 200
        for _ in range(50):  # bounded: a few lines per start
            seen.append(receiver.recv(4096).decode())
            if any("/via-syslog" in line for line in seen):
                break
    starting = [line for line in seen if "Starting pronghorn" in line]
    assert starting and starting[0].startswith("<30>shop: [")  # daemon(3)*8 + info(6)
    assert any("GET /via-syslog HTTP/1.1" in line for line in seen)


def test_root_path_is_script_name_and_comes_off_path_info():
    with serve("tests.server.apps:environ_json", "--root-path", "/api/") as srv:
        _, _, body = get(srv, "/api/users/7")
        env = json.loads(body)
        assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/api", "/users/7")
        _, _, body = get(srv, "/elsewhere")
        env = json.loads(body)
        assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/api", "/elsewhere")


@pytest.mark.parametrize("mode, status, key", [("drop", 200, None), ("refuse", 400, None),
                                               ("dangerous", 200, "HTTP_X_USER_ID")])
def test_header_map_decides_what_an_underscore_header_does(mode, status, key):
    with serve("tests.server.apps:environ_json", "--header-map", mode) as srv:
        got, _, body = get(srv, "/", "X_User_Id: 7")
        assert got == status
        if status == 200:
            env = json.loads(body)
            assert env.get("HTTP_X_USER_ID") == ("7" if key else None)


def test_paste_without_pastedeploy_names_the_package(tmp_path):
    try:
        import paste.deploy  # noqa: F401
        pytest.skip("PasteDeploy is installed here")
    except ImportError:
        pass
    ini = tmp_path / "app.ini"
    ini.write_text("[app:main]\nuse = egg:nothing\n")
    proc = subprocess.run([sys.executable, "-m", "pronghorn", "--check-config", "--paste", str(ini)],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "the PasteDeploy package is not installed" in proc.stderr
    assert "pip install PasteDeploy" in proc.stderr


def test_daemon_returns_at_once_and_the_server_serves_until_terminated(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    pidfile, errors = tmp_path / "app.pid", tmp_path / "error.log"
    proc = subprocess.run([sys.executable, "-m", "pronghorn", "-D", "-p", str(pidfile), "--error-logfile",
                           str(errors), "-b", "fd://%d" % listener.fileno(), "tests.server.apps:hello"],
                          pass_fds=[listener.fileno()], cwd=REPO, env=_env(), timeout=60,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listener.close()
    assert proc.returncode == 0
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip().isdigit(), 20)
    pid = int(pidfile.read_text())
    try:
        status, _, body = request(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (status, body) == (200, b"Hello, world!")
    finally:
        os.kill(pid, 15)
    assert wait_for(lambda: not pidfile.exists(), 20)


def test_hup_applies_a_new_log_config_and_refuses_a_broken_one(tmp_path):
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    good = tmp_path / "good.ini"
    good.write_text(LOG_INI.format(path=second))
    broken = tmp_path / "broken.ini"
    broken.write_text("[loggers]\nkeys=root\n")
    start_ini = tmp_path / "start.ini"
    start_ini.write_text(LOG_INI.format(path=first))
    conf = tmp_path / "pronghorn.conf.py"
    conf.write_text(f"logconfig = {str(start_ini)!r}\n")
    with serve("tests.server.apps:hello", "-c", str(conf)) as srv:
        conf.write_text(f"logconfig = {str(broken)!r}\n")
        os.kill(srv.pid, signal.SIGHUP)
        assert wait_for(lambda: "Reload failed: --log-config" in first.read_text())
        assert get(srv, "/still-up")[0] == 200
        assert wait_for(lambda: "GET /still-up" in first.read_text())
        conf.write_text(f"logconfig = {str(good)!r}\n")
        os.kill(srv.pid, signal.SIGHUP)
        assert wait_for(lambda: second.exists() and "Reloading" in second.read_text())
        assert wait_for(lambda: get(srv, "/after-reload")[0] == 200
                        and "GET /after-reload" in second.read_text())
