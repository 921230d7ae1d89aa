"""The database host of deploy.toml [hosts] (`db = ["HOST"]` with [database] engine = "postgresql"):
PostgreSQL on its own host, reachable from the app and worker hosts only.

How the multi-host tasks use it (toolkit/fleet_run.py, roles/provision.py): once per task,
`read(cfg, addresses, connect)` reads the URL kept on the db host (or makes a new password) into
a `Database`; `host_vars(database, host, roles)` hands it to every host's render: an app or worker
host gets `database_url` (render_all puts it in shared/.env), the db host gets `db_host`, and its
provisioning calls `apply(...)`. So the app hosts and the db host agree on the password whatever
order they are provisioned in. `provision(c, cfg, rep, private, clients)` does the db host's part
alone and returns the URL (tests, scripts). What the db host gets is
roles/postgres.py's `db_host_plan`, a pure plan: PostgreSQL (the distribution's) listening on
localhost and the private address, the app's role and database, pg_hba.conf letting that role
into that database from the clients' private addresses only (scram-sha-256), ufw letting 5432
in from them only, the daily backups kept there (shared/backups, the backup timer).

The password is generated here once, written to the db host (layout.db_credentials, root's
0600, through the executor's tar on stdin) and read back from there on every later run: never
on a command line, never printed (the role gets a SCRAM verifier, as on a single host).
"""

from __future__ import annotations

import secrets as secrets_module
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from roles import postgres
from roles.files import file_changes
from roles.wanted import Wanted
from toolkit import executor, facts as facts_api
from toolkit.executor import Change
from toolkit.facts.extra_units import AppUnitsFacts
from toolkit.facts.files import Files
from toolkit.facts.hardening import HardeningFact
from toolkit.facts.host import EnvFile, Packages, Units
from toolkit.facts.postgres import PgHba, Postgres

STEP = "database host"
PACKAGE = "postgresql"


@dataclass(frozen=True)
class Database:
    """The database host of one task: which host, its private address, the clients' addresses,
    and the DATABASE_URL the app hosts get (the password in it is the one the db host keeps)."""
    host: str
    private: str
    clients: tuple
    url: str

    def __repr__(self) -> str:  # never the password, even in a traceback
        return f"Database(host={self.host!r}, private={self.private!r}, clients={self.clients!r})"

    @property
    def password(self) -> str:
        return urlsplit(self.url).password or ""


def read(cfg, addresses: dict, connect) -> Database | None:
    """The task's Database (None without a db host or without engine = "postgresql"): the URL
    kept on the db host (`connect(host) -> Connection`), or one with a new password."""
    database = getattr(cfg, "database", None)
    hosts = cfg.inventory.hosts("db") if cfg.inventory.multi else ()
    if not hosts or database is None or not database.postgresql:
        return None
    host, name = hosts[0], cfg.layout.db_name
    conn = connect(host)
    try:
        env = facts_api.gather(conn, [EnvFile(cfg.layout.db_credentials)], what="reading the database host")[EnvFile]
    finally:
        conn.close()
    kept = kept_url(env, name)
    password = urlsplit(kept).password if kept else new_password()
    private = addresses[host].private
    return Database(host, private, clients(cfg, addresses), postgres.client_url(name, password, private))


def host_vars(database: Database | None, host: str, roles) -> dict:
    """What `host` (with `roles`) gets to know of the database: the URL on app and worker hosts,
    the whole Database on the db host (roles/provision.py applies it there)."""
    if database is None:
        return {}
    out = database_vars(database.url) if {"app", "worker"} & set(roles) else {}
    if host == database.host:
        out["db_host"] = database
    return out


def apply(c, cfg, rep, database: Database, dry: bool = False) -> int:
    """The db host's part of provisioning it (roles/provision.py calls this on the db host)."""
    return _provision(c, cfg, rep, database.private, database.clients, dry, database.password)[1]


def database_vars(url: str) -> dict:
    """The render host variables that put the db host's DATABASE_URL in an app host's .env."""
    return {"database_url": url}


def clients(cfg, addresses: dict) -> tuple:
    """The private addresses allowed in: the app and worker hosts' (toolkit/fleet.py Address)."""
    inventory = cfg.inventory
    hosts = dict.fromkeys(inventory.hosts("app") + inventory.hosts("worker"))
    return tuple(dict.fromkeys(addresses[h].private for h in hosts))


def wanted_for(cfg) -> Wanted:
    """What the db host wants of the app: its layout, [database], and the backup timer's units
    (rendered without secrets: they hold none)."""
    from toolkit.render import BACKUP_TEMPLATES, render_all

    unit_names = {cfg.layout.backup_unit, cfg.layout.backup_timer}
    files = [f for f in render_all(cfg, mask_secrets=True) if f.path.rsplit("/", 1)[-1] in unit_names]
    assert len(files) <= len(BACKUP_TEMPLATES)
    return replace(Wanted.of(cfg, files), roles=("db",))


def kept_url(env: dict, name: str) -> str:
    """The DATABASE_URL kept on the db host, if it is one for this app's role."""
    url = (env or {}).get("DATABASE_URL", "")
    parts = urlsplit(url)
    return url if parts.scheme == "postgresql" and parts.username == name and parts.password else ""


def new_password() -> str:
    from toolkit.render import DB_PASSWORD_ALPHABET, DB_PASSWORD_LENGTH

    return "".join(secrets_module.choice(DB_PASSWORD_ALPHABET) for _ in range(DB_PASSWORD_LENGTH))


def _read(c, wanted: Wanted, what: str):
    lay = wanted.layout
    paths = [f.path for f in wanted.files] + postgres.fact_paths(wanted)
    gathered = facts_api.gather(c, [Postgres(lay.db_name), PgHba(), EnvFile(lay.db_credentials), HardeningFact(),
                                    Packages((PACKAGE,)), Files(paths), Units((lay.backup_timer,))], what=what)
    return AppUnitsFacts.of(gathered), gathered


def provision(c, cfg, rep, private: str, clients: tuple, dry: bool = False, password: str | None = None) -> str:
    """Bring the db host to what the app hosts at `clients` need; returns the DATABASE_URL for
    them (masked in a dry run that would generate it). `password`: the one to use (Database's);
    default: the one kept on the host, else a new one."""
    return _provision(c, cfg, rep, private, clients, dry, password)[0]


def _provision(c, cfg, rep, private, clients, dry, password) -> tuple[str, int]:
    """(the URL, how many steps changed something)."""
    wanted = wanted_for(cfg)
    name = wanted.layout.db_name
    with rep.step("read the database host") as st:
        facts, gathered = _read(c, wanted, "reading the database host")
        st.info(f"clients {', '.join(clients) or 'none'}")
    kept = kept_url(facts.env, name)
    password = password or (urlsplit(kept).password if kept else new_password())
    db = postgres.DbHost(private=private, clients=tuple(clients), password=password)
    changes = []
    if PACKAGE not in facts.installed:
        from roles.base import install_script

        changes.append(Change(PACKAGE, "missing", script=install_script([PACKAGE], update=True),
                              label="installing PostgreSQL"))
    changes += file_changes(facts, wanted.files)
    if any(ch.files and not ch.script for ch in changes):
        changes.append(Change("systemd", "backup units changed", script="systemctl daemon-reload"))
    changes += postgres.db_host_plan(facts, wanted, db, gathered.get(Postgres), gathered.get(PgHba),
                                     facts.hardening, kept)
    changed = executor.apply(c, rep, STEP, changes, dry)
    if not dry and not gathered.get(PgHba).path:
        # A new server: its pg_hba.conf could only be read once it answered.
        again = facts_api.gather(c, [PgHba()], what="reading pg_hba.conf")
        changed += executor.apply(c, rep, STEP + " (pg_hba)", postgres.hba_change(again[PgHba], name, db.clients),
                                  dry)
    url = postgres.client_url(name, password, private)
    return (url if (kept or not dry) else postgres.client_url(name, "********", private)), int(changed)
