"""Every pronghorn setting, where it comes from, and how it is checked.

The settings are one table (`SETTINGS`): each entry declares a setting's name (gunicorn's, so a
gunicorn config file works unchanged), its command-line flags, how a raw value is checked and
converted, its default and its help text. The command line, the `PRONGHORN_CMD_ARGS` variable,
the Python config file, `--print-config` and docs/server-reference.md are all derived from it.

Where a value comes from, strongest first (the same order as gunicorn):

    1. the command line
    2. PRONGHORN_CMD_ARGS (extra flags from the environment, shell-split)
    3. the config file: -c FILE, -c python:module.name, or ./pronghorn.conf.py when -c is not given
    4. environment defaults: WEB_CONCURRENCY (workers), FORWARDED_ALLOW_IPS, PORT (bind 0.0.0.0:PORT)
    5. the built-in default

Every bad value is a `ConfigError` whose text is one line naming where the value came from, the
setting, what was wrong and an example of a good value. `load_config` never exits the process and
never changes it (no chdir, no sys.path edits): that is left to cli.py and loader.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import grp
import importlib
import inspect
import ipaddress
import os
import pwd
import re
import shlex
import sys
import traceback
import types
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from pronghorn import __version__

DEFAULT_CONFIG_FILE = "pronghorn.conf.py"
ENV_ARGS = "PRONGHORN_CMD_ARGS"


class ConfigError(Exception):
    """A setting is wrong. str(err) is one line, without the `pronghorn: error: ` prefix."""


class InfoRequested(Exception):
    """--help or --version: str(exc) is the text to print, then exit 0."""


# --------------------------------------------------------------------------------------------
# Validators: take a raw value (a str from the command line or the environment, or any Python
# object from a config file), return the converted value, or raise ValueError with a short
# description of what was wrong ("'abc' is not a whole number").
# --------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else "'" + value + "'"


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{_show(value)} is not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip().replace("_", ""), 10)
        except ValueError:
            pass
    raise ValueError(f"{_show(value)} is not a whole number")


def int_range(lo: int, hi: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        n = _int(value)
        if n < lo or (hi is not None and n > hi):
            allowed = f"{lo}..{hi}" if hi is not None else f"{lo} or more"
            raise ValueError(f"{_show(value)} is out of range (allowed: {allowed})")
        return n

    return check


non_negative_int = int_range(0)
positive_int = int_range(1)


def seconds(value: Any) -> int | float:
    """A non-negative number of seconds; whole numbers stay ints (as gunicorn's)."""
    if isinstance(value, bool):
        raise ValueError(f"{_show(value)} is not a number of seconds")
    number: int | float
    if isinstance(value, (int, float)):
        number = value
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ValueError(f"{_show(value)} is not a number of seconds") from None
    if number != number or number < 0 or number == float("inf"):
        raise ValueError(f"{_show(value)} is not a number of seconds (0 or more)")
    return int(number) if float(number).is_integer() else float(number)


def optional_seconds(value: Any) -> int | float | None:
    """seconds(), or None for "not set" (the setting's documented fallback applies)."""
    return None if value is None or value == "" else seconds(value)


_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{_show(value)} is not true or false")


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{_show(value)} is not a string")
    return value


def optional_string(value: Any) -> str | None:
    return None if value is None else string(value)


def string_list(value: Any) -> list[str]:
    """A list of strings; a single string is a one-item list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"{_show(value)} is not a string or a list of strings")


def comma_list(value: Any) -> list[str]:
    """'a,b' or ['a', 'b'] -> ['a', 'b'] (empty items dropped)."""
    items = value.split(",") if isinstance(value, str) else string_list(value)
    return [item.strip() for item in items if item.strip()]


def choice(*allowed: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in allowed:
            return value.strip().lower()
        raise ValueError(f"{_show(value)} is not one of: {', '.join(allowed)}")

    return check


def bind_address(value: str) -> str:
    """'HOST:PORT', '[V6]:PORT', 'HOST' (port 8000, as gunicorn), 'unix:PATH' or 'fd://N'."""
    if value.startswith("unix:"):
        if not value[5:]:
            raise ValueError(f"{_show(value)} has no socket path after 'unix:'")
        return value
    if value.startswith("fd://"):
        _int_in(value, value[5:], 0, None, "file descriptor")
        return value
    if value.startswith("["):
        host, sep, port = value[1:].partition("]")
        if not sep:
            raise ValueError(f"{_show(value)} has no closing ']'")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{_show(value)}: '{host}' is not an IPv6 address") from None
        port = port[1:] if port.startswith(":") else port or ":8000"
        port = port.lstrip(":") or "8000"
        _int_in(value, port, 0, 65535, "port")
        return f"[{host}]:{int(port)}"
    if value.count(":") > 1:
        raise ValueError(f"{_show(value)}: write IPv6 addresses in brackets, e.g. [::1]:8000")
    host, sep, port = value.partition(":")
    if not host:
        raise ValueError(f"{_show(value)} has no host (e.g. 127.0.0.1:8000 or 0.0.0.0:8000)")
    if not sep:
        port = "8000"
    _int_in(value, port, 0, 65535, "port")
    return f"{host}:{int(port)}"


def _int_in(whole: str, text: str, lo: int, hi: int | None, what: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"{_show(whole)}: '{text}' is not a {what} number") from None
    if n < lo or (hi is not None and n > hi):
        raise ValueError(f"{_show(whole)}: {what} {n} is out of range ({lo}..{hi})")
    return n


def bind_list(value: Any) -> list[str]:
    addresses = comma_list(value) if isinstance(value, str) else string_list(value)
    if not addresses:
        raise ValueError("no address given")
    return [bind_address(a.strip()) for a in addresses]


def _name_or_id(value: Any, lookup, kind: str) -> int:
    """A numeric id as given, or a name resolved with `lookup` (name -> id, KeyError if none)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        return lookup(text)
    except KeyError:
        raise ValueError(f"no {kind} named '{text}' on this machine") from None


def user_id(value: Any) -> int:
    """A user name or a numeric uid, resolved to the uid."""
    return _name_or_id(value, lambda name: pwd.getpwnam(name).pw_uid, "user")


def group_id(value: Any) -> int:
    """A group name or a numeric gid, resolved to the gid."""
    return _name_or_id(value, lambda name: grp.getgrnam(name).gr_gid, "group")


def umask(value: Any) -> int | None:
    """'022' and '0o22' are octal (as a umask is always written); plain ints are taken as given.
    None keeps the inherited umask."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        mask = value
    else:
        text = str(value).strip().lower()
        try:
            if text.startswith("0x") or text.startswith("0o"):
                mask = int(text, 0)
            elif text.startswith("0"):
                mask = int(text, 8)
            else:
                mask = int(text, 10)
        except ValueError:
            raise ValueError(f"{_show(value)} is not a umask (octal, e.g. 022)") from None
    if not 0 <= mask <= 0o777:
        raise ValueError(f"{_show(value)} is out of range (allowed: 0..0777)")
    return mask


def existing_dir(value: Any) -> str | None:
    if value is None:
        return None
    path = string(value)
    if not os.path.isdir(path):
        raise ValueError(f"'{path}' is not a directory")
    return path


def raw_env_list(value: Any) -> list[str]:
    items = string_list(value)
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{_show(item)} is not KEY=VALUE")
    return items


PROXY_PROTOCOL_MODES = ("off", "v1", "v2", "auto")


def proxy_protocol_mode(value: Any) -> str:
    """off / v1 / v2 / auto (gunicorn 24.1); True (a bare --proxy-protocol, or gunicorn's older
    boolean setting) is auto, False is off."""
    if value is True or value is False:
        return "auto" if value else "off"
    text = str(value).strip().lower()
    if text in PROXY_PROTOCOL_MODES:
        return text
    raise ValueError(f"{_show(value)} is not one of: {', '.join(PROXY_PROTOCOL_MODES)} (a bare "
                     "--proxy-protocol means auto: put the app before it, or write --proxy-protocol=auto)")


def metrics_address(value: Any) -> str | None:
    """--metrics-bind: HOST:PORT or [V6]:PORT (a port is required: no default to guess)."""
    text = optional_string(value)
    if not text:
        return None
    if text.startswith(("unix:", "fd://")) or not re.search(r":[0-9]+$", text):
        raise ValueError(f"{_show(text)}: give HOST:PORT, e.g. 127.0.0.1:9100")
    return bind_address(text)


def socket_mode(value: Any) -> int:
    """--control-socket-mode, read as gunicorn reads it: a leading 0 means octal (0600), else
    Python's int literal rules (0o600, or plain decimal: 384)."""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        text = str(value).strip()
        if re.fullmatch(r"0[0-9]+", text):
            text = "0o" + text[1:]
        try:
            mode = int(text, 0)
        except ValueError:
            raise ValueError(f"{_show(value)} is not a file mode (e.g. 0600)") from None
    if not 0 <= mode <= 0o777:
        raise ValueError(f"{_show(value)} is not a file mode (0..0777 octal)")
    return mode


def header_names(value: Any) -> list[str]:
    """'X-Forwarded-For,SCRIPT_NAME' -> ['X-FORWARDED-FOR', 'SCRIPT_NAME'] (names as the parser reports them)."""
    return [name.upper() for name in comma_list(value)]


def allowed_ips(value: Any) -> list[str]:
    """'127.0.0.1,::1,10.0.0.0/8' or '*' -> a list; each entry must be an address or network."""
    entries = comma_list(value)
    if "*" in entries:
        return ["*"]
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"'{entry}' is not an IP address or network (or '*' for all)") from None
    return entries


def proxy_trust(entries: list[str]) -> Callable[[str], bool]:
    """A fast test 'is this peer address a trusted proxy?' for forwarded_allow_ips.

    Exact addresses are a set lookup; networks (10.0.0.0/8) are checked only when present.
    """
    if "*" in entries:
        return lambda address: True
    exact = {e for e in entries if "/" not in e}
    networks = [ipaddress.ip_network(e, strict=False) for e in entries if "/" in e]
    if not networks:
        return exact.__contains__

    def trusted(address: str) -> bool:
        if address in exact:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in networks)

    return trusted


def header_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{_show(value)} is not a dict of header name -> value")
    return {k.upper().replace("_", "-"): v for k, v in value.items()}


ACCEPTED_WORKER_CLASSES = {
    "sync": "sync",
    "gthread": "gthread",
    "gunicorn.workers.sync.syncworker": "sync",
    "gunicorn.workers.gthread.threadworker": "gthread",
}


def worker_class(value: Any) -> str:
    """gunicorn's -k: sync and gthread are what pronghorn's worker already is; others are refused."""
    name = str(value).strip()
    if name.lower() in ACCEPTED_WORKER_CLASSES:
        return ACCEPTED_WORKER_CLASSES[name.lower()]
    raise ValueError(
        f"{_show(value)} is not supported: pronghorn's worker already serves keep-alive and slow "
        "clients from an event loop; use --threads N for a thread pool (allowed: sync, gthread)"
    )


def access_format(value: Any) -> str:
    """'json', or a gunicorn access format whose atoms all exist."""
    from pronghorn.logs import compile_format  # logs.py needs nothing from here

    text = string(value)
    if text.strip().lower() != "json":
        compile_format(text)  # raises a ValueError naming the unknown atom
    return text


def log_file(value: Any) -> str | None:
    """'-' (the console), None (off, access log only) or a file in an existing directory."""
    if value is None or value == "-":
        return value
    path = string(value)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"the directory {directory} does not exist (create it, or use - for the console)")
    if os.path.isdir(path):
        raise ValueError(f"'{path}' is a directory, not a file")
    return path


def loglevel(value: Any) -> str:
    return choice("debug", "info", "warning", "error", "critical")(value)


def existing_file(value: Any) -> str | None:
    """None, or a path to a readable file (checked now so a typo stops the start, not a worker)."""
    if value is None:
        return None
    path = string(value)
    if not os.path.isfile(path):
        raise ValueError(f"'{path}' is not a file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"'{path}' is not readable by this user")
    return path


def a_dict(value: Any) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{_show(value)} is not a dict")
    return value


def syslog_address(value: Any) -> str:
    from pronghorn.logconfig import parse_syslog_address

    parse_syslog_address(string(value))
    return value


def syslog_facility(value: Any) -> str:
    from logging.handlers import SysLogHandler

    return choice(*SysLogHandler.facility_names)(value)


def statsd_address(value: Any) -> str | None:
    from pronghorn.statsd import parse_address

    if value is None:
        return None
    parse_address(string(value))
    return value


def root_path(value: Any) -> str:
    """'' or '/mount/point' (a trailing '/' dropped): the SCRIPT_NAME every request gets."""
    text = string(value).strip().rstrip("/")
    if text and not text.startswith("/"):
        raise ValueError(f"{_show(value)} does not start with '/' (e.g. /api)")
    return text


def ssl_version(value: Any) -> int:
    """gunicorn's --ssl-version: a PROTOCOL_* number or name (TLS, TLSv1_2, TLS_SERVER...)."""
    import ssl

    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    method = getattr(ssl, "PROTOCOL_" + text, None) if text.replace("_", "").isalnum() else None
    if method is None:
        raise ValueError(f"{_show(value)} is not an ssl protocol (e.g. TLS, TLSv1_2, TLS_SERVER)")
    return int(method)


def cert_reqs(value: Any) -> int:
    """0 (CERT_NONE), 1 (CERT_OPTIONAL) or 2 (CERT_REQUIRED); the names are accepted too."""
    import ssl

    if isinstance(value, str) and value.strip().upper() in ("CERT_NONE", "CERT_OPTIONAL", "CERT_REQUIRED"):
        return int(getattr(ssl, value.strip().upper()))
    return int_range(0, 2)(value)


def ciphers(value: Any) -> str | None:
    """None, or an OpenSSL cipher list this machine's OpenSSL understands."""
    import ssl

    if value is None:
        return None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(string(value))
    except ssl.SSLError:
        raise ValueError(f"{_show(value)} selects no cipher OpenSSL knows (see `openssl ciphers`)") from None
    return value


def wire_protocol(value: Any) -> str:
    """gunicorn's --protocol: pronghorn speaks HTTP only; uwsgi's binary protocol is refused."""
    if str(value).strip().lower() == "http":
        return "http"
    raise ValueError(f"{_show(value)} is not supported: pronghorn speaks HTTP only (allowed: http; "
                     "put nginx's proxy_pass in front instead of uwsgi_pass)")


# --------------------------------------------------------------------------------------------
# The settings table.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    name: str  # attribute on Config and name in a config file (gunicorn's)
    flags: tuple[str, ...]  # command-line flags; () = config file only
    validate: Callable[[Any], Any]
    default: Any
    help: str
    example: str  # a good value, for error messages and the reference
    kind: str = "value"  # value | append | true (flag sets True) | false (flag sets False)
    #                      | optional (a value may follow the flag; alone it gives True)
    env: str | None = None  # environment variable giving the default
    env_to_value: Callable[[str], Any] | None = None
    section: str = "Server"
    metavar: str | None = None

    def default_value(self) -> Any:
        """A fresh default (callable defaults, e.g. the current uid, are evaluated now)."""
        if callable(self.default):
            return self.default()
        return _copy(self.default)

    @property
    def file_example(self) -> str:
        """The example as a config file line's right-hand side (a Python literal)."""
        text = self.example
        if text in ("True", "False") or text[:1] in "'[{" or re.fullmatch(r"[0-9.]+", text):
            return text
        return repr(text)

    @property
    def flag(self) -> str:
        """The flag shown in messages: the first long one."""
        longs = [f for f in self.flags if f.startswith("--")]
        return (longs or list(self.flags) or [self.name])[0]


GIB = 1024**3
GUNICORN_ACCESS_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
DEFAULT_SECURE_SCHEME_HEADERS = {
    "X-FORWARDED-PROTOCOL": "ssl",
    "X-FORWARDED-PROTO": "https",
    "X-FORWARDED-SSL": "on",
}

S = Setting
SETTINGS: tuple[Setting, ...] = (
    # -- where and how many
    S("wsgi_app", (), optional_string, None, "The WSGI application, 'module:attr', 'module' "
      "(uses `application`, then `app`) or 'module:factory(literal args)'. Usually given as the "
      "command's argument: `pronghorn myproject.wsgi:application`.", "'myproject.wsgi:application'",
      section="Application"),
    S("bind", ("-b", "--bind"), bind_list, ["127.0.0.1:8000"], "Address to listen on, repeatable: "
      "HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N (an inherited socket). HOST alone means port 8000. "
      "When PORT is set in the environment the default is 0.0.0.0:$PORT (as gunicorn).",
      "127.0.0.1:8000", kind="append", env="PORT", env_to_value=lambda port: ["0.0.0.0:" + port],
      metavar="ADDRESS"),
    S("backlog", ("--backlog",), positive_int, 2048, "Listen queue length (connections waiting to be "
      "accepted).", "2048", metavar="INT"),
    S("reuse_port", ("--reuse-port",), boolean, False, "Set SO_REUSEPORT on the listening sockets.",
      "True", kind="true"),
    S("workers", ("-w", "--workers"), positive_int, 1, "Number of worker processes. Default: "
      "$WEB_CONCURRENCY, else 1. A common choice is the number of CPU cores.", "4",
      env="WEB_CONCURRENCY", metavar="INT", section="Workers"),
    S("worker_class", ("-k", "--worker-class"), worker_class, "sync", "Accepted for gunicorn "
      "compatibility: 'sync' and 'gthread' (both mean pronghorn's worker; use --threads for a thread "
      "pool). Anything else is refused.", "sync", metavar="CLASS", section="Workers"),
    S("threads", ("--threads",), positive_int, 1, "Threads per worker running the app. 1 runs the app "
      "in the worker's event-loop thread (fastest); N>1 runs it in a pool of N threads so an app that "
      "blocks does not stop the worker reading other connections.", "4", metavar="INT",
      section="Workers"),
    S("worker_connections", ("--worker-connections",), positive_int, 1000, "Most open client "
      "connections per worker (gunicorn's name and default). A worker that holds this many stops "
      "accepting; the rest wait in the listen backlog (or go to other workers) until it is below "
      "90% again.", "1000", metavar="INT", section="Workers"),
    S("max_requests", ("--max-requests",), non_negative_int, 0, "Restart a worker after it served "
      "this many requests (0 = never). Limits the damage of a memory leak.", "1000", metavar="INT",
      section="Workers"),
    S("max_requests_jitter", ("--max-requests-jitter",), non_negative_int, 0, "Add a random 0..N to "
      "--max-requests per worker so workers do not all restart at once.", "50", metavar="INT",
      section="Workers"),
    S("max_worker_memory", ("--max-worker-memory",), non_negative_int, 0, "Restart a worker (after "
      "its current requests) when its resident memory exceeds this many MiB (0 = never).", "512",
      metavar="MIB", section="Workers"),
    S("timeout", ("-t", "--timeout"), seconds, 30, "A worker silent for this many seconds is killed "
      "and replaced (0 = never). With --threads 1 an app call that takes longer counts as silent.",
      "30", metavar="SECONDS", section="Workers"),
    S("graceful_timeout", ("--graceful-timeout",), seconds, 30, "On TERM or reload, workers get this "
      "long to finish in-flight requests before they are killed.", "30", metavar="SECONDS",
      section="Workers"),
    S("preload_app", ("--preload",), boolean, False, "Import the app in the master before forking "
      "(saves memory, faster start; code changes then need a full restart, not HUP).", "True",
      kind="true", section="Workers"),
    # -- HTTP
    S("keepalive", ("--keep-alive",), seconds, 5, "Seconds an idle keep-alive connection is kept "
      "open (0 = close after each response). gunicorn's default is 2 because there an idle "
      "connection holds a whole sync worker; in pronghorn it is a few bytes in the event loop, so "
      "the default is 5 (as uvicorn) to let browsers and proxies reuse connections across bursts.",
      "5", metavar="SECONDS", section="HTTP"),
    S("header_timeout", ("--header-timeout",), seconds, 10, "The whole request head (request line "
      "and headers) must arrive within this many seconds of its first byte, else 408 and close "
      "(stops slowloris).", "10", metavar="SECONDS", section="HTTP"),
    S("body_timeout", ("--body-timeout",), seconds, 30, "A request body that makes no progress for "
      "this many seconds is answered 408 and the connection closed.", "30", metavar="SECONDS",
      section="HTTP"),
    S("send_timeout", ("--send-timeout",), optional_seconds, None, "A client that reads nothing of "
      "its responses for this many seconds (its send buffer stays full) is disconnected, so a client "
      "that stops reading holds neither a connection nor memory for long. Meanwhile the worker stops "
      "reading its requests. Default: --body-timeout. gunicorn has no such setting (its sync worker "
      "blocks in the send until --timeout kills it).", "30", metavar="SECONDS", section="HTTP"),
    S("limit_request_line", ("--limit-request-line",), int_range(0, 8190), 4094, "Longest request "
      "line in bytes, 0..8190 (0 = the maximum, 8190). Longer: 414.", "4094", metavar="BYTES",
      section="HTTP"),
    S("limit_request_fields", ("--limit-request-fields",), int_range(0, 32768), 100, "Most header "
      "fields in a request, 0..32768 (0 = the maximum). More: 431.", "100", metavar="INT",
      section="HTTP"),
    S("limit_request_field_size", ("--limit-request-field_size", "--limit-request-field-size"),
      int_range(0, 8190 * 4), 8190, "Largest header field line in bytes, counting its CRLF as gunicorn "
      "does (so a line of up to BYTES-2 characters passes; 0 = the default, 8190). Larger: 431. Both gunicorn's `--limit-request-field_size` and "
      "`--limit-request-field-size` are accepted.", "8190", metavar="BYTES", section="HTTP"),
    S("limit_request_body", ("--limit-request-body",), non_negative_int, GIB, "Largest request body "
      "in bytes (0 = no limit). Larger: 413. gunicorn has no limit; pronghorn spools big bodies to "
      "a temp file, so the default of 1 GiB keeps one client from filling the disk while never "
      "breaking a real upload. Put a tighter limit in nginx's client_max_body_size too.",
      str(GIB), metavar="BYTES", section="HTTP"),
    S("forwarded_allow_ips", ("--forwarded-allow-ips",), allowed_ips, ["127.0.0.1", "::1"],
      "Comma-separated addresses or networks whose proxy headers (secure_scheme_headers, "
      "forwarder_headers) are trusted; '*' trusts every peer. Default: $FORWARDED_ALLOW_IPS, else "
      "127.0.0.1,::1. From any other peer those headers change nothing. Unix-socket peers are "
      "trusted, as gunicorn (only local processes can connect; the socket's permissions decide "
      "which), unless this is empty: pronghorn's way to trust no one.", "127.0.0.1,::1",
      env="FORWARDED_ALLOW_IPS", metavar="IPS", section="HTTP"),
    S("secure_scheme_headers", (), header_map, DEFAULT_SECURE_SCHEME_HEADERS, "Config file only: "
      "headers from a trusted proxy that mean the request came over HTTPS, header -> value (the "
      "value compared exactly, as gunicorn). The first one present sets wsgi.url_scheme (https "
      "when its value matches, else http); another that says otherwise is a 400, as gunicorn "
      "(e.g. `X-Forwarded-Proto: http` with `X-Forwarded-Ssl: on`: a client header the proxy let "
      "through). Name only the header your proxy sets, and have it overwrite the client's.",
      "{'X-FORWARDED-PROTO': 'https'}", section="HTTP"),
    S("forwarder_headers", ("--forwarder-headers",), header_names, ["SCRIPT_NAME", "PATH_INFO"],
      "Comma-separated headers a trusted proxy (--forwarded-allow-ips) sets that go into the "
      "environ. As gunicorn: a name with `_` (SCRIPT_NAME, REMOTE_USER), dropped from everyone "
      "else, is passed to the app (SCRIPT_NAME sets SCRIPT_NAME and is taken off PATH_INFO). "
      "Beyond gunicorn: X-Forwarded-For or X-Real-IP here sets REMOTE_ADDR (so the app and the "
      "access log see the client): the first listed that is present counts; in X-Forwarded-For "
      "the client is the right-most address that is not a trusted proxy. Default: gunicorn's.",
      "X-FORWARDED-FOR", metavar="HEADERS", section="HTTP"),
    S("proxy_protocol", ("--proxy-protocol",), proxy_protocol_mode, "off", "PROXY protocol (for "
      "HAProxy or a cloud TCP balancer): off, v1 (text), v2 (binary) or auto (either; a bare "
      "`--proxy-protocol` means auto). A connection from --proxy-allow-from may open with a PROXY "
      "header, whose client address becomes REMOTE_ADDR; one without it is served as plain HTTP, "
      "as gunicorn.", "auto", kind="optional", metavar="MODE", section="HTTP"),
    S("proxy_allow_ips", ("--proxy-allow-from",), allowed_ips, ["127.0.0.1", "::1"],
      "Comma-separated addresses or networks allowed to send a PROXY header; '*' for all. Unix-"
      "socket peers are allowed, as gunicorn.", "10.0.0.0/8", metavar="IPS", section="HTTP"),
    S("sendfile", ("--no-sendfile",), boolean, True, "`--no-sendfile` turns off sendfile() for "
      "wsgi.file_wrapper responses (useful on some network file systems).", "False", kind="false",
      section="HTTP"),
    # -- process
    S("chdir", ("--chdir",), existing_dir, None, "Change to this directory before loading the app "
      "(and put it on sys.path). Re-entered by every new worker, so a `current -> releases/N` "
      "symlink is followed on reload.", "/srv/app/current", metavar="DIR", section="Process"),
    S("pythonpath", ("--pythonpath",), comma_list, [], "Comma-separated directories put at the "
      "front of sys.path (before --chdir) when loading the app.", "/srv/app/current/src",
      metavar="DIRS", section="Process"),
    S("raw_env", ("-e", "--env"), raw_env_list, [], "Set an environment variable KEY=VALUE in the "
      "server (repeatable).", "DJANGO_SETTINGS_MODULE=mysite.settings", kind="append",
      metavar="KEY=VALUE", section="Process"),
    S("user", ("-u", "--user"), user_id, os.geteuid, "Run workers as this user (name or uid; the master "
      "must be root to switch). Default: the current user.", "www-data", metavar="USER",
      section="Process"),
    S("group", ("-g", "--group"), group_id, os.getegid, "Run workers as this group (name or gid). "
      "Default: the current group.", "www-data", metavar="GROUP", section="Process"),
    S("umask", ("-m", "--umask"), umask, None, "umask of the server and its workers (octal, e.g. "
      "022). Default: unset, the umask pronghorn was started with is kept (systemd's UMask=, the "
      "shell's umask), so files the app creates get the modes the service was given. gunicorn "
      "always applies its own setting, default 0 (files 0666, directories 0777): give `--umask 0` "
      "to have that. A unix socket from `-b unix:PATH` gets mode 0777 minus --umask (0777 when "
      "unset, as gunicorn's default) whatever the inherited umask: the directory it sits in decides "
      "who may connect.", "022", metavar="INT", section="Process"),
    S("pidfile", ("-p", "--pid"), optional_string, None, "Write the master's PID to this file.",
      "/run/app/pronghorn.pid", metavar="FILE", section="Process"),
    S("stats_file", ("--stats-file",), optional_string, None, "Every few seconds the master "
      "writes the workers' stats here as JSON (atomically: a temp file renamed over it): per "
      "worker pid, age, requests served, connections open, RSS and last heartbeat age; the "
      "master's pid, start time and workers wanted. A directory means DIR/pronghorn-stats.json. "
      "Removed when the server stops.", "/run/app/stats.json", metavar="PATH", section="Process"),
    S("control_socket", ("--control-socket",), optional_string, None, "A unix socket where the "
      "master takes `pronghorn ctl --socket PATH COMMAND` (gunicornc's commands: show workers, "
      "show stats, worker add, reload, shutdown, ...). Mode 0600, owned by the server's user. "
      "Default: none (gunicorn 25+ opens one by default under $XDG_RUNTIME_DIR or ~/.gunicorn; "
      "pronghorn only where asked, e.g. in the service's run directory).", "/run/app/pronghorn.ctl",
      metavar="PATH", section="Process"),
    S("control_socket_mode", ("--control-socket-mode",), socket_mode, 0o600, "File mode of the "
      "control socket: octal with a leading 0, as gunicorn reads it.", "0600", metavar="MODE",
      section="Process"),
    S("control_socket_disable", ("--no-control-socket",), boolean, False, "No control socket, "
      "even when --control-socket is set (gunicorn's switch).", "True", kind="true",
      section="Process"),
    S("metrics_bind", ("--metrics-bind",), metrics_address, None, "Serve Prometheus metrics at "
      "http://HOST:PORT/metrics from the master: requests by status class, a latency histogram, "
      "requests in flight, open connections, worker restarts by cause, the listen backlog. "
      "Default: off. Bind it to a private address (it has no authentication).", "127.0.0.1:9100",
      metavar="HOST:PORT", section="Process"),
    S("request_timeout", ("--request-timeout",), seconds, 0, "With --threads above 1: a request "
      "still running after this many seconds gets its worker replaced gracefully (a new worker "
      "starts, the old one finishes its other requests within --graceful-timeout), logged with the "
      "request line. 0 = off. With --threads 1 the app blocks the worker's heartbeat, so --timeout "
      "already covers it.", "60", metavar="SECONDS", section="Workers"),
    S("worker_tmp_dir", ("--worker-tmp-dir",), existing_dir, None, "Directory for the workers' "
      "heartbeat files (default: the system temp dir; /dev/shm avoids disk writes).", "/dev/shm",
      metavar="DIR", section="Process"),
    S("proc_name", ("-n", "--name"), optional_string, None, "Process title prefix shown by ps "
      "(default: the app).", "myapp", metavar="NAME", section="Process"),
    S("reload", ("--reload",), boolean, False, "Development: restart workers when a loaded Python "
      "file (or a --reload-extra-file) changes. Follows a `current` symlink switch.", "True",
      kind="true", section="Process"),
    S("reload_extra_files", ("--reload-extra-file",), string_list, [], "Extra file to watch with "
      "--reload (repeatable), e.g. templates or settings.", "templates/base.html", kind="append",
      metavar="FILE", section="Process"),
    # -- logging
    S("accesslog", ("--access-logfile",), log_file, None, "Access log file; '-' = stdout. "
      "Default: no access log.", "-", metavar="FILE", section="Logging"),
    S("access_log_format", ("--access-logformat",), access_format, GUNICORN_ACCESS_FORMAT, "Access log "
      "line format with gunicorn's atoms (h l u t r m U q H s B b f a T D M L p {header}i "
      "{header}o {var}e), or 'json' for one JSON object per line.", "json", metavar="FORMAT",
      section="Logging"),
    S("errorlog", ("--error-logfile", "--log-file"), log_file, "-", "Error log file; '-' = stderr.",
      "/var/log/app/error.log", metavar="FILE", section="Logging"),
    S("loglevel", ("--log-level",), loglevel, "info", "Error log level: debug, info, warning, "
      "error, critical.", "info", metavar="LEVEL", section="Logging"),
    S("capture_output", ("--capture-output",), boolean, False, "Send the app's stdout and stderr "
      "to the error log file (when it is a file).", "True", kind="true", section="Logging"),
    # -- gunicorn's other logging: stdlib logging config, syslog, statsd
    S("logconfig", ("--log-config",), existing_file, None, "A logging config file in the ini format "
      "of logging.config.fileConfig. As gunicorn, its loggers `gunicorn.error` and `gunicorn.access` "
      "get the error log and the access lines (an existing gunicorn file works unchanged).",
      "/etc/app/logging.ini", metavar="FILE", section="Logging"),
    S("logconfig_dict", (), a_dict, {}, "Config file only: a dict for logging.config.dictConfig "
      "(same loggers as --log-config).", "{'version': 1}", section="Logging"),
    S("logconfig_json", ("--log-config-json",), existing_file, None, "A JSON file holding a "
      "logging.config.dictConfig dict (same loggers as --log-config).", "/etc/app/logging.json",
      metavar="FILE", section="Logging"),
    S("syslog", ("--log-syslog",), boolean, False, "Also send the error log (and the access log, "
      "unless --disable-redirect-access-to-syslog) to syslog at --log-syslog-to.", "True",
      kind="true", section="Logging"),
    S("syslog_addr", ("--log-syslog-to",), syslog_address, "udp://localhost:514", "Syslog address: "
      "udp://HOST:PORT, tcp://HOST:PORT or unix://PATH[#dgram|#stream].", "unix:///dev/log#dgram",
      metavar="ADDRESS", section="Logging"),
    S("syslog_prefix", ("--log-syslog-prefix",), optional_string, None, "Program name in syslog "
      "lines (default: the process name).", "myapp", metavar="NAME", section="Logging"),
    S("syslog_facility", ("--log-syslog-facility",), syslog_facility, "user", "Syslog facility "
      "name.", "daemon", metavar="FACILITY", section="Logging"),
    S("disable_redirect_access_to_syslog", ("--disable-redirect-access-to-syslog",), boolean, False,
      "With --log-syslog, keep access lines out of syslog.", "True", kind="true", section="Logging"),
    S("enable_stdio_inheritance", ("-R", "--enable-stdio-inheritance"), boolean, False, "With "
      "--daemon, keep stdout and stderr (else they go to /dev/null, as gunicorn). Without "
      "--daemon they are always inherited.", "True", kind="true", section="Logging"),
    S("logger_class", ("--logger-class",), string, "gunicorn.glogging.Logger", "Accepted for "
      "gunicorn compatibility; another class has no effect (a warning says so): pronghorn has its "
      "own logger, configure it with --log-config.", "gunicorn.glogging.Logger", metavar="CLASS",
      section="Logging"),
    S("statsd_host", ("--statsd-host",), statsd_address, None, "Send metrics over UDP to this "
      "statsd, HOST:PORT (or unix:PATH), named as gunicorn's: per request `gunicorn.requests`, "
      "`gunicorn.request.duration` (ms) and `gunicorn.request.status.200` (plus the class, "
      "`gunicorn.request.status.2xx`); `gunicorn.log.error`... per error line; the master's "
      "`gunicorn.workers` gauge. Batched once per event-loop pass; nothing is done for them when "
      "unset.", "127.0.0.1:8125", metavar="ADDRESS", section="Logging"),
    S("statsd_prefix", ("--statsd-prefix",), string, "", "Prefix of every statsd metric name "
      "(a '.' is added).", "myapp", metavar="PREFIX", section="Logging"),
    S("dogstatsd_tags", ("--dogstatsd-tags",), string, "", "Comma-separated dogstatsd tags added "
      "to every metric, e.g. env:prod,app:shop.", "env:prod", metavar="TAGS", section="Logging"),
    S("enable_backlog_metric", ("--enable-backlog-metric",), boolean, False, "With --statsd-host, "
      "the master also sends `gunicorn.backlog` (a histogram: connections waiting in the TCP "
      "listeners' accept queues, Linux), as gunicorn.", "True", kind="true", section="Logging"),
    # -- TLS (on the worker's event loop)
    S("certfile", ("--certfile",), existing_file, None, "Serve HTTPS: the certificate chain (PEM). "
      "Needs --keyfile. sendfile is off under TLS (the kernel cannot encrypt).", "/etc/app/cert.pem",
      metavar="FILE", section="TLS"),
    S("keyfile", ("--keyfile",), existing_file, None, "The private key (PEM) of --certfile.",
      "/etc/app/key.pem", metavar="FILE", section="TLS"),
    S("ca_certs", ("--ca-certs",), existing_file, None, "CA certificates (PEM) to verify client "
      "certificates with (see --cert-reqs).", "/etc/app/ca.pem", metavar="FILE", section="TLS"),
    S("cert_reqs", ("--cert-reqs",), cert_reqs, 0, "Client certificates: 0 not asked, 1 optional, "
      "2 required (verified with --ca-certs).", "2", metavar="INT", section="TLS"),
    S("ssl_version", ("--ssl-version",), ssl_version, 2, "gunicorn's protocol choice: TLS / "
      "TLS_SERVER (2, the default) negotiates the best version; TLSv1_2 sets TLS 1.2 as the "
      "minimum. TLS 1.0 and 1.1 are refused when the handshake starts if OpenSSL disabled them.",
      "TLS_SERVER", metavar="VERSION", section="TLS"),
    S("ciphers", ("--ciphers",), ciphers, None, "OpenSSL cipher list (default: Python's).",
      "ECDHE+AESGCM", metavar="CIPHERS", section="TLS"),
    S("suppress_ragged_eofs", ("--suppress-ragged-eofs",), boolean, True, "Accepted for gunicorn "
      "compatibility: a client closing without TLS close_notify is treated as a close.", "True",
      kind="true", section="TLS"),
    S("do_handshake_on_connect", ("--do-handshake-on-connect",), boolean, False, "Accepted for "
      "gunicorn compatibility: the event loop always does the handshake as the connection opens.",
      "True", kind="true", section="TLS"),
    # -- gunicorn's mount point, header and parsing switches
    S("root_path", ("--root-path",), root_path, "", "The app's mount point behind a proxy, e.g. "
      "/api: SCRIPT_NAME of every request, taken off the front of PATH_INFO when there (as the "
      "SCRIPT_NAME environment variable, which it overrides).", "/api", metavar="PATH",
      section="HTTP"),
    S("header_map", ("--header-map",), choice("drop", "refuse", "dangerous"), "drop", "Request "
      "headers whose name has '_' (X_Forwarded_For would land on the same environ key as "
      "X-Forwarded-For): drop them (default), refuse the request with 400, or (dangerous) pass them "
      "as HTTP_X_FORWARDED_FOR... Trusted --forwarder-headers are passed either way.", "refuse",
      metavar="MODE", section="HTTP"),
    S("permit_obsolete_folding", ("--permit-obsolete-folding",), boolean, False, "Accepted for "
      "gunicorn compatibility; has no effect (a warning says so): folded header lines stay a 400, "
      "as RFC 9112 §5.2 allows, because proxies disagree on them (request smuggling).", "True",
      kind="true", section="HTTP"),
    S("strip_header_spaces", ("--strip-header-spaces",), boolean, False, "Accepted for gunicorn "
      "compatibility; has no effect (a warning says so): a space before a header's colon stays a "
      "400 (RFC 9112 §5.1: smuggling).", "True", kind="true", section="HTTP"),
    S("permit_unconventional_http_method", ("--permit-unconventional-http-method",), boolean,
      False, "Accepted for gunicorn compatibility; any RFC 9110 token is already a method here "
      "(a warning says the switch changes nothing).", "True", kind="true", section="HTTP"),
    S("permit_unconventional_http_version", ("--permit-unconventional-http-version",), boolean,
      False, "Accepted for gunicorn compatibility; has no effect (a warning says so): only "
      "HTTP/1.0 and HTTP/1.1 are served.", "True", kind="true", section="HTTP"),
    S("casefold_http_method", ("--casefold-http-method",), boolean, False, "Accepted for gunicorn "
      "compatibility; has no effect (a warning says so): methods are case-sensitive (RFC 9110 "
      "§9.1), a lower-case one is passed on as sent.", "True", kind="true", section="HTTP"),
    S("protocol", ("--protocol",), wire_protocol, "http", "gunicorn's wire protocol: http only "
      "(uwsgi is refused).", "http", metavar="PROTOCOL", section="HTTP"),
    S("uwsgi_allow_ips", ("--uwsgi-allow-from",), allowed_ips, ["127.0.0.1", "::1"], "Accepted "
      "for gunicorn compatibility; no effect (a warning says so): there is no uwsgi protocol here.",
      "127.0.0.1", metavar="IPS", section="HTTP"),
    S("http_parser", ("--http-parser",), choice("auto", "fast", "python"), "auto", "Accepted for "
      "gunicorn compatibility; no effect (a warning says so): pronghorn has one parser.", "auto",
      metavar="PARSER", section="HTTP"),
    # -- gunicorn's other process settings
    S("paste", ("--paste", "--paster"), optional_string, None, "A PasteDeploy ini file (config:FILE "
      "or FILE[#name]) to load the app from instead of MODULE:APP; needs the PasteDeploy package.",
      "production.ini", metavar="FILE", section="Process"),
    S("raw_paste_global_conf", ("--paste-global",), raw_env_list, [], "KEY=VALUE given to the "
      "paste app as a global_conf value (repeatable).", "FOO=1", kind="append",
      metavar="KEY=VALUE", section="Process"),
    S("daemon", ("-D", "--daemon"), boolean, False, "Detach from the terminal (two forks, a new "
      "session, stdio to /dev/null): the command returns and the server runs on; use --pid to find "
      "it. Not under systemd (Type=notify and socket activation need the process it started).",
      "True", kind="true", section="Process"),
    S("initgroups", ("--initgroups",), boolean, False, "Accepted for gunicorn compatibility: with "
      "--user, workers always get the user's supplementary groups (initgroups), as this asks.",
      "True", kind="true", section="Process"),
    S("tmp_upload_dir", (), existing_dir, None, "Config file only. Accepted for gunicorn "
      "compatibility; no effect (a warning says so): request bodies spool to the system temp dir "
      "($TMPDIR).", "/var/tmp", section="Process"),
    S("default_proc_name", (), string, "gunicorn", "Config file only; accepted for gunicorn "
      "compatibility (--name sets the title).", "myapp", section="Process"),
    S("reload_engine", ("--reload-engine",), choice("auto", "poll", "inotify"), "auto", "Accepted "
      "for gunicorn compatibility; no effect (a warning says so): --reload has one engine.",
      "auto", metavar="ENGINE", section="Process"),
    S("spew", ("--spew",), boolean, False, "Accepted for gunicorn compatibility; no effect (a "
      "warning says so): trace with `python -X importtime` or a debugger instead.", "True",
      kind="true", section="Process"),
    # -- actions
    S("check_config", ("--check-config",), boolean, False, "Check the configuration and import the "
      "app, print 'config ok' or the error, exit 0 or 1. Warnings the server would log at start "
      "(a gunicorn setting with no effect here, and why) are printed too.", "True", kind="true", section="Actions"),
    S("print_config", ("--print-config",), boolean, False, "Print every setting and its value, "
      "sorted, then exit.", "True", kind="true", section="Actions"),
)
del S

SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


# --------------------------------------------------------------------------------------------
# Server hooks: gunicorn's names and signatures. A config file function of that name replaces
# the default no-op; the number of parameters is checked when the file is loaded.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hook:
    name: str
    params: tuple[str, ...]
    help: str

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(self.params)})"


HOOKS: tuple[Hook, ...] = (
    Hook("on_starting", ("server",), "In the master, before the sockets are bound."),
    Hook("on_reload", ("server",), "In the master, on HUP, before new workers start."),
    Hook("when_ready", ("server",), "In the master, once the sockets listen and workers are being started."),
    Hook("pre_fork", ("server", "worker"), "In the master, just before a worker is forked."),
    Hook("post_fork", ("server", "worker"), "In the new worker, just after the fork."),
    Hook("post_worker_init", ("worker",), "In the worker, after the app is loaded."),
    Hook("worker_int", ("worker",), "In the worker, on INT or QUIT."),
    Hook("worker_abort", ("worker",), "In the worker, on ABRT (the master killed it for --timeout)."),
    Hook("pre_exec", ("server",), "In the master, before re-executing itself on USR2."),
    Hook("pre_request", ("worker", "req"), "In the worker, before the app is called for a request."),
    Hook("post_request", ("worker", "req", "environ", "resp"), "In the worker, after the response is sent."),
    Hook("child_exit", ("server", "worker"), "In the master, after a worker exited."),
    Hook("worker_exit", ("server", "worker"), "In the worker, just before it exits."),
    Hook("nworkers_changed", ("server", "new_value", "old_value"), "In the master, when the number of workers changes (TTIN/TTOU)."),
    Hook("on_exit", ("server",), "In the master, just before pronghorn exits."),
    Hook("ssl_context", ("config", "default_ssl_context_factory"), "In the master before each "
         "worker is forked, with TLS on: "
         "return the ssl.SSLContext to serve with; call default_ssl_context_factory() for the one "
         "the TLS settings make."),
)
HOOKS_BY_NAME: dict[str, Hook] = {h.name: h for h in HOOKS}


def _noop(*args: Any) -> None:
    """The default for every hook: does nothing."""


def check_hook(hook: Hook, func: Any) -> Callable:
    """Return func if it can be called with the hook's arguments, else raise ValueError."""
    if not callable(func):
        raise ValueError(f"{_show(func)} is not a function (expected def {hook.signature}: ...)")
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return func  # a builtin without a signature: trust it
    try:
        signature.bind(*hook.params)
    except TypeError:
        count = len(signature.parameters)
        plural = "" if count == 1 else "s"
        raise ValueError(
            f"takes {count} parameter{plural}, expected def {hook.signature}: ..."
        ) from None
    return func


# gunicorn settings pronghorn does not implement, and why: given on the command line or in a
# config file, they stop the start with this message rather than being silently ignored.
REFUSED: dict[str, tuple[tuple[str, ...], int, str]] = {
    # name: (flags, nargs, why)
}

# gunicorn settings accepted for compatibility that change nothing here: a value other than the
# default gets one warning line at start (never a silent ignore), saying why.
NO_EFFECT: dict[str, str] = {
    "logger_class": "pronghorn has its own logger (configure it with --log-config)",
    "permit_obsolete_folding": "folded header lines stay a 400 (request smuggling, RFC 9112 5.2)",
    "strip_header_spaces": "a space before a header's colon stays a 400 (request smuggling, RFC 9112 5.1)",
    "permit_unconventional_http_method": "any RFC 9110 token is already accepted as a method",
    "permit_unconventional_http_version": "only HTTP/1.0 and HTTP/1.1 are served",
    "casefold_http_method": "methods are case-sensitive (RFC 9110 9.1) and passed on as sent",
    "uwsgi_allow_ips": "pronghorn speaks HTTP only, there is no uwsgi protocol",
    "http_parser": "pronghorn has one HTTP parser",
    "tmp_upload_dir": "request bodies spool to the system temp dir ($TMPDIR)",
    "reload_engine": "--reload has one engine",
    "spew": "use `python -X importtime` or a debugger to trace",
}


def no_effect_warnings(cfg: Any) -> list[str]:
    """One line per NO_EFFECT setting given a non-default value, for the error log at start."""
    lines = []
    for name, why in NO_EFFECT.items():
        default = SETTINGS_BY_NAME[name].default_value()
        if getattr(cfg, name, default) != default:
            lines.append(f"{name} has no effect in pronghorn: {why}")
    return lines


# --------------------------------------------------------------------------------------------
# The Config object.
# --------------------------------------------------------------------------------------------


class Config:
    """All settings as plain attributes (cheap to read in the request path), plus every hook.

    Config(**overrides) gives the defaults with some settings changed (values are checked as a
    config file's would be); handy in tests of other parts. load_config() is what the command
    line uses.
    """

    def __init__(self, **overrides: Any) -> None:
        self.sources: dict[str, str] = {}
        self.config_file: str | None = None
        self.argv: list[str] | None = None
        for setting in SETTINGS:
            setattr(self, setting.name, setting.default_value())
            self.sources[setting.name] = "default"
        for hook in HOOKS:
            setattr(self, hook.name, _noop)
            self.sources[hook.name] = "default"
        for name, value in overrides.items():
            self.set(name, value, "code")

    def set(self, name: str, value: Any, source: str = "code") -> None:
        """Check and set one setting or hook; raises ConfigError naming the source."""
        if name == "app_uri":
            name = "wsgi_app"
        if name in HOOKS_BY_NAME:
            try:
                value = check_hook(HOOKS_BY_NAME[name], value)
            except ValueError as err:
                raise ConfigError(f"{source}: hook {name} {err}") from None
        elif name in SETTINGS_BY_NAME:
            setting = SETTINGS_BY_NAME[name]
            try:
                value = setting.validate(value)
            except ValueError as err:
                raise ConfigError(f"{source}: {name}: " + _expected(str(err), f"{name} = {setting.file_example}")) from None
        else:
            raise ConfigError(f"{source}: unknown setting {name!r}{_did_you_mean(name, _all_names())}")
        setattr(self, name, value)
        self.sources[name] = source

    # Read-only conveniences derived from settings.

    @property
    def app_uri(self) -> str | None:
        """The app as named: wsgi_app, or 'paste:FILE' for --paste (loader.py tells them apart)."""
        return self.wsgi_app or (f"paste:{self.paste}" if self.paste else None)

    @property
    def env(self) -> dict[str, str]:
        """raw_env as a dict."""
        return dict(item.split("=", 1) for item in self.raw_env)

    @property
    def access_log_json(self) -> bool:
        return self.access_log_format.strip().lower() == "json"

    def values(self) -> dict[str, Any]:
        """Every setting and hook by name."""
        names = [s.name for s in SETTINGS] + [h.name for h in HOOKS]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        return f"<Config app={self.wsgi_app!r} bind={self.bind!r} workers={self.workers}>"


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    """What a worker reads from the config, read once, checked and normalised: the worker and its
    connections use these plain attributes and never fall back on defaults of their own."""

    threads: int
    workers: int
    backlog: int
    keepalive: float
    header_timeout: float
    body_timeout: float
    send_timeout: float  # --send-timeout, else --body-timeout
    graceful_timeout: float
    worker_connections: int
    max_requests: int
    max_requests_jitter: int
    max_worker_memory: int  # bytes; 0 = no limit
    sendfile: bool
    limit_request_line: int
    limit_request_fields: int
    limit_request_field_size: int
    limit_request_body: int | None  # None = no limit
    proxy_protocol: str  # off / v1 / v2 / auto (who may send it: environ.proxy, from proxy_allow_ips)
    pre_request: Callable | None  # None when it is the no-op default (skipped on the hot path)
    post_request: Callable | None
    metrics: bool = False  # --metrics-bind is set: count every response (metrics.WorkerMetrics)
    request_timeout: float = 0.0  # publish the oldest request in progress for the master


def worker_settings(cfg: Any) -> WorkerSettings:
    """The WorkerSettings of a Config (or of any object with some settings as attributes, as
    tests and embedders pass): a missing or None value takes the setting's default from SETTINGS."""

    def get(name: str) -> Any:
        value = getattr(cfg, name, None)
        return SETTINGS_BY_NAME[name].default_value() if value is None else value

    def hook(name: str) -> Callable | None:
        fn = getattr(cfg, name, None)
        return None if fn is None or fn is _noop else fn

    body_timeout = float(get("body_timeout"))
    send_timeout = getattr(cfg, "send_timeout", None)
    return WorkerSettings(
        threads=max(1, int(get("threads"))), workers=max(1, int(get("workers"))),
        backlog=int(get("backlog")), keepalive=float(get("keepalive")),
        header_timeout=float(get("header_timeout")), body_timeout=body_timeout,
        send_timeout=body_timeout if send_timeout is None else float(send_timeout),
        graceful_timeout=float(get("graceful_timeout")),
        worker_connections=int(get("worker_connections")),
        max_requests=int(get("max_requests")), max_requests_jitter=int(get("max_requests_jitter")),
        max_worker_memory=int(get("max_worker_memory")) * 1024 * 1024,
        # Under TLS the bytes must go through OpenSSL: the kernel's sendfile would send plaintext.
        sendfile=get("sendfile") is not False and not getattr(cfg, "certfile", None),
        limit_request_line=int(get("limit_request_line")),
        limit_request_fields=int(get("limit_request_fields")),
        limit_request_field_size=int(get("limit_request_field_size")),
        limit_request_body=int(get("limit_request_body")) or None,
        proxy_protocol=proxy_protocol_mode(get("proxy_protocol")),
        pre_request=hook("pre_request"), post_request=hook("post_request"),
        metrics=bool(getattr(cfg, "metrics_bind", None)),
        request_timeout=float(getattr(cfg, "request_timeout", 0) or 0),
    )


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def _all_names() -> list[str]:
    return list(SETTINGS_BY_NAME) + list(HOOKS_BY_NAME)


def _expected(message: str, example: str) -> str:
    """Append '(expected e.g. ...)' unless the message already lists what is allowed."""
    return message if "(allowed:" in message else f"{message} (expected e.g. {example})"


def _did_you_mean(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------------------------
# The command line (and PRONGHORN_CMD_ARGS, parsed the same way).
# --------------------------------------------------------------------------------------------

USAGE = "pronghorn [OPTIONS] [MODULE:APP]"
DESCRIPTION = (
    "A fast, strict pre-fork WSGI server. Flags are named as gunicorn's.\n"
    "Example: pronghorn -w 4 -b 0.0.0.0:8000 myproject.wsgi:application"
)


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, but every error is a one-line ConfigError instead of usage text and exit."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(_reshape_argparse_error(message))


def _flag_setting(flag: str) -> Setting | None:
    for setting in SETTINGS:
        if flag in setting.flags:
            return setting
    return None


def _reshape_argparse_error(message: str) -> str:
    match = re.match(r"argument ([^:]+): expected one argument", message)
    if match:
        flags = match.group(1).split("/")
        setting = _flag_setting(flags[-1])
        if setting is not None:
            return f"{setting.flag}: needs a value (expected e.g. {setting.flag} {setting.example})"
        return f"{flags[-1]}: needs a value"
    match = re.match(r"argument ([^:]+): ignored explicit argument (.*)", message)
    if match:
        flag = match.group(1).split("/")[-1]
        return f"{flag}: takes no value (remove ={match.group(2).strip(chr(39))})"
    return message


def _all_flags() -> list[str]:
    flags = [f for s in SETTINGS for f in s.flags]
    flags += [f for flags_, _, _ in REFUSED.values() for f in flags_]
    return flags + ["-c", "--config", "-h", "--help", "-v", "--version"]


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="pronghorn", usage=USAGE, description=DESCRIPTION, add_help=False, allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("wsgi_app", nargs="?", default=argparse.SUPPRESS, metavar="MODULE:APP",
                        help="the WSGI app, e.g. myproject.wsgi:application or app:create_app()")
    general = parser.add_argument_group("general")
    general.add_argument("-c", "--config", dest="config", default=argparse.SUPPRESS, metavar="FILE",
                         help=f"Python config file, or python:module.name (default: ./{DEFAULT_CONFIG_FILE} if it exists)")
    general.add_argument("-h", "--help", dest="help", action="store_true", default=argparse.SUPPRESS,
                         help="show this help and exit")
    general.add_argument("-v", "--version", dest="version", action="store_true", default=argparse.SUPPRESS,
                         help="print the version and exit")
    groups: dict[str, Any] = {}
    for setting in SETTINGS:
        if not setting.flags:
            continue
        group = groups.get(setting.section) or parser.add_argument_group(setting.section.lower())
        groups[setting.section] = group
        kwargs: dict[str, Any] = {"dest": setting.name, "default": argparse.SUPPRESS,
                                  "help": _short_help(setting)}
        if setting.kind == "true":
            kwargs.update(action="store_const", const=True)
        elif setting.kind == "false":
            kwargs.update(action="store_const", const=False)
        elif setting.kind == "optional":  # a value may follow; alone the flag means True
            kwargs.update(action="store", nargs="?", const=True, metavar=setting.metavar or "VALUE")
        else:
            kwargs.update(action="append" if setting.kind == "append" else "store",
                          metavar=setting.metavar or "VALUE")
        group.add_argument(*setting.flags, **kwargs)
    refused = parser.add_argument_group("gunicorn flags pronghorn refuses")
    for name, (flags, nargs, _) in REFUSED.items():
        if nargs:
            refused.add_argument(*flags, dest="refused_" + name, default=argparse.SUPPRESS,
                                 help=argparse.SUPPRESS)
        else:
            refused.add_argument(*flags, dest="refused_" + name, action="store_const", const=True,
                                 default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _short_help(setting: Setting) -> str:
    first = re.split(r"\.\s+(?=[A-Z`$])", setting.help)[0].rstrip(".")
    default = setting.default
    if setting.kind in ("true", "false") or callable(default) or default in (None, [], ""):
        return first
    shown = ",".join(default) if isinstance(default, list) else default
    return f"{first} (default: {shown})".replace("%", "%%")


def parse_args(argv: list[str], source: str = "") -> dict[str, Any]:
    """Parse flags into {name: raw value}; refused and unknown flags raise ConfigError.

    source is a prefix for messages ("PRONGHORN_CMD_ARGS: ") when argv is not the command line.
    """
    parser = build_parser()
    try:
        namespace, extras = parser.parse_known_args(argv)
    except ConfigError as err:
        raise ConfigError(source + str(err)) from None
    if extras:
        raise ConfigError(source + _unknown_argument_message(extras[0]))
    raw = vars(namespace)
    for key in list(raw):
        if key.startswith("refused_"):
            name = key[len("refused_"):]
            flags, _, why = REFUSED[name]
            raise ConfigError(f"{source}{flags[-1]} {why}")
    return raw


def _unknown_argument_message(arg: str) -> str:
    if arg.startswith("-"):
        flag = arg.split("=", 1)[0]
        hint = _did_you_mean(flag, _all_flags()) or " (see pronghorn --help)"
        return f"{flag}: unknown flag{hint}"
    return f"unexpected argument {arg!r}: give the app once, e.g. pronghorn -w 4 myproject.wsgi:application"


# --------------------------------------------------------------------------------------------
# The config file.
# --------------------------------------------------------------------------------------------


def read_config_file(spec: str) -> tuple[str, dict[str, Any]]:
    """Run a config file (or import python:module.name); return (label, its settings by name).

    Private helpers are skipped: names starting with '_', ALL_CAPS constants, imported modules,
    classes and functions imported from elsewhere. Any other name must be a setting or a hook.
    """
    if spec.startswith("python:"):
        module_name = spec[len("python:"):]
        # A console script's sys.path starts at its bin/ directory; the module is looked for
        # in the working directory too, as gunicorn puts it on sys.path before this.
        added = os.getcwd() not in sys.path
        if added:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except Exception as err:
            raise ConfigError(f"-c {spec}: cannot import config module {module_name!r}: {_exc_line(err)}") from None
        finally:
            if added and os.getcwd() in sys.path:
                sys.path.remove(os.getcwd())
        return spec, _config_names(vars(module), module.__name__)
    path = label = spec
    try:
        with open(path, "rb") as handle:
            source = handle.read()
    except FileNotFoundError:
        raise ConfigError(f"-c: config file {spec!r} not found (looked in {os.path.abspath(path)})") from None
    except OSError as err:
        raise ConfigError(f"-c: cannot read config file {spec!r}: {err.strerror}") from None
    namespace: dict[str, Any] = {"__file__": os.path.abspath(path), "__name__": "__config__"}
    try:
        code = compile(source, path, "exec")
        exec(code, namespace)
    except SyntaxError as err:
        raise ConfigError(f"{label}: line {err.lineno}: syntax error: {err.msg}") from None
    except Exception as err:
        raise ConfigError(f"{label}: line {_file_line(err, path)}: {_exc_line(err)}") from None
    return label, _config_names(namespace, "__config__")


def _config_names(namespace: dict[str, Any], module_name: str) -> dict[str, Any]:
    found = {}
    for name, value in namespace.items():
        if name.startswith("_") or name.isupper():
            continue
        if isinstance(value, (types.ModuleType, type)):
            continue
        if callable(value) and getattr(value, "__module__", module_name) != module_name \
                and name not in HOOKS_BY_NAME:
            continue  # e.g. `from multiprocessing import cpu_count`
        found[name] = value
    return found


def _exc_line(err: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(err), err)).strip().splitlines()[-1]


def _file_line(err: BaseException, path: str) -> str:
    line = "?"
    for frame in traceback.extract_tb(err.__traceback__):
        if frame.filename == path:
            line = str(frame.lineno)
    return line


# --------------------------------------------------------------------------------------------
# load_config: everything together.
# --------------------------------------------------------------------------------------------


def load_config(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Build the Config from argv (without the program name) and the environment.

    Raises ConfigError (one line) for anything wrong, InfoRequested for --help / --version.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    environ = os.environ if environ is None else environ

    cli = parse_args(argv)
    if cli.get("help"):
        raise InfoRequested(build_parser().format_help().rstrip())
    if cli.get("version"):
        raise InfoRequested(f"pronghorn {__version__}")
    env_argv = _split_env_args(environ.get(ENV_ARGS, ""))
    env_args = parse_args(env_argv, f"{ENV_ARGS}: ")
    for key in ("help", "version"):
        env_args.pop(key, None)

    cfg = Config()
    cfg.argv = argv  # the arbiter re-reads the same command line on HUP
    _apply_environment_defaults(cfg, environ)

    config_spec = cli.pop("config", None) or env_args.pop("config", None)
    env_args.pop("config", None)
    if config_spec is None:
        # Looked up in --chdir when given (as gunicorn, which changes directory first).
        base = cli.get("chdir") or env_args.get("chdir")
        candidate = os.path.join(base, DEFAULT_CONFIG_FILE) if base else DEFAULT_CONFIG_FILE
        if os.path.isfile(candidate):
            _apply_file(cfg, candidate)
    else:
        chdir = cli.get("chdir") or env_args.get("chdir")
        if chdir and not os.path.isabs(config_spec) and not config_spec.startswith("python:") \
                and not os.path.exists(config_spec):
            # gunicorn changes directory before reading -c, so a relative file may live there.
            config_spec = os.path.join(chdir, config_spec)
        _apply_file(cfg, config_spec)

    _apply_flags(cfg, env_args, f"{ENV_ARGS}: ")
    _apply_flags(cfg, cli, "")

    if bool(cfg.certfile) != bool(cfg.keyfile):
        given, missing = ("--certfile", "--keyfile") if cfg.certfile else ("--keyfile", "--certfile")
        raise ConfigError(f"{given} needs {missing} too (the certificate and its private key), "
                          "e.g. --certfile cert.pem --keyfile key.pem")
    if cfg.wsgi_app is None and cfg.paste is None and not (cfg.check_config or cfg.print_config):
        raise ConfigError(
            "no application given: name the WSGI app, e.g. pronghorn myproject.wsgi:application "
            "(or set wsgi_app in the config file)"
        )
    return cfg


def _split_env_args(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as err:
        raise ConfigError(f"{ENV_ARGS}: cannot split {text!r}: {err}") from None


def _apply_environment_defaults(cfg: Config, environ: Mapping[str, str]) -> None:
    for setting in SETTINGS:
        if setting.env is None or not environ.get(setting.env, "").strip():
            continue
        text = environ[setting.env].strip()
        value = setting.env_to_value(text) if setting.env_to_value else text
        try:
            setattr(cfg, setting.name, setting.validate(value))
        except ValueError as err:
            raise ConfigError(f"{setting.env}: " + _expected(str(err), f"{setting.env}={setting.example}")) from None
        cfg.sources[setting.name] = f"environment {setting.env}"


def _apply_file(cfg: Config, spec: str) -> None:
    label, names = read_config_file(spec)
    cfg.config_file = spec
    for name, value in names.items():
        if name in REFUSED:
            raise ConfigError(f"{label}: {name} {REFUSED[name][2]}")
        cfg.set(name, value, label)


def _apply_flags(cfg: Config, raw: dict[str, Any], source: str) -> None:
    for name, value in raw.items():
        setting = SETTINGS_BY_NAME[name]
        if setting.kind == "append":
            # Each occurrence is checked on its own so a bad one is named exactly.
            items: list[Any] = []
            for item in value:
                items.extend(_check_flag(setting, item, source))
            value = items
        else:
            value = _check_flag(setting, value, source)
        setattr(cfg, name, value)
        cfg.sources[name] = "command line" if not source else source.rstrip(": ")


def _check_flag(setting: Setting, value: Any, source: str) -> Any:
    try:
        return setting.validate(value)
    except ValueError as err:
        if setting.name == "wsgi_app":
            raise ConfigError(f"{source}{err}") from None
        raise ConfigError(f"{source}{setting.flag}: " + _expected(str(err), f"{setting.flag} {setting.example}")) from None


# --------------------------------------------------------------------------------------------
# Output: --print-config and the reference document.
# --------------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    if callable(value):
        if value is _noop:
            return "(no-op)"
        return f"<function {getattr(value, '__qualname__', repr(value))}>"
    return repr(value)


def print_config_lines(cfg: Config) -> list[str]:
    """Every setting and hook as 'name = value', sorted by name."""
    values = cfg.values()
    lines = []
    for name in sorted(values):
        shown = oct(values[name]) if name == "umask" and values[name] is not None else format_value(values[name])
        lines.append(f"{name} = {shown}")
    return lines


def reference_markdown() -> str:
    """docs/server-reference.md, generated from SETTINGS and HOOKS."""
    out = [
        "# pronghorn server reference",
        "",
        "<!-- Generated from server/pronghorn/config.py: "
        "`python -m pronghorn.config > docs/server-reference.md`. Do not edit by hand. -->",
        "",
        "Usage: `" + USAGE + "`. Flags and config-file names are gunicorn's, so a gunicorn",
        "command line or `gunicorn.conf.py` works with `gunicorn` replaced by `pronghorn`.",
        "",
        "## Where settings come from",
        "",
        "Strongest first (the same order as gunicorn):",
        "",
        "1. the command line;",
        f"2. `{ENV_ARGS}`: extra flags from the environment, split as a shell would "
        "(like `GUNICORN_CMD_ARGS`);",
        f"3. the config file: `-c FILE` (a Python file), `-c python:module.name`, or "
        f"`./{DEFAULT_CONFIG_FILE}` (in `--chdir` when given) when `-c` is not given;",
        "4. environment defaults: `WEB_CONCURRENCY` (workers), `FORWARDED_ALLOW_IPS`, "
        "`PORT` (bind `0.0.0.0:$PORT`);",
        "5. the built-in default.",
        "",
        "In a config file every module-level name must be a setting or a hook below; a misspelt "
        "name stops the start (`unknown setting 'worker' (did you mean 'workers'?)`). Helpers are "
        "allowed when their name starts with `_` or is ALL_CAPS, and imported modules, classes and "
        "functions are skipped.",
        "",
        "A bad flag or value prints one line and exits with status 2 (1 with `--check-config`), e.g.",
        "`pronghorn: error: --workers: 'abc' is not a whole number (expected e.g. --workers 4)`.",
        "",
        "## Settings",
        "",
    ]
    section = None
    for setting in SETTINGS:
        if setting.section != section:
            section = setting.section
            out += ([] if out[-1] == "" else [""]) + [f"### {section}", ""]
        flags = ", ".join(f"`{f}`" for f in setting.flags) or "(config file only)"
        default = setting.default
        if callable(default):
            shown = "the current " + setting.name
        else:
            shown = ",".join(default) if isinstance(default, list) and default else repr(default)
        out.append(f"- **`{setting.name}`** — {flags}; default `{shown}`"
                   + (f"; environment `{setting.env}`" if setting.env else "")
                   + ("; repeatable" if setting.kind == "append" else ""))
        out.append(f"  {setting.help}")
    out += ["", "Other flags: `-c/--config FILE`, `-h/--help`, `-v/--version`.", ""]
    if REFUSED:
        out += ["## gunicorn settings pronghorn refuses", "",
                "These stop the start with a one-line message rather than being silently ignored:", ""]
        for name, (flags, _, why) in REFUSED.items():
            out.append(f"- `{name}` ({', '.join(flags)}): {why}.")
    out += ["", "## gunicorn settings accepted without effect", "",
            "Each is accepted so a gunicorn command line starts; a value other than the default "
            "logs one warning line at start saying why it changes nothing here:", ""]
    for name, why in NO_EFFECT.items():
        out.append(f"- `{name}`: {why}.")
    out += ["", "`-k/--worker-class` accepts `sync` and `gthread` (both are pronghorn's worker; "
            "`--threads N` gives gthread's thread pool) and refuses every other class.", "",
            "## Server hooks", "",
            "Define a function of this name in the config file to replace the default no-op. The "
            "number of parameters is checked when the file is loaded.", ""]
    for hook in HOOKS:
        out.append(f"- `{hook.signature}` — {hook.help}")
    out += ["", "## Environment variables", "",
            f"- `{ENV_ARGS}`: extra command-line flags.",
            "- `WEB_CONCURRENCY`: default for `--workers`.",
            "- `FORWARDED_ALLOW_IPS`: default for `--forwarded-allow-ips`.",
            "- `PORT`: default `--bind 0.0.0.0:$PORT`.",
            "- `PRONGHORN_CONTROL_SOCKET`: default for `pronghorn ctl --socket` (the client of "
            "`--control-socket`; `pronghorn ctl help` lists its commands).", ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(reference_markdown())
