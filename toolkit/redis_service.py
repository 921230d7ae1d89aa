"""[services] redis = true: Debian's/Ubuntu's redis-server on the app host, bound to localhost,
with a password generated once and kept (the app gets it as REDIS_URL in shared/.env).

The password lives in one file only, /etc/redis/pronghorn.conf (root:redis 0640: redis reads
it, the app does not), which includes the package's redis.conf and adds `requirepass`, `bind`
and `protected-mode`; a systemd drop-in for redis-server.service starts redis with that file
instead of redis.conf, so the password is never on a command line. roles/redis.py installs both.
REDIS_URL is kept from the host's .env across deploys, as generated secrets are (render.py).
"""

from __future__ import annotations

import secrets as secrets_module

PACKAGE = "redis-server"
UNIT = "redis-server.service"
CONF = "/etc/redis/pronghorn.conf"
DROPIN = "/etc/systemd/system/redis-server.service.d/pronghorn.conf"
TEMPLATES = ("etc/redis/pronghorn.conf.j2", "etc/systemd/system/redis-server.service.d/pronghorn.conf.j2")
# The user is named: redis-cli sends AUTH "" PASSWORD for `redis://:PASSWORD@`, which redis refuses
# ("default" is requirepass's user for redis >= 6; redis-py and Celery accept either form).
URL_PREFIX = "redis://default:"
URL_SUFFIX = "@127.0.0.1:6379/0"


def enabled(cfg) -> bool:
    return bool(getattr(cfg, "redis", False))


def packages(cfg) -> tuple[str, ...]:
    return (PACKAGE,) if enabled(cfg) else ()


def paths(cfg) -> list[str]:
    return [CONF, DROPIN] if enabled(cfg) else []


def redis_url(password: str) -> str:
    return f"{URL_PREFIX}{password}{URL_SUFFIX}"


def password_of(url: str) -> str:
    """The password in a REDIS_URL made by redis_url (a masked value stays masked)."""
    if url.startswith(URL_PREFIX) and url.endswith(URL_SUFFIX):
        return url[len(URL_PREFIX):-len(URL_SUFFIX)]
    return url


def secrets(cfg, host_env: dict | None, mask: str | None) -> dict[str, str]:
    """{"REDIS_URL": ...} with redis on: the host's (kept), else a new password (hex: nothing to
    escape in a URL or in redis.conf). `mask`: the value shown instead, for a render for review."""
    if not enabled(cfg):
        return {}
    if mask:
        return {"REDIS_URL": mask}
    kept = (host_env or {}).get("REDIS_URL", "")
    if kept.startswith(URL_PREFIX) and kept.endswith(URL_SUFFIX) and len(password_of(kept)) >= 32:
        return {"REDIS_URL": kept}
    return {"REDIS_URL": redis_url(secrets_module.token_hex(24))}
