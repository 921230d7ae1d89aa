"""gunicorn's logging outlets beyond pronghorn's own files, for logs.py: `--log-config` (ini,
logging.config.fileConfig), `--log-config-json` and `logconfig_dict` (dictConfig), applied to the
stdlib loggers `gunicorn.error` and `gunicorn.access` so a gunicorn logging file works
unchanged; and the syslog address form of `--log-syslog-to`.
"""

from __future__ import annotations

import json
import logging
import logging.config
import socket
from typing import Any


def parse_syslog_address(text: str) -> tuple[Any, int]:
    """gunicorn's syslog address: udp://HOST:PORT, tcp://HOST:PORT, unix://PATH[#dgram|#stream]
    -> (address for SysLogHandler, socket type). Raises ValueError saying what was wrong."""
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("udp", "tcp", "unix") or not rest:
        raise ValueError(f"'{text}' is not udp://HOST:PORT, tcp://HOST:PORT or unix://PATH")
    if scheme == "unix":
        path, _, kind = rest.partition("#")
        if kind not in ("", "stream", "dgram"):
            raise ValueError(f"'{text}': #{kind} is not #stream or #dgram")
        return path, socket.SOCK_DGRAM if kind == "dgram" else socket.SOCK_STREAM
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        host, port = rest, "514"
    return (host.strip("[]"), int(port)), socket.SOCK_DGRAM if scheme == "udp" else socket.SOCK_STREAM


def apply_logging_config(cfg: Any) -> bool:
    """Apply --log-config / --log-config-json / logconfig_dict (the first given); True if one was.

    Existing loggers are kept (disable_existing_loggers=False): the app's loggers set up before
    a reload must not go quiet.
    """
    try:
        return _apply_logging_config_unchecked(cfg)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError, RuntimeError) as exc:
        which = ("logconfig_dict" if getattr(cfg, "logconfig_dict", None) else
                 f"--log-config-json {cfg.logconfig_json}" if getattr(cfg, "logconfig_json", None)
                 else f"--log-config {cfg.logconfig}")
        raise LogConfigError(f"{which}: cannot apply the logging config: {type(exc).__name__}: {exc}") from None


class LogConfigError(ValueError):
    """The logging config could not be applied; str(err) is one line naming the setting."""


def _apply_logging_config_unchecked(cfg: Any) -> bool:
    if not (getattr(cfg, "logconfig_dict", None) or getattr(cfg, "logconfig_json", None)
            or getattr(cfg, "logconfig", None)):
        return False
    # As gunicorn: the server's loggers do not propagate unless the config says so, so a root
    # handler does not get every access line twice.
    for name in ("gunicorn.error", "gunicorn.access"):
        logging.getLogger(name).propagate = False
    if getattr(cfg, "logconfig", None) and not (getattr(cfg, "logconfig_dict", None)
                                                 or getattr(cfg, "logconfig_json", None)):
        logging.config.fileConfig(cfg.logconfig, disable_existing_loggers=False)
        return True
    if getattr(cfg, "logconfig_dict", None):
        config = dict(cfg.logconfig_dict)
    else:
        with open(cfg.logconfig_json, encoding="utf-8") as handle:
            config = json.load(handle)
    config.setdefault("disable_existing_loggers", False)
    logging.config.dictConfig(config)
    return True
