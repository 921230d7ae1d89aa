"""The error log and the access log.

Error log: `[2026-11-23 20:00:00 +0000] [PID] [LEVEL] message`, as gunicorn's, to stderr ('-')
or a file. Access log: off unless --access-logfile is given; one line per response, either in
gunicorn's format language (`%(h)s %(l)s ... %({x-request-id}i)s`) or, with
`--access-logformat json`, one JSON object per line.

The access log sits on the request path, so the format is compiled once into a list of small
functions (one per atom) and a disabled access log costs one attribute check (`access_enabled`).
Both logs are reopened by reopen_files() (USR1, after logrotate renamed them).

gunicorn's other outlets: `--log-config` / `--log-config-json` / `logconfig_dict` hand the error
and access lines to the stdlib loggers `gunicorn.error` and `gunicorn.access` configured by
logging.config (logconfig.py; a gunicorn logging file works unchanged); `--log-syslog` adds a SysLogHandler;
`--statsd-host` counts each response in statsd.py. None of them costs anything when off.
"""

from __future__ import annotations

import base64
import binascii
import json
import json.encoder
import logging
import logging.handlers
import os
import re
import sys
import time
from typing import Any, Callable, TextIO

from pronghorn.logconfig import LogConfigError, apply_logging_config, parse_syslog_address

__all__ = ["Logger", "LogConfigError", "compile_format", "json_line", "parse_syslog_address"]

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
ERROR_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# --------------------------------------------------------------------------------------------
# Access log format compilation.
# --------------------------------------------------------------------------------------------

# Everything an atom may need about one response.
class _Entry:
    __slots__ = ("environ", "status", "headers", "length", "duration", "now")

    def __init__(self, environ, status, headers, length, duration, now):
        self.environ = environ
        self.status = status
        self.headers = headers
        self.length = length
        self.duration = duration
        self.now = now


# Control characters, quotes and backslashes from the client are escaped so a request cannot
# forge log lines or break the quoted fields (as Apache does).
_ESCAPES = {i: f"\\x{i:02x}" for i in list(range(0x20)) + [0x7F]}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\"})


def _clean(value: str) -> str:
    # The common case (printable, no quote or backslash) is three C-level scans, no copy.
    if value.isprintable() and '"' not in value and "\\" not in value:
        return value
    return value.translate(_ESCAPES)


def _env(key: str, default: str = "-") -> Callable[[_Entry], str]:
    def atom(entry: _Entry) -> str:
        value = entry.environ.get(key)
        return _clean(value) if value else default

    return atom


def _remote(entry: _Entry) -> str:
    return entry.environ.get("REMOTE_ADDR") or "-"


def _user(entry: _Entry) -> str:
    """The user name of HTTP Basic auth, else '-' (as gunicorn's %(u)s)."""
    auth = entry.environ.get("HTTP_AUTHORIZATION", "")
    if auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("latin-1")
        except (binascii.Error, ValueError):
            return "-"
        return _clean(decoded.split(":", 1)[0]) or "-"
    return "-"


_clf_cache: list[Any] = [None, ""]


def _clf_time(now: float) -> str:
    """[23/Nov/2026:20:00:00 +0000], local time, cached for the current second."""
    second = int(now)
    if _clf_cache[0] != second:
        local = time.localtime(second)
        offset = local.tm_gmtoff or 0
        sign = "+" if offset >= 0 else "-"
        hours, minutes = divmod(abs(offset) // 60, 60)
        _clf_cache[0] = second
        _clf_cache[1] = (f"[{local.tm_mday:02d}/{_MONTHS[local.tm_mon - 1]}/{local.tm_year}:"
                         f"{local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d} "
                         f"{sign}{hours:02d}{minutes:02d}]")
    return _clf_cache[1]


def _request_line(entry: _Entry) -> str:
    env = entry.environ
    uri = env.get("RAW_URI") or env.get("PATH_INFO", "")
    if "RAW_URI" not in env and env.get("QUERY_STRING"):
        uri += "?" + env["QUERY_STRING"]
    return _clean(f"{env.get('REQUEST_METHOD', '-')} {uri} {env.get('SERVER_PROTOCOL', '-')}")


def _response_header(name: str) -> Callable[[_Entry], str]:
    wanted = name.lower()

    def atom(entry: _Entry) -> str:
        for key, value in entry.headers:
            if key.lower() == wanted:
                return _clean(value)
        return "-"

    return atom


def _os_environ(name: str) -> Callable[[_Entry], str]:
    def atom(entry: _Entry) -> str:
        return os.environ.get(name, "-")

    return atom


def _literal(text: str) -> Callable[[_Entry], str]:
    return lambda entry: text


ATOMS: dict[str, Callable[[_Entry], str]] = {
    "h": _remote,
    "l": lambda e: "-",
    "u": _user,
    "t": lambda e: _clf_time(e.now),
    "r": _request_line,
    "m": _env("REQUEST_METHOD"),
    "U": _env("PATH_INFO"),
    "q": _env("QUERY_STRING", ""),
    "H": _env("SERVER_PROTOCOL"),
    "s": lambda e: e.status.split(" ", 1)[0],
    "B": lambda e: str(e.length),
    "b": lambda e: str(e.length) if e.length is not None else "-",
    "f": _env("HTTP_REFERER"),
    "a": _env("HTTP_USER_AGENT"),
    "T": lambda e: str(int(e.duration)),
    "D": lambda e: str(int(e.duration * 1_000_000)),
    "M": lambda e: str(int(e.duration * 1000)),
    "L": lambda e: f"{e.duration:.6f}",
    "p": lambda e: f"<{os.getpid()}>",  # not cached: workers are forks
}

_ATOM_RE = re.compile(r"%\(([^)]*)\)s|%%")


class AccessFormatError(ValueError):
    pass


def compile_format(fmt: str) -> list[Callable[[_Entry], str]]:
    """Turn a gunicorn access format into a list of functions, one per piece of the line."""
    parts: list[Callable[[_Entry], str]] = []
    position = 0
    for match in _ATOM_RE.finditer(fmt):
        if match.start() > position:
            parts.append(_literal(fmt[position:match.start()]))
        position = match.end()
        if match.group(0) == "%%":
            parts.append(_literal("%"))
            continue
        parts.append(_atom(match.group(1)))
    if position < len(fmt):
        parts.append(_literal(fmt[position:]))
    return parts


def _atom(key: str) -> Callable[[_Entry], str]:
    if key in ATOMS:
        return ATOMS[key]
    match = re.fullmatch(r"\{([^}]+)\}([ioe])", key)
    if match:
        name, kind = match.groups()
        if kind == "i":
            return _env("HTTP_" + name.upper().replace("-", "_"))
        if kind == "o":
            return _response_header(name)
        return _os_environ(name)
    raise AccessFormatError(
        f"unknown access log atom %({key})s (allowed: {' '.join(ATOMS)} {{header}}i {{header}}o {{var}}e)"
    )


# --------------------------------------------------------------------------------------------
# JSON lines.
# --------------------------------------------------------------------------------------------


# The JSON line is assembled by hand from pre-escaped pieces: json.dumps of a dict costs several
# times more, and the fields are fixed. Strings go through the json module's own C escaper.
_quote: Callable[[str], str] = getattr(json.encoder, "c_encode_basestring_ascii", None) \
    or json.encoder.encode_basestring_ascii
_iso_cache: list[Any] = [None, ""]


def _iso_time(now: float) -> str:
    """2026-11-23T20:00:00.000+00:00 (UTC, milliseconds); the seconds part cached."""
    second = int(now)
    if _iso_cache[0] != second:
        _iso_cache[0] = second
        _iso_cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_iso_cache[1]}.{int((now - second) * 1000):03d}+00:00"


def _json_str(value: Any) -> str:
    return "null" if value is None else _quote(value)


def json_line(entry: _Entry) -> str:
    env = entry.environ
    status = entry.status.split(" ", 1)[0]
    length = entry.length
    return (
        f'{{"time":"{_iso_time(entry.now)}",'
        f'"remote":{_json_str(env.get("REMOTE_ADDR"))},'
        f'"method":{_json_str(env.get("REQUEST_METHOD"))},'
        f'"path":{_json_str(env.get("PATH_INFO"))},'
        f'"query":{_quote(env.get("QUERY_STRING", ""))},'
        f'"status":{status if status.isdigit() else _quote(status)},'
        f'"bytes":{"null" if length is None else int(length)},'
        f'"duration_ms":{round(entry.duration * 1000, 3)!r},'
        f'"ua":{_json_str(env.get("HTTP_USER_AGENT"))},'
        f'"referer":{_json_str(env.get("HTTP_REFERER"))},'
        f'"pid":{os.getpid()}}}'
    )


# --------------------------------------------------------------------------------------------
# The Logger.
# --------------------------------------------------------------------------------------------


class Logger:
    """Logger(cfg): error log methods, access(), reopen_files(), close_on_exec()."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.statsd = None  # a statsd.Statsd with --statsd-host (set below; error() reads it)
        # A private logging.Logger, not one from logging.getLogger(): each Logger (the arbiter
        # makes a new one on reload) owns its handlers, and none leak into the app's logging.
        self._error_logger = logging.Logger("pronghorn.error")
        self._error_logger.propagate = False
        self._error_handler: logging.Handler | None = None
        self._access_stream: TextIO | None = None
        self._access_owned = False
        # The stdlib logger the access lines also go to (log config, syslog), or None.
        self._access_logger: logging.Logger | None = None
        self._configured = apply_logging_config(cfg)
        if self._configured:
            self._error_logger = logging.getLogger("gunicorn.error")
            self._access_logger = logging.getLogger("gunicorn.access")
        if self._error_logger.level == logging.NOTSET or not self._configured:
            self._error_logger.setLevel(LEVELS.get(cfg.loglevel, logging.INFO))
        if getattr(cfg, "syslog", False):
            self._add_syslog(cfg)
        if getattr(cfg, "statsd_host", None):
            from pronghorn.statsd import Statsd
            self.statsd = Statsd(cfg, self)
        self._lines_wanted = bool(cfg.accesslog) or self._access_logger is not None
        self.access_enabled = self._lines_wanted or self.statsd is not None
        if cfg.access_log_format.strip().lower() == "json":
            self._render = json_line
        else:
            parts = compile_format(cfg.access_log_format)
            self._render = lambda entry: "".join([part(entry) for part in parts])
        self._open_error_log()
        self._open_access_log()
        if cfg.capture_output and cfg.errorlog not in (None, "-"):
            self._capture_output()

    # -- error log

    def debug(self, msg: str, *args: Any) -> None:
        self._error_logger.debug(msg, *args)

    def info(self, msg: str, *args: Any) -> None:
        self._error_logger.info(msg, *args)

    def warning(self, msg: str, *args: Any) -> None:
        self._error_logger.warning(msg, *args)
        if self.statsd is not None:
            self.statsd.increment("gunicorn.log.warning")

    warn = warning

    def error(self, msg: str, *args: Any) -> None:
        self._error_logger.error(msg, *args)
        if self.statsd is not None:
            self.statsd.increment("gunicorn.log.error")

    def exception(self, msg: str, *args: Any) -> None:
        self._error_logger.exception(msg, *args)
        if self.statsd is not None:
            self.statsd.increment("gunicorn.log.exception")

    def critical(self, msg: str, *args: Any) -> None:
        self._error_logger.critical(msg, *args)
        if self.statsd is not None:
            self.statsd.increment("gunicorn.log.critical")

    def log(self, level: str | int, msg: str, *args: Any) -> None:
        if isinstance(level, str):
            level = LEVELS.get(level.lower(), logging.INFO)
        self._error_logger.log(level, msg, *args)

    def _open_error_log(self) -> None:
        if self._configured and self._error_handler is None and self._error_logger.handlers:
            return  # the logging config gave the error log its handlers (else ours, as gunicorn)
        if self.cfg.errorlog in (None, "-"):
            handler: logging.Handler = logging.StreamHandler(sys.stderr)
        else:
            # FileHandler flushes after every record: each line is on disk when written.
            handler = logging.FileHandler(self.cfg.errorlog, mode="a", encoding="utf-8")
        handler.setFormatter(logging.Formatter(ERROR_FORMAT, DATE_FORMAT))
        if self._error_handler is not None:
            self._error_logger.removeHandler(self._error_handler)
            self._error_handler.close()
        self._error_logger.addHandler(handler)
        self._error_handler = handler

    def _capture_output(self) -> None:
        """Point fds 1 and 2 at the error log file, so the app's print()s land there too."""
        handler = self._error_handler
        if isinstance(handler, logging.FileHandler) and handler.stream is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(handler.stream.fileno(), 1)
            os.dup2(handler.stream.fileno(), 2)

    # -- access log

    def _open_access_log(self) -> None:
        if not self.cfg.accesslog:
            return  # (statsd or a logging config may want access() without a file)
        if self.cfg.accesslog == "-":
            self._access_stream, self._access_owned = sys.stdout, False
        else:
            self._access_stream = open(self.cfg.accesslog, "a", buffering=1, encoding="utf-8",
                                       errors="backslashreplace")
            self._access_owned = True

    def access(self, environ: dict, status: str, resp_headers: list, response_length: int | None,
               request_time: float) -> None:
        """Write one access log line. request_time is in seconds."""
        if not self.access_enabled:
            return
        if self.statsd is not None:
            self.statsd.request(status, request_time)
            if not self._lines_wanted:
                return
        entry = _Entry(environ, status, resp_headers, response_length, request_time, time.time())
        try:
            line = self._render(entry)
            if self._access_logger is not None:
                self._access_logger.info(line)
            stream = self._access_stream
            if stream is None:
                return
            stream.write(line + "\n")
            if not self._access_owned:
                # stdout is block-buffered when it is a pipe (journald): flush so each line
                # shows up when its request ends, as gunicorn's does.
                stream.flush()  # type: ignore[union-attr]
        except Exception:
            # Logging must never take a request down; say so once per failure in the error log.
            self._error_logger.exception("cannot write the access log line")

    def access_line(self, environ: dict, status: str, resp_headers: list, response_length: int | None,
                    request_time: float, now: float | None = None) -> str:
        """The line access() would write (no newline); for tests and tools."""
        now = time.time() if now is None else now
        return self._render(_Entry(environ, status, resp_headers, response_length, request_time, now))

    # -- files

    def bind_loop(self, loop: Any) -> None:
        """The worker's event loop: statsd sends from it once per pass."""
        if self.statsd is not None:
            self.statsd.bind_loop(loop)

    def reopen_files(self) -> None:
        """Reopen the log files by name (after logrotate moved them); USR1 calls this."""
        if self._configured:
            for logger in (self._error_logger, self._access_logger):
                for handler in logger.handlers if logger is not None else ():
                    if isinstance(handler, logging.FileHandler):
                        handler.acquire()
                        try:
                            handler.close()  # the next record reopens it by name
                        finally:
                            handler.release()
        if self.cfg.errorlog not in (None, "-"):
            self._open_error_log()
            if self.cfg.capture_output:
                self._capture_output()
        if self._access_owned and self._access_stream is not None:
            old = self._access_stream
            self._open_access_log()
            old.close()

    def close_on_exec(self) -> None:
        """Mark the log files close-on-exec so a re-executed master does not inherit them."""
        streams = []
        if isinstance(self._error_handler, logging.FileHandler) and self._error_handler.stream:
            streams.append(self._error_handler.stream)
        if self._access_owned and self._access_stream is not None:
            streams.append(self._access_stream)
        for stream in streams:
            os.set_inheritable(stream.fileno(), False)

    def _add_syslog(self, cfg: Any) -> None:
        address, socktype = parse_syslog_address(cfg.syslog_addr)
        facility = logging.handlers.SysLogHandler.facility_names[cfg.syslog_facility]
        try:
            handler = logging.handlers.SysLogHandler(address, facility, socktype)
        except OSError as exc:
            self._error_logger.error("--log-syslog-to %s: %s; not logging to syslog", cfg.syslog_addr, exc)
            return
        program = cfg.syslog_prefix or cfg.proc_name or "pronghorn"
        handler.setFormatter(logging.Formatter(program + ": [%(process)d] [%(levelname)s] %(message)s"))
        self._error_logger.addHandler(handler)
        if not cfg.disable_redirect_access_to_syslog:
            if self._access_logger is None:
                self._access_logger = logging.Logger("pronghorn.access")
                self._access_logger.propagate = False
                self._access_logger.setLevel(logging.INFO)
            self._access_logger.addHandler(handler)

    def close(self) -> None:
        if self.statsd is not None:
            self.statsd.close()
        if self._error_handler is not None:
            self._error_logger.removeHandler(self._error_handler)
            self._error_handler.close()
            self._error_handler = None
        if self._access_owned and self._access_stream is not None:
            self._access_stream.close()
            self._access_stream = None

