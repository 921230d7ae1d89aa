"""The app's deploy config file, ``deploy.toml``: schema, defaults, validation.

Everything the toolkit knows about an app comes from ``APP_DIR/deploy.toml`` (plus what
``detect.py`` finds in the app's code). The file is read and checked completely *before* any
host is touched, so a typo stops the run with a message naming the file, the key, the bad value
and what is allowed.

Strategy: the schema is a flat list of ``Key`` declarations, one per key (section, name, check,
default, help, example) in ``config_schema.py``; the checks live in ``config_checks.py``. The same list drives
validation and the reference document ``docs/deploy-config.md`` (``python -m toolkit.config
--doc``), so the two cannot drift apart. Validated values become a frozen dataclass tree,
``AppConfig``; every path on the host comes from its ``layout`` (toolkit/layout.py).
"""

from __future__ import annotations

import ipaddress
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit import detect, lockfiles
from toolkit.config_checks import RESERVED_NAMES, Invalid
from toolkit.config_schema import KEYS as _KEYS, SCHEMA, SECTIONS, TABLE_SECTIONS, Key
from toolkit.errors import ConfigError
from toolkit.inventory import Inventory, check_roles
from toolkit.layout import HostLayout
from toolkit.names import NAME_RE, did_you_mean

CONFIG_FILE = "deploy.toml"

__all__ = [
    "CONFIG_FILE", "ConfigError", "AppConfig", "Source", "Health", "DjangoConfig", "ProxyConfig", "Hardening",
    "TlsConfig",
    "SCHEMA", "load_app_config", "slugify", "reference_markdown",
    "DatabaseConfig",
]


# --------------------------------------------------------------------------- the result

@dataclass(frozen=True)
class Source:
    path: Path              # the local app directory (always set: deploy.toml lives there)
    git: str = ""           # when set, releases are cloned from here instead of uploaded
    ref: str = "main"
    include: tuple[str, ...] = ()  # secret-like paths uploaded anyway (toolkit/ignore.py)


@dataclass(frozen=True)
class Health:
    path: str = "/"
    expect: int = 200
    timeout: int = 30


@dataclass(frozen=True)
class DjangoConfig:
    settings: str = ""
    migrate: bool = True
    collectstatic: bool = True


@dataclass(frozen=True)
class ProxyConfig:
    http: str = ""
    https: str = ""
    no_proxy: tuple[str, ...] = ()
    ca_bundle: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.http or self.https)


@dataclass(frozen=True)
class Hardening:
    """deploy.toml [hardening]: which parts of roles/hardening run (all by default)."""
    firewall: bool = True
    firewall_allow: tuple[str, ...] = ()
    ssh: bool = True
    unattended_upgrades: bool = True
    fail2ban: bool = True
    swap: bool = True
    time_sync: bool = True
    block_link_local: bool = True

    @property
    def app_address_allow(self) -> tuple[str, ...]:
        """IPAddressAllow= of the app's unit: every address except the link-local ranges, where
        cloud metadata services answer (169.254.169.254: an SSRF there leaks the instance's
        credentials). systemd has no "deny these" list that counts as an allow list, so the
        complement is spelled out."""
        def every_but(everything, hole):
            return [str(n) for n in sorted(ipaddress.ip_network(everything).address_exclude(
                ipaddress.ip_network(hole)))]
        return tuple(every_but("0.0.0.0/0", "169.254.0.0/16") + every_but("::/0", "fe80::/10"))


@dataclass(frozen=True)
class TlsConfig:
    """deploy.toml [tls]: how the site gets its certificate (roles/tls.py) and its HSTS header.
    `cert`/`key` (mode "files") are resolved paths on the deploy machine."""
    mode: str = "off"
    email: str = ""
    acme_directory: str = ""
    cert: str = ""
    key: str = ""
    hsts: int = 0
    hsts_preload: bool = False
    # An app host of deploy.toml [hosts] behind load balancers that serve the site over https
    # (mode "off" here: the load balancers hold the certificate; toolkit/fleet.py host_config).
    behind_lb: bool = False

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @property
    def hsts_header(self) -> str:
        """The Strict-Transport-Security value ("" when hsts = 0)."""
        if not self.hsts:
            return ""
        return f"max-age={self.hsts}" + ("; includeSubDomains; preload" if self.hsts_preload else "")


@dataclass(frozen=True)
class DatabaseConfig:
    """deploy.toml [database] (roles/postgres.py, toolkit/tasks_db.py)."""
    engine: str = "sqlite"
    backups: bool = False  # the daily backup timer
    backup_days: int = 14

    @property
    def postgresql(self) -> bool:
        return self.engine == "postgresql"


@dataclass(frozen=True)
class AppConfig:
    name: str
    source: Source
    framework: str
    wsgi: str
    python: str = "python3"
    requirements: str = "requirements.txt"
    # "src" when the code is in a src/ layout: on the venv's path (lockfiles.app_path)
    app_path: str = ""
    domains: tuple[str, ...] = ("_",)
    hosts: tuple[str, ...] = ()
    workers: int | str = "auto"
    threads: int = 1
    timeout: int = 30
    graceful_timeout: int = 30
    keep_releases: int = 5
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    generate_secrets: tuple[str, ...] = ()
    shared: tuple[str, ...] = ()  # linked from shared/data into each release (toolkit/shared_paths.py)
    static: dict[str, str] = field(default_factory=dict)
    media: str = "/media/"
    client_max_body_size: str = "10m"
    static_expires: str = "7d"
    access_log: str = "journal"
    memory_deny_write_execute: bool = False
    ipv6: bool = True
    health: Health = field(default_factory=Health)
    django: DjangoConfig | None = None
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    hardening: Hardening = field(default_factory=Hardening)
    # [processes] NAME -> command; [schedule] NAME -> {"command", "on"} (roles/processes.py, schedule.py)
    processes: dict[str, str] = field(default_factory=dict)
    schedules: dict[str, dict] = field(default_factory=dict)
    redis: bool = False  # [services] redis (roles/redis.py)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    # [hosts] and [network] (toolkit/inventory.py); without [hosts]: [app] hosts, one host each
    inventory: Inventory = field(default_factory=Inventory)
    config_file: Path | None = None

    @property
    def app_dir(self) -> Path:
        return self.source.path

    @property
    def layout(self) -> HostLayout:
        """Every path on the host (toolkit/layout.py)."""
        return HostLayout(self.name)

    @property
    def any_domain(self) -> bool:
        return self.domains == ("_",)


# --------------------------------------------------------------------------- loading

def slugify(text: str) -> str:
    """A directory name made into an app name: "My_Shop 2" -> "my-shop-2" (may still be invalid)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:31].rstrip("-")


def load_app_config(app_dir: str | Path, overrides: dict | None = None) -> AppConfig:
    """Read APP_DIR/deploy.toml, apply overrides, validate everything, fill defaults.

    ``overrides`` uses the file's shape, either nested ({"app": {"workers": 4}}) or dotted
    ({"app.workers": 4}); they are checked exactly as the file's values are.
    Raises ConfigError with a message a person can act on.
    """
    app_dir = Path(app_dir).resolve()
    if not app_dir.is_dir():
        raise ConfigError(f"{app_dir}: no such directory (give the app's directory with --app DIR)")
    path = app_dir / CONFIG_FILE
    where = _display(path)
    raw = _read_toml(path, where)
    at = _Lines(path.read_text(encoding="utf-8", errors="replace") if path.exists() else "", where)
    for section, values in _nested(overrides or {}, "overrides").items():
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{where}: [{section}] must be a table")
        raw[section].update(values)
    values = _validate(raw, at)
    return _build(values, app_dir, path if path.exists() else None, where)


def _display(path: Path) -> str:
    """The config file's path as the user knows it: relative to the working directory when inside."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _read_toml(path: Path, where: str) -> dict:
    if not path.exists():
        return {}           # every key has a default: a bare app directory is fine
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc} (see docs/deploy-config.md for the format)") from None


def _nested(overrides: dict, where: str) -> dict:
    out: dict[str, dict] = {}
    for key, value in overrides.items():
        if "." in key:
            section, _, name = key.partition(".")
            out.setdefault(section, {})[name] = value
        elif isinstance(value, dict):
            out.setdefault(key, {}).update(value)
        else:
            raise ConfigError(f"{where}: {key!r} must be written section.key (e.g. 'app.workers')")
    return out


class _Lines:
    """Where a section or key is written in deploy.toml: `deploy.toml:12`, for error messages.
    tomllib gives values, not positions, so the lines are found in the text."""

    def __init__(self, text: str, where: str):
        self.where = where
        self.found: dict[tuple[str, str], int] = {}
        section = ""
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("[") and not stripped.startswith("[["):
                section = stripped.strip("[]").split("]")[0].strip()
                self.found.setdefault((section, ""), number)
            elif "=" in stripped and not stripped.startswith("#"):
                key = stripped.split("=", 1)[0].strip().strip('"')
                sec, _, name = key.rpartition(".") if "." in key and not section else (section, "", key)
                self.found.setdefault((sec, name), number)

    def __call__(self, section: str, name: str = "") -> str:
        number = self.found.get((section, name)) or self.found.get((section, ""))
        return f"{self.where}:{number}" if number else self.where


def _validate(raw: dict, at) -> dict[tuple[str, str], Any]:
    """Check every section and key of the parsed file; return {(section, key): value}.
    `at(section, key)` says where the key is written (file:line)."""
    if isinstance(at, str):
        at = _Lines("", at)
    where = at.where
    values: dict[tuple[str, str], Any] = {}
    for section, table in raw.items():
        where = at(section)
        if section not in SECTIONS:
            if (("app", section)) in _KEYS:
                raise ConfigError(f"{where}: '{section}' must be inside the [app] section "
                                  f"(write it under a line [app])")
            raise ConfigError(f"{where}: unknown section [{section}]{did_you_mean(section, SECTIONS)}; "
                              f"allowed sections: {', '.join('[' + s + ']' for s in SECTIONS)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{section}] must be a table (a line [{section}] followed by keys)")
        if section in TABLE_SECTIONS:
            values[(section, "*")] = _check(_KEYS[(section, "*")], table, where)
            continue
        names = [k.name for k in SCHEMA if k.section == section]
        for name, value in table.items():
            if name not in names:
                raise ConfigError(f"{at(section, name)}: unknown key '{name}' in [{section}]"
                                  f"{did_you_mean(name, names)}; allowed keys: {', '.join(names)}",
                                  "correct the key in deploy.toml (every key: docs/deploy-config.md), "
                                  "then run the same command again")
            values[(section, name)] = _check(_KEYS[(section, name)], value, at(section, name))
    _check_consistency(values, at.where)
    _check_hosts(values, at)
    _check_tls(values, at)
    return values


def _check(key: Key, value: Any, where: str) -> Any:
    try:
        return key.check(value)
    except Invalid as exc:
        if key.name == "*":         # a free-form table: the message names the bad entry
            raise ConfigError(f"{where}: [{key.section}]: {exc}") from None
        raise ConfigError(f"{where}: [{key.section}] {key.name} = {_toml_repr(value)}: {exc}") from None


def _toml_repr(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_repr(v) for v in value) + "]"
    return repr(value)


def _check_consistency(values: dict, where: str) -> None:
    """Rules between keys: things each key alone cannot see."""
    secrets = values.get(("app", "secrets"), ())
    env = values.get(("env", "*"), {})
    both = sorted(set(secrets) & set(env))
    if both:
        raise ConfigError(f"{where}: {', '.join(both)} is in both [env] and [app] secrets; "
                          f"keep secret values out of deploy.toml (remove it from [env])")
    generated = values.get(("app", "generate_secrets"), ())
    missing = [n for n in generated if n not in secrets]
    if missing:
        raise ConfigError(f"{where}: [app] generate_secrets lists {', '.join(missing)} which is not in "
                          f"[app] secrets; add it there too")
    _check_database(values, where)
    same = sorted(set(values.get(("processes", "*"), {})) & set(values.get(("schedule", "*"), {})))
    if same:
        raise ConfigError(f"{where}: {', '.join(same)} is both in [processes] and [schedule] (each becomes "
                          f"the unit APP-NAME.service); rename one of them")
    if ("source", "ref") in values and not values.get(("source", "git")):
        raise ConfigError(f"{where}: [source] ref is set but git is not; set git = \"URL\" or remove ref")
    framework = values.get(("app", "framework"))
    django_keys = [n for (s, n) in values if s == "django"]
    if django_keys and framework and framework != "django":
        raise ConfigError(f"{where}: [django] is set but framework = \"{framework}\"; "
                          f"remove [django] or set framework = \"django\"")


def _check_hosts(values: dict, at) -> None:
    """[hosts] is the several-host form of [app] hosts (one or the other); [network] and the
    database host only make sense with it."""
    roles = {n: v for (s, n), v in values.items() if s == "hosts"}
    if roles and ("app", "hosts") in values:
        line = at("hosts").rpartition(":")[2]
        raise ConfigError(f"{at('app', 'hosts')}: [app] hosts and [hosts] (line {line}) both say where the "
                          f"app goes; keep one: [hosts] with roles for several hosts (lb, app, worker, db), "
                          f"or [app] hosts for hosts that each run everything")
    if not roles:
        if values.get(("network", "private")):
            raise ConfigError(f"{at('network', 'private')}: [network] private is set but there is no [hosts]; "
                              f"it says how hosts of [hosts] reach each other: add [hosts] or remove [network]")
        return
    for problem in check_roles(roles):
        raise ConfigError(f"{at('hosts')}: {problem}")
    if len(roles.get("lb", ())) > 1 and tls_mode(values) == "letsencrypt":
        # HTTP-01: the CA asks whichever load balancer the domain's DNS names, and only the one
        # that ran certbot holds the answer; and each would get a certificate of its own.
        why = (f'[tls] mode = "letsencrypt" ({at("tls", "mode")})' if ("tls", "mode") in values else
               f'Let\'s Encrypt certificates ([tls] mode = "letsencrypt", the default for the public names '
               f'in [app] domains, {at("app", "domains")})')
        raise ConfigError(f'{at("hosts", "lb")}: [hosts] lb lists {len(roles["lb"])} load balancers, and {why} '
                          f'works with one load balancer only (the CA\'s ACME challenge could reach any of them, '
                          f'and only the one that asked has the answer)',
                          'keep one host in [hosts] lb, or give every load balancer the same certificate: '
                          '[tls] mode = "files" with cert and key; then run the same command again')
    postgresql = _get(values, "database", "engine") == "postgresql"
    if roles.get("db") and not postgresql:
        raise ConfigError(f'{at("hosts", "db")}: [hosts] db is set but [database] engine is not "postgresql"; '
                          f'set [database] engine = "postgresql" or remove db')
    if postgresql and not roles.get("db"):
        raise ConfigError(f'{at("hosts")}: [database] engine = "postgresql" with [hosts] needs the database '
                          f'host: add db = ["HOST"] to [hosts] (it may be one of the app hosts)')


def _check_tls(values: dict, at) -> None:
    """What each [tls] mode needs from the other keys. `at(section, key)`: where a key is written.
    A mode nobody wrote comes from the domains (`tls_mode`): the message then names the domains'
    line and says how to choose another mode."""
    from toolkit.config_schema import HSTS_PRELOAD_MIN

    mode = tls_mode(values)
    domains = _get(values, "app", "domains")
    chosen = ("tls", "mode") in values
    if mode == "letsencrypt":
        line = at("tls", "mode") if chosen else at("app", "domains")
        why = ('[tls] mode = "letsencrypt"' if chosen else
               f'[app] domains = {_toml_repr(list(domains))} holds public names, so the site gets HTTPS from '
               f'Let\'s Encrypt by default ([tls] mode = "letsencrypt"), which')
        other = ('' if chosen else
                 '; or choose yourself: [tls] mode = "self-signed" (a certificate made on the host) or '
                 'mode = "off" (http only)')
        if not _get(values, "tls", "email"):
            raise ConfigError(f'{line}: {why} needs an e-mail for the ACME account (Let\'s Encrypt writes '
                              f'there before a certificate expires)',
                              f'add to deploy.toml a section [tls] with email = "you@example.com" (your address), '
                              f'then run the same command again{other}')
        fake = [d for d in domains if d == "_" or d.startswith("*.") or _is_address(d)]
        if fake:
            raise ConfigError(f'{line}: {why} needs real domain names in [app] domains '
                              f'(a certificate cannot name {", ".join(fake)}: "_", wildcards and addresses '
                              f'are not allowed)',
                              f'set domains = ["www.example.com"] pointing at the host, or [tls] '
                              f'mode = "self-signed"; then run the same command again')
    if mode == "files":
        missing = [n for n in ("cert", "key") if not _get(values, "tls", n)]
        if missing:
            raise ConfigError(f'{at("tls", "mode")}: [tls] mode = "files" needs {" and ".join(missing)}: the paths '
                              f'of your certificate chain and private key (PEM) on this machine, e.g. '
                              f'cert = "tls/fullchain.pem", key = "tls/privkey.pem"')
    if _get(values, "tls", "hsts_preload") and _get(values, "tls", "hsts") < HSTS_PRELOAD_MIN:
        raise ConfigError(f"{at('tls', 'hsts_preload')}: [tls] hsts_preload = true needs hsts of at least "
                          f"{HSTS_PRELOAD_MIN} (one year, hstspreload.org's minimum); set hsts = {HSTS_PRELOAD_MIN}")


# Names no public CA issues for: RFC 2606/6761/6762 and ICANN's reserved or private-use names,
# and the example domains (Let's Encrypt refuses them by policy).
RESERVED_SUFFIXES = ("test", "example", "invalid", "localhost", "local", "internal", "lan", "home.arpa",
                     "example.com", "example.net", "example.org")


def public_name(name: str) -> bool:
    """Whether a public CA could issue a certificate for `name` over HTTP-01: a dotted DNS name
    outside the reserved and private-use names (not "_", an address, a wildcard or one label)."""
    if name == "_" or name.startswith("*.") or _is_address(name) or "." not in name.strip("."):
        return False
    name = name.strip(".")
    return not any(name == s or name.endswith("." + s) for s in RESERVED_SUFFIXES)


def tls_mode(values: dict) -> str:
    """[tls] mode as written, else "letsencrypt" when a domain is a public name (a site on the
    internet gets HTTPS unless told otherwise), else "off" ("_", addresses, .test and the like)."""
    if ("tls", "mode") in values:
        return values[("tls", "mode")]
    return "letsencrypt" if any(public_name(d) for d in _get(values, "app", "domains")) else "off"


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        return False


def _check_database(values: dict, where: str) -> None:
    """With engine = "postgresql" the toolkit makes DATABASE_URL; the daily backup is the unit
    APP-backup, so no [schedule] may take that name."""
    if _get(values, "database", "engine") == "postgresql":
        for section, names in (("[app] secrets", values.get(("app", "secrets"), ())),
                               ("[env]", values.get(("env", "*"), {}))):
            if "DATABASE_URL" in names:
                raise ConfigError(f'{where}: DATABASE_URL is in {section}, but [database] engine = "postgresql" '
                                  f"makes it (a generated password, kept on the host); remove it from {section}")
    if "backup" in values.get(("schedule", "*"), {}):
        raise ConfigError(f"{where}: [schedule] backup would be the unit APP-backup.service, which the "
                          f"database backups use; rename the schedule")


def _get(values: dict, section: str, name: str) -> Any:
    if (section, name) in values:
        return values[(section, name)]
    return _KEYS[(section, name)].default


def _build(values: dict, app_dir: Path, config_file: Path | None, where: str) -> AppConfig:
    name = values.get(("app", "name")) or _default_name(app_dir, where)
    framework = values.get(("app", "framework"))
    wsgi = values.get(("app", "wsgi"))
    detected = None
    if not (framework and wsgi) or (framework == "django" and not values.get(("django", "settings"))):
        try:
            detected = detect.detect_app(app_dir, framework=framework)
        except detect.DetectError as exc:
            if not wsgi:
                raise ConfigError(f"{where}: {exc}") from None
    framework = framework or (detected.framework if detected else "wsgi")
    wsgi = wsgi or detected.wsgi

    django = None
    if framework == "django":
        settings = values.get(("django", "settings")) or (detected.settings if detected else "")
        if not settings:
            raise ConfigError(f"{where}: could not find the Django settings module; "
                              f'set it in [django] settings = "project.settings"')
        django = DjangoConfig(settings=settings, migrate=_get(values, "django", "migrate"),
                              collectstatic=_get(values, "django", "collectstatic"))

    static = values.get(("static", "*"))
    if static is None:
        static = _default_static(framework, app_dir)

    fields = {k.name: _get(values, "app", k.name) for k in SCHEMA
              if k.section == "app" and k.name not in ("name", "framework", "wsgi")}
    fields["requirements"] = _requirements(values, app_dir, where)
    return AppConfig(
        name=name, framework=framework, wsgi=wsgi,
        source=Source(path=app_dir, git=_get(values, "source", "git"), ref=_get(values, "source", "ref"),
                      include=tuple(_get(values, "source", "include"))),
        env=dict(values.get(("env", "*"), {})), static=static,
        health=Health(**{n: _get(values, "health", n) for n in ("path", "expect", "timeout")}),
        django=django,
        proxy=ProxyConfig(**{n: _get(values, "proxy", n) for n in ("http", "https", "no_proxy", "ca_bundle")}),
        hardening=Hardening(**{k.name: _get(values, "hardening", k.name) for k in SCHEMA
                               if k.section == "hardening"}),
        database=_database(values),
        tls=_tls(values, app_dir),
        processes=dict(values.get(("processes", "*"), {})),
        schedules=dict(values.get(("schedule", "*"), {})),
        redis=_get(values, "services", "redis"),
        inventory=_inventory(values),
        config_file=config_file,
        app_path=lockfiles.app_path(app_dir),
        **fields,
    )


def _requirements(values: dict, app_dir: Path, where: str) -> str:
    """The dependency file: as written, or chosen (requirements.txt, a lock file, pyproject.toml);
    read now, so a file pip could not use is refused before anything reaches a host."""
    name = values.get(("app", "requirements")) or lockfiles.choose(app_dir)
    if ("app", "requirements") in values and not (app_dir / name).is_file() and not _get(values, "source", "git"):
        # Named but absent: without this the venv would get no dependencies and the import check
        # would fail far from the cause.
        raise ConfigError(f"{where}: [app] requirements = \"{name}\", but there is no such file in {app_dir}; "
                          f"fix the path, or remove the line (then requirements.txt, pylock.toml, uv.lock or "
                          f"pyproject.toml is used, whichever is there)")
    try:
        lockfiles.load(app_dir, name)
    except lockfiles.RequirementsError as exc:
        raise ConfigError(f"{where}: [app] requirements: {exc}") from None
    return name


def _tls(values: dict, app_dir: Path) -> TlsConfig:
    """[tls] with its local paths resolved against the app directory."""
    fields = {k.name: _get(values, "tls", k.name) for k in SCHEMA if k.section == "tls"}
    fields["mode"] = tls_mode(values)
    for name in ("cert", "key"):
        if fields[name]:
            fields[name] = str((app_dir / Path(fields[name]).expanduser()).resolve())
    return TlsConfig(**fields)


def _inventory(values: dict) -> Inventory:
    roles = {n: v for (s, n), v in values.items() if s == "hosts" and v is not None}
    if not roles:
        return Inventory.single(_get(values, "app", "hosts"))
    return Inventory.of(roles, _get(values, "network", "private"))


def _database(values: dict) -> DatabaseConfig:
    """[database]; backups default to on for PostgreSQL (an app on sqlite may have no database)."""
    engine = _get(values, "database", "engine")
    backups = _get(values, "database", "backups")
    return DatabaseConfig(engine=engine, backups=engine == "postgresql" if backups is None else backups,
                          backup_days=_get(values, "database", "backup_days"))


def _default_name(app_dir: Path, where: str) -> str:
    name = slugify(app_dir.name)
    if not NAME_RE.match(name) or name in RESERVED_NAMES:
        raise ConfigError(f"{where}: the directory name {app_dir.name!r} does not make a valid app name; "
                          f'set [app] name = "myapp" (a letter, then letters, digits or "-")')
    return name


def _default_static(framework: str, app_dir: Path) -> dict[str, str]:
    if framework == "django":
        return {"/static/": "staticfiles"}      # where the example's STATIC_ROOT points
    if (app_dir / "static").is_dir():
        return {"/static/": "static"}
    return {}


# --------------------------------------------------------------------------- the reference doc

def reference_markdown() -> str:
    """The key reference of docs/deploy-config.md, made from SCHEMA."""
    lines = []
    for section in SECTIONS:
        lines += [f"### [{section}]", ""]
        if section in TABLE_SECTIONS:
            key = _KEYS[(section, "*")]
            lines += [key.help, "", f"- allowed: {key.allowed}",
                      f"- default: {key.default_text}", f"- example: `{key.example}`", ""]
            continue
        lines += ["| key | meaning | default | allowed | example |", "|---|---|---|---|---|"]
        for key in SCHEMA:
            if key.section != section:
                continue
            default = key.default_text or ("(none)" if key.default in (None, "") else _toml_repr(
                list(key.default) if isinstance(key.default, tuple) else key.default))
            cells = [f"`{key.name}`", key.help, default, key.allowed, f"`{key.example}`"]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--doc"]:
        print(reference_markdown())
    else:
        print("usage: python -m toolkit.config --doc   (prints the key reference of docs/deploy-config.md)")
