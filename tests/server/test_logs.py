"""Error log and access log: line formats, every access atom, JSON lines, reopening files."""

import base64
import json
import os
import re
import time

import pytest

from pronghorn.config import Config
from pronghorn.logs import AccessFormatError, Logger, compile_format

ENVIRON = {
    "REMOTE_ADDR": "203.0.113.7",
    "REQUEST_METHOD": "POST",
    "PATH_INFO": "/cart/add",
    "QUERY_STRING": "item=42&qty=2",
    "RAW_URI": "/cart/add?item=42&qty=2",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "HTTP_USER_AGENT": "curl/8.0",
    "HTTP_REFERER": "https://shop.example/",
    "HTTP_X_REQUEST_ID": "abc-123",
    "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"alice:secret").decode(),
}
HEADERS = [("Content-Type", "text/html"), ("X-Cache", "miss")]
# 2026-11-23 20:00:00 UTC
NOW = 1795464000.0


@pytest.fixture
def logger_for(tmp_path):
    made = []

    def make(**settings):
        settings.setdefault("accesslog", str(tmp_path / "access.log"))
        settings.setdefault("errorlog", str(tmp_path / "error.log"))
        logger = Logger(Config(**settings))
        made.append(logger)
        return logger

    yield make
    for logger in made:
        logger.close()


def line(logger, environ=ENVIRON, status="201 Created", headers=HEADERS, length=512, duration=0.0425):
    return logger.access_line(environ, status, headers, length, duration, now=NOW)


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_gunicorn_default_format(logger_for, utc):
    assert line(logger_for()) == (
        '203.0.113.7 - alice [23/Nov/2026:20:00:00 +0000] "POST /cart/add?item=42&qty=2 HTTP/1.1" '
        '201 512 "https://shop.example/" "curl/8.0"'
    )


@pytest.mark.parametrize("atom, expected", [
    ("h", "203.0.113.7"),
    ("l", "-"),
    ("u", "alice"),
    ("r", "POST /cart/add?item=42&qty=2 HTTP/1.1"),
    ("m", "POST"),
    ("U", "/cart/add"),
    ("q", "item=42&qty=2"),
    ("H", "HTTP/1.1"),
    ("s", "201"),
    ("B", "512"),
    ("b", "512"),
    ("f", "https://shop.example/"),
    ("a", "curl/8.0"),
    ("T", "0"),
    ("D", "42500"),
    ("M", "42"),
    ("L", "0.042500"),
    ("{x-request-id}i", "abc-123"),
    ("{X-Cache}o", "miss"),
    ("{content-type}o", "text/html"),
    ("{missing}i", "-"),
    ("{missing}o", "-"),
])
def test_each_atom(logger_for, atom, expected):
    assert line(logger_for(access_log_format=f"%({atom})s")) == expected


def test_time_and_pid_atoms(logger_for, utc):
    assert line(logger_for(access_log_format="%(t)s %(p)s")) == f"[23/Nov/2026:20:00:00 +0000] <{os.getpid()}>"


def test_environment_variable_atom(logger_for, monkeypatch):
    monkeypatch.setenv("PRONGHORN_TEST_RELEASE", "r42")
    assert line(logger_for(access_log_format="%({PRONGHORN_TEST_RELEASE}e)s")) == "r42"


def test_literal_text_and_percent_are_kept(logger_for):
    assert line(logger_for(access_log_format="status=%(s)s 100%% done")) == "status=201 100% done"


def test_request_line_without_raw_uri_is_rebuilt(logger_for):
    environ = {k: v for k, v in ENVIRON.items() if k != "RAW_URI"}
    assert line(logger_for(access_log_format="%(r)s"), environ) == "POST /cart/add?item=42&qty=2 HTTP/1.1"


def test_missing_values_are_dashes(logger_for):
    assert line(logger_for(access_log_format="%(u)s %(f)s %(a)s %(b)s"), {}, length=None) == "- - - -"


def test_client_text_cannot_forge_lines_or_break_quotes(logger_for):
    environ = dict(ENVIRON, HTTP_USER_AGENT='evil"\n127.0.0.1 - - fake\\line')
    rendered = line(logger_for(access_log_format='"%(a)s"'), environ)
    assert "\n" not in rendered
    assert rendered == '"evil\\"\\x0a127.0.0.1 - - fake\\\\line"'


def test_unknown_atom_is_refused_naming_it():
    with pytest.raises(AccessFormatError, match=r"unknown access log atom %\(z\)s"):
        compile_format("%(h)s %(z)s")


def test_json_lines_parse_and_carry_the_fields(logger_for):
    record = json.loads(line(logger_for(access_log_format="json")))
    assert record == {
        "time": "2026-11-23T20:00:00.000+00:00",
        "remote": "203.0.113.7",
        "method": "POST",
        "path": "/cart/add",
        "query": "item=42&qty=2",
        "status": 201,
        "bytes": 512,
        "duration_ms": 42.5,
        "ua": "curl/8.0",
        "referer": "https://shop.example/",
        "pid": os.getpid(),
    }


def test_json_escapes_hostile_text(logger_for):
    environ = dict(ENVIRON, PATH_INFO='/a"\n\x00b')
    rendered = line(logger_for(access_log_format="json"), environ)
    assert "\n" not in rendered and json.loads(rendered)["path"] == '/a"\n\x00b'


def test_access_writes_one_line_per_response_to_the_file(logger_for, tmp_path):
    logger = logger_for(access_log_format="json")
    logger.access(ENVIRON, "200 OK", [], 10, 0.001)
    logger.access(ENVIRON, "404 Not Found", [], 0, 0.002)
    lines = (tmp_path / "access.log").read_text().splitlines()
    assert [json.loads(text)["status"] for text in lines] == [200, 404]


def test_access_log_disabled_by_default_writes_nothing(tmp_path, capsys):
    logger = Logger(Config(errorlog=str(tmp_path / "error.log")))
    assert logger.access_enabled is False
    logger.access(ENVIRON, "200 OK", [], 10, 0.001)
    assert capsys.readouterr().out == ""
    logger.close()


def test_access_log_dash_is_stdout(tmp_path, capsys):
    logger = Logger(Config(accesslog="-", access_log_format="%(s)s %(U)s", errorlog=str(tmp_path / "e.log")))
    logger.access(ENVIRON, "200 OK", [], 10, 0.001)
    assert capsys.readouterr().out == "200 /cart/add\n"
    logger.close()


def test_error_log_line_format_and_level(logger_for, tmp_path):
    logger = logger_for(loglevel="warning")
    logger.info("not shown")
    logger.warning("worker %s timed out", 7)
    logger.error("boom")
    lines = (tmp_path / "error.log").read_text().splitlines()
    assert len(lines) == 2
    pattern = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[%d\] \[WARNING\] worker 7 timed out" % os.getpid()
    assert re.fullmatch(pattern, lines[0])
    assert lines[1].endswith("[ERROR] boom")


def test_error_log_dash_is_stderr(capsys):
    logger = Logger(Config(loglevel="debug"))
    logger.debug("hello %s", "there")
    assert capsys.readouterr().err.endswith("[DEBUG] hello there\n")
    logger.close()


def test_exception_logs_the_traceback(logger_for, tmp_path):
    logger = logger_for()
    try:
        raise ValueError("bad thing")
    except ValueError:
        logger.exception("request failed")
    text = (tmp_path / "error.log").read_text()
    assert "[ERROR] request failed" in text and "ValueError: bad thing" in text


def test_reopen_after_rename(logger_for, tmp_path):
    """What logrotate does: rename the files, send USR1; new lines go to new files."""
    logger = logger_for()
    logger.access(ENVIRON, "200 OK", [], 1, 0.0)
    logger.info("before")
    os.rename(tmp_path / "access.log", tmp_path / "access.log.1")
    os.rename(tmp_path / "error.log", tmp_path / "error.log.1")
    logger.reopen_files()
    logger.access(ENVIRON, "500 Internal Server Error", [], 1, 0.0)
    logger.info("after")
    assert '" 200 1 ' in (tmp_path / "access.log.1").read_text()
    assert '" 500 1 ' in (tmp_path / "access.log").read_text()
    assert "before" in (tmp_path / "error.log.1").read_text()
    assert "after" in (tmp_path / "error.log").read_text()
    assert "after" not in (tmp_path / "error.log.1").read_text()


def test_close_on_exec(logger_for):
    logger = logger_for()
    logger.close_on_exec()
    assert not os.get_inheritable(logger._access_stream.fileno())


def test_two_loggers_do_not_share_handlers(tmp_path):
    first = Logger(Config(errorlog=str(tmp_path / "one.log")))
    second = Logger(Config(errorlog=str(tmp_path / "two.log")))
    first.info("to one")
    second.info("to two")
    assert "to two" not in (tmp_path / "one.log").read_text()
    assert "to one" not in (tmp_path / "two.log").read_text()
    first.close()
    second.close()


def test_capture_output_sends_prints_to_the_error_log(tmp_path):
    """Runs in a child process: capture_output re-points fds 1 and 2."""
    import pathlib
    import subprocess
    import sys

    import pronghorn

    script = (
        "import os, sys\n"
        "from pronghorn.config import Config\n"
        "from pronghorn.logs import Logger\n"
        f"log = Logger(Config(errorlog={str(tmp_path / 'error.log')!r}, capture_output=True))\n"
        "log.info('started')\n"
        "print('from print', flush=True)\n"
        "os.write(2, b'from fd 2\\n')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(pronghorn.__file__).resolve().parents[1]))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    text = (tmp_path / "error.log").read_text()
    assert "[INFO] started" in text and "from print" in text and "from fd 2" in text


def test_json_with_non_ascii_and_missing_fields(logger_for):
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/caf\xe9", "HTTP_USER_AGENT": "na\xefve \u2603"}
    record = json.loads(line(logger_for(access_log_format="json"), environ, status="200 OK", length=None))
    assert record["path"] == "/caf\xe9" and record["ua"] == "na\xefve \u2603"
    assert record["remote"] is None and record["referer"] is None and record["bytes"] is None
    assert record["query"] == "" and record["status"] == 200


def test_access_lines_to_a_stdout_pipe_are_not_held_in_a_buffer(tmp_path):
    """Under systemd stdout is a pipe to journald; a line must arrive when its request ends."""
    import pathlib
    import subprocess
    import sys

    import pronghorn

    script = (
        "import sys, time\n"
        "from pronghorn.config import Config\n"
        "from pronghorn.logs import Logger\n"
        "log = Logger(Config(accesslog='-', access_log_format='%(s)s %(U)s'))\n"
        "log.access({'PATH_INFO': '/x'}, '204 No Content', [], 0, 0.0)\n"
        "time.sleep(60)\n"  # stay alive: exiting would flush any buffer and hide the bug
    )
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(pronghorn.__file__).resolve().parents[1]))
    env.pop("PYTHONUNBUFFERED", None)  # as under systemd: stdout to a pipe is block-buffered
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        import select

        ready, _, _ = select.select([child.stdout], [], [], 20)
        assert ready, "no access line within 20 s: it is stuck in a buffer"
        assert child.stdout.readline() == "204 /x\n"
    finally:
        child.kill()
        child.wait(timeout=30)
