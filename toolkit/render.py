"""Render templates/ for one app (and host) into the files the host must have.

Templates mirror their target paths: ``templates/etc/systemd/system/APP.service.j2`` becomes
``/etc/systemd/system/NAME.service`` (``APP`` in a path is the app's name, ``.j2`` is dropped).
Jinja2 runs with StrictUndefined, so a template naming a setting that does not exist fails
loudly here, on the deploy machine, instead of writing an empty value on the host.

``render_all`` returns the files (path, content, mode, owner, group) for the roles to put on the
host; ``render_to_dir`` writes them under a local directory for review (the ``render`` task),
with secret values masked.

Which files an app gets depends on its config (see ``_wanted``): the logrotate file only when
pronghorn writes its access log to a file (otherwise everything goes to journald, and nginx's
own logs are rotated by the nginx package's logrotate file); the catch-all nginx server only
when the app has real domains; proxy files only with a [proxy].
"""

from __future__ import annotations

import os
import secrets as secrets_module
import string
from dataclasses import dataclass
from pathlib import Path

import jinja2

from toolkit.config import AppConfig, ConfigError
from toolkit import process_units, redis_service
from toolkit.onhost import envfile

__all__ = ["RenderedFile", "TEMPLATE_DIR", "render_all", "render_to_dir", "resolve_secrets",
           "base_env", "read_env_file", "EXTRA_CA_PATH", "proxy_files"]

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"

# Where the extra CA of [proxy] ca_bundle goes; `update-ca-certificates` adds it to the store.
EXTRA_CA_PATH = "/usr/local/share/ca-certificates/pronghorn-extra-ca.crt"

# Alphabet of generated secrets: no quotes, no $, no backslash, so the value reads the same in
# systemd's EnvironmentFile and in sh.
SECRET_ALPHABET = string.ascii_letters + string.digits + "-_!@#%^&*(=+)"
SECRET_LENGTH = 50
MASK = "********"


@dataclass(frozen=True)
class RenderedFile:
    path: str       # absolute target path on the host
    content: str
    mode: int
    owner: str
    group: str


def _ownership(target: str, cfg: AppConfig) -> tuple[int, str, str]:
    """(mode, owner, group) of a target file."""
    if target == cfg.layout.env_file:
        return 0o600, cfg.name, cfg.name            # secrets: the app user only
    if target == cfg.layout.pronghorn_conf:
        return 0o640, "root", cfg.name              # the app reads its config but cannot change it
    if target == redis_service.CONF:
        return 0o640, "root", "redis"               # the password: redis reads it, the app does not
    return 0o644, "root", "root"


# [hosts]: what a host gets by its roles (toolkit/fleet.py host_vars gives `roles`). A load balancer
# gets its site, the 503 pages (unavailable, maintenance) and the catch-all; the app's own files
# go to app and worker hosts.
LB_TEMPLATE = "etc/nginx/sites-available/APP-lb.conf.j2"
EDGE_TEMPLATES = (LB_TEMPLATE, "etc/nginx/pronghorn/APP.unavailable.html.j2",
                  "etc/nginx/pronghorn/APP.maintenance.html.j2",  # maintenance.on: the lb's page
                  "etc/nginx/sites-available/pronghorn-default.conf.j2")


def _wanted(template: str, cfg: AppConfig, host: dict | None = None) -> bool:
    """Whether this app gets the file rendered from ``template`` (a path relative to templates/)
    on a host with `host` ["roles"] (deploy.toml [hosts]; without them: the single-host case)."""
    roles = (host or {}).get("roles")
    if template == LB_TEMPLATE:
        return roles is not None and "lb" in roles
    if roles is not None and template not in PROXY_TEMPLATES and not {"app", "worker"} & set(roles):
        return template in EDGE_TEMPLATES and "lb" in roles and _wanted(template, cfg)
    if template == "etc/logrotate.d/APP.j2":
        return cfg.access_log == "file"
    if template == "etc/nginx/sites-available/pronghorn-default.conf.j2":
        # not on a worker host that is no app host: its nginx listens on loopback only, and the
        # catch-all would listen on every address
        return not cfg.any_domain and not (roles is not None and not {"app", "lb"} & set(roles))
    if template in redis_service.TEMPLATES:
        return cfg.redis
    if template in PROXY_TEMPLATES:
        return cfg.proxy.enabled or (template == "etc/pip.conf.j2" and bool(cfg.proxy.ca_bundle))
    if template in BACKUP_TEMPLATES:
        return cfg.database.backups
    return True


def _target_path(template: str, cfg: AppConfig) -> str:
    """templates/etc/systemd/system/APP.service.j2 -> /etc/systemd/system/NAME.service"""
    parts = []
    for part in template[:-len(".j2")].split("/"):
        if part == "APP" or part.startswith(("APP.", "APP-")):  # APP-backup.timer too
            part = cfg.name + part[len("APP"):]
        parts.append(part)
    return "/" + "/".join(parts)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["py"] = repr            # a Python literal, for pronghorn.conf.py
    env.filters["envquote"] = envfile.quote
    env.filters["redis_password"] = redis_service.password_of
    return env


# --------------------------------------------------------------------------- environment + secrets

def read_env_file(path: str | Path) -> dict[str, str]:
    """KEY=VALUE lines of a local .env file (comments, blank lines, quotes and `export ` allowed)."""
    return envfile.read(path)


# Always allowed with domains = ["_"]: the health check asks nginx on the host as "localhost".
LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")


def allowed_hosts(cfg: AppConfig, host_names: tuple[str, ...] | None = None) -> str:
    """ALLOWED_HOSTS for the app's environment: the names nginx lets through. With domains =
    ["_"] (any name) that is the host's own names and addresses (the HostNames fact,
    toolkit/facts/names.py) and localhost, never "*": a forged Host header would otherwise
    reach the app and poison the links it builds (password resets). `host_names` None: the
    host's names were not read (a local render for review): localhost only."""
    if not cfg.any_domain:
        return ",".join("." + d[2:] if d.startswith("*.") else d for d in cfg.domains)
    return ",".join(dict.fromkeys(tuple(host_names or ()) + LOCAL_NAMES))


def base_env(cfg: AppConfig, host_names: tuple[str, ...] | None = None) -> dict[str, str]:
    """The non-secret environment: the toolkit's variables, then deploy.toml [env] (which wins)."""
    env = {
        "APP_NAME": cfg.name,
        "APP_DATA_DIR": cfg.layout.data_dir,
        "APP_MEDIA_DIR": cfg.layout.media_dir,
        # A hint for frameworks with a host allow-list (Django): the names nginx lets through.
        "ALLOWED_HOSTS": allowed_hosts(cfg, host_names),
        "PYTHONUNBUFFERED": "1",
    }
    if cfg.django:
        env["DJANGO_SETTINGS_MODULE"] = cfg.django.settings
    env.update(cfg.env)
    return env


def resolve_secrets(cfg: AppConfig, host_env: dict[str, str] | None = None,
                    environ: dict[str, str] | None = None) -> dict[str, str]:
    """The value of every [app] secrets name, or ConfigError naming each missing one.

    Looked up in order: the deploy machine's environment, the app's local .env file, the value
    already on the host (``host_env``: its shared/.env), and for [app] generate_secrets a new
    random value. A name set on the host with `invoke env.set` (``host_env.local_names``: in
    shared/.env.local, which wins over .env where the app reads it) needs no value here: it is
    left out of the result, so .env does not get a copy that would outlive an `env.unset`.
    """
    environ = os.environ if environ is None else environ
    local = read_env_file(cfg.app_dir / ".env")
    set_on_host = getattr(host_env, "local_names", frozenset())  # (an empty HostEnv is falsy)
    host_env = host_env or {}
    values, missing = {}, []
    for name in cfg.secrets:
        for source in (environ, local, host_env):
            if source.get(name):
                values[name] = source[name]
                break
        else:
            if name in set_on_host:
                continue
            if name in cfg.generate_secrets:
                values[name] = "".join(secrets_module.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
            else:
                missing.append(name)
    if missing:
        names = ", ".join(missing)
        example = missing[0]
        raise ConfigError(
            f"secret {names} has no value (deploy.toml [app] secrets). Give it one: "
            f"`export {example}=...` before running invoke, or a line {example}=... in "
            f"{cfg.app_dir / '.env'} (never commit that file); or set it on the host with "
            f"`invoke env.set --name {example}`; or add it to [app] generate_secrets "
            f"to have a random value made once on the host")
    for name, value in values.items():
        if "\n" in value or "\0" in value:
            raise ConfigError(f"secret {name}: the value must be one line")
    return values


# --------------------------------------------------------------------------- rendering

def render_all(cfg: AppConfig, host: dict | None = None, mask_secrets: bool = False) -> list[RenderedFile]:
    """Every file the host needs for this app, rendered.

    ``host`` (optional) carries facts read from the host: ``env`` = the values in its current
    shared/.env (so generated secrets are kept across deploys); ``names`` = the names and
    addresses it answers to (the HostNames fact, plus the address the deploy connected to),
    for ALLOWED_HOSTS.
    """
    host = host or {}
    if mask_secrets:
        secret_values = {name: MASK for name in cfg.secrets}
    else:
        secret_values = resolve_secrets(cfg, host_env=host.get("env"))
    secret_values.update(redis_service.secrets(cfg, host.get("env"), MASK if mask_secrets else None))
    secret_values.update(database_secrets(cfg, host.get("env"), mask_secrets, host.get("database_url")))
    context = {
        "app": cfg,
        "layout": cfg.layout,
        "host": host,
        "env": base_env(cfg, _names(host)),
        "secrets": secret_values,
        "upstream": cfg.name.replace("-", "_") + "_pronghorn",
        "unavailable_page": unavailable_page(cfg),
    }
    jinja = _environment()
    files = []
    for template in sorted(_template_names()):
        if not _wanted(template, cfg, host):
            continue
        # APP-PROCESS/APP-SCHEDULE templates: once per [processes]/[schedule] entry, with `unit`.
        each = process_units.instances(template, cfg)
        for target, unit in each if each is not None else [(_target_path(template, cfg), None)]:
            try:
                content = jinja.get_template(template).render(context, unit=unit)
            except jinja2.UndefinedError as exc:
                raise ConfigError(f"templates/{template}: {exc} (a template names a setting that does not "
                                  f"exist; this is a bug in the template)") from None
            mode, owner, group = _ownership(target, cfg)
            files.append(RenderedFile(target, content, mode, owner, group))
    files.extend(_extra_ca(cfg))
    return files


def _names(host: dict):
    """The names requests reach this host's app by: its own, and behind a load balancer the
    load balancers' (the Host a client sends is the balancer's name or address)."""
    names = host.get("names")
    if host.get("lb_names"):
        names = tuple(dict.fromkeys(tuple(names or ()) + tuple(host["lb_names"])))
    return names


# [database] (roles/postgres.py): the daily backup's units, and DATABASE_URL's password, made of
# characters that need no escaping in a URL.
BACKUP_TEMPLATES = ("etc/systemd/system/APP-backup.service.j2", "etc/systemd/system/APP-backup.timer.j2")
DB_PASSWORD_ALPHABET = string.ascii_letters + string.digits
DB_PASSWORD_LENGTH = 40


def database_url(cfg: AppConfig, password: str) -> str:
    """The app's PostgreSQL on this host: its role and database are its name, over TCP to
    localhost (the server listens there only)."""
    name = cfg.layout.db_name
    return f"postgresql://{name}:{password}@localhost:5432/{name}"


def database_secrets(cfg: AppConfig, host_env: dict | None, mask: bool, given: str | None = None) -> dict[str, str]:
    """DATABASE_URL with engine = "postgresql": the one already in the host's .env (the password
    is generated once and kept), else a new one. roles/postgres.py sets the role's password from
    it; it is never printed (masked in a render for review). `given`: on an app host of
    deploy.toml [hosts], the database host's URL (toolkit/db_host.py: its password is kept there)."""
    if not cfg.database.postgresql:
        return {}
    if mask:
        return {"DATABASE_URL": MASK}
    if given:
        return {"DATABASE_URL": given}
    kept = (host_env or {}).get("DATABASE_URL", "")
    if kept.startswith(database_url(cfg, "")[:len("postgresql://") + len(cfg.layout.db_name) + 1]):
        return {"DATABASE_URL": kept}
    password = "".join(secrets_module.choice(DB_PASSWORD_ALPHABET) for _ in range(DB_PASSWORD_LENGTH))
    return {"DATABASE_URL": database_url(cfg, password)}


def unavailable_page(cfg: AppConfig) -> str:
    """Where the 503 page nginx shows while the app does not answer goes (rendered from
    templates/etc/nginx/pronghorn/APP.unavailable.html.j2; under /etc/nginx, so the nginx role
    installs it with the site and nginx -t sees it, and the app cannot change it)."""
    return f"/etc/nginx/pronghorn/{cfg.name}.unavailable.html"


PROXY_TEMPLATES = ("etc/apt/apt.conf.d/80pronghorn-proxy.j2", "etc/pip.conf.j2")


def proxy_files(http: str, https: str = "") -> dict[str, str]:
    """apt's and pip's proxy files (target path -> content) for a proxy URL, from the same
    templates a deploy with [proxy] renders: sandbox hosts get theirs from here, so a deploy
    with the same [proxy] to a sandbox finds them already as wanted."""
    from types import SimpleNamespace

    context = {"app": SimpleNamespace(proxy=SimpleNamespace(http=http, https=https))}
    jinja = _environment()
    return {"/" + template[:-len(".j2")]: jinja.get_template(template).render(context)
            for template in PROXY_TEMPLATES}


def _template_names() -> list[str]:
    return [str(p.relative_to(TEMPLATE_DIR)) for p in TEMPLATE_DIR.rglob("*.j2")]


def _extra_ca(cfg: AppConfig) -> list[RenderedFile]:
    """The [proxy] ca_bundle file of the deploy machine, to be trusted on the host too."""
    if not cfg.proxy.ca_bundle:
        return []
    path = Path(cfg.proxy.ca_bundle)
    try:
        content = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"[proxy] ca_bundle = \"{path}\": cannot read it ({exc}); give the path of a "
                          f"PEM certificate file on this machine") from None
    if "-----BEGIN CERTIFICATE-----" not in content:
        raise ConfigError(f"[proxy] ca_bundle = \"{path}\": not a PEM certificate file "
                          f"(no BEGIN CERTIFICATE line)")
    return [RenderedFile(EXTRA_CA_PATH, content, 0o644, "root", "root")]


def render_to_dir(cfg: AppConfig, out_dir: str | Path, host: dict | None = None,
                  mask_secrets: bool = True) -> list[Path]:
    """Write the rendered files under OUT_DIR (OUT_DIR/etc/..., OUT_DIR/srv/...) for review.

    Secret values are masked unless ``mask_secrets=False``. Returns the written paths.
    """
    out_dir = Path(out_dir)
    written = []
    for rendered in render_all(cfg, host, mask_secrets=mask_secrets):
        path = out_dir / rendered.path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered.content, encoding="utf-8")
        os.chmod(path, rendered.mode)
        written.append(path)
    return written
