"""Setting validators: each takes a raw value (a str from the command line or the environment,
or any Python object from a config file) and returns it converted, or raises ValueError with a
short description of what was wrong ("'abc' is not a whole number").

settings.py names one per setting; config.py adds where the value came from and a good example
to the message. Nothing here reads the process's state beyond what a value names (a user, a
group, a directory, a file).
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import re
from typing import Any, Callable


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
