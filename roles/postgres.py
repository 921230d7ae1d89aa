"""The app's database ([database] in deploy.toml): PostgreSQL on the host, and the backups.

With engine = "postgresql":
- the distribution's server (the `postgresql` package, installed with the base packages),
  running, listening on localhost only (`listen_addresses`, Debian's and Ubuntu's default, set
  with ALTER SYSTEM when something else is found, then the server restarts);
- a role and a database named as the app, the database owned by the role and closed to the
  other roles (REVOKE CONNECT FROM PUBLIC); the role's password is the one in DATABASE_URL,
  which the renderer generated once and keeps in the host's shared/.env (toolkit/render.py
  database_secrets).

The password never reaches a command line or the server as text: the role gets a SCRAM
verifier computed here (`PASSWORD 'SCRAM-SHA-256$...'`), inside an SQL script that travels in
the change's tar on stdin and goes from `tar -xzO` straight into `psql` as the postgres user.
The role is re-keyed only when the stored verifier does not open with the password in .env
(toolkit/facts/postgres.py reads it), so a second provision changes nothing.

With backups on (the default for PostgreSQL): shared/backups (root's, 0700), the backup
program the timer runs (toolkit/onhost/db_backup.py as layout.backup_program, root's 0600),
and NAME-backup.timer enabled and started (its unit files come from the systemd role).

A database host of deploy.toml [hosts] (`db_host_plan`, applied by toolkit/db_host.py) gets the
same role and database, and besides: the server listens on localhost AND its private address;
pg_hba.conf lets the app's role into the app's database from the app and worker hosts'
private addresses only, with scram-sha-256 (a block of the toolkit's own, between markers, the
rest of the file kept); ufw lets 5432 in from those addresses only; the password is kept on the
db host in layout.db_credentials (root's 0600), generated there once. The single-host plan
above (`plan`) does nothing on a host of [hosts]: the db host is the db_host's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from roles.files import file_changes
from toolkit import onhost
from toolkit.executor import Change
from toolkit.facts.postgres import PgHbaState, PostgresState, scram_matches, scram_verifier
from toolkit.onhost import envfile
from toolkit.remote import q

STEP = "database"
SERVER_UNIT = "postgresql.service"
LISTEN = "localhost"
PORT = 5432
HBA_METHOD = "scram-sha-256"


class _File:
    """A file for the executor's tar (path, content, mode, owner, group)."""

    def __init__(self, path, content, mode=0o600, owner="root", group="root"):
        self.path, self.content, self.mode, self.owner, self.group = path, content, mode, owner, group


def needed(wanted) -> bool:
    """Whether the app's deploy.toml asks for anything of this role."""
    db = wanted.database
    return db is not None and (db.postgresql or db.backups)


def fact_paths(wanted) -> list[str]:
    if wanted.database is None:
        return []
    return [wanted.layout.backups_dir, wanted.layout.backup_program]


def units(wanted) -> tuple:
    """The backup timer, read for every app: one whose backups were turned off is retired."""
    return (wanted.layout.backup_timer,) if wanted.database is not None else ()


def database_password(wanted) -> str:
    """The password in the DATABASE_URL of the rendered shared/.env ("" when there is none)."""
    for f in wanted.files:
        if f.path == wanted.layout.env_file:
            url = envfile.parse(f.content).get("DATABASE_URL", "")
            return urlsplit(url).password or ""
    return ""


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def setup_sql(name: str, verifier: str, listen: bool | str) -> str:
    """Idempotent SQL making the role and database (psql's \\gexec runs a CREATE only when the
    SELECT returns it, i.e. when the object is missing)."""
    role, lit = ident(name), literal(name)
    lines = [
        f"SELECT 'CREATE ROLE {role} LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {lit})\\gexec",
        f"ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {literal(verifier)};",
        f"SELECT 'CREATE DATABASE {role} OWNER {role}' "
        f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {lit})\\gexec",
        f"ALTER DATABASE {role} OWNER TO {role};",
        f"REVOKE CONNECT, TEMPORARY ON DATABASE {role} FROM PUBLIC;",
    ]
    if listen:
        value = LISTEN if listen is True else listen
        lines.append(f"ALTER SYSTEM SET listen_addresses = {literal(value)};")
    return "\n".join(lines) + "\n"


def server_change(pg: PostgresState, wanted, password: str | None = None, listen: str = LISTEN) -> list:
    """The server, role and database: one change when anything differs. `password`: the one to
    key the role with (default: DATABASE_URL's in the rendered .env); `listen`: listen_addresses."""
    name = wanted.layout.db_name
    password = database_password(wanted) if password is None else password
    why = []
    if not pg.running:
        why.append("new, or the server does not answer")
    if pg.running and pg.listen != listen:
        why.append(f"listen_addresses {pg.listen or '?'} -> {listen}")
    if pg.running and not pg.role_exists:
        why.append("no role")
    elif pg.running and not scram_matches(password, pg.role_verifier):
        why.append("password differs from .env")
    if pg.running and pg.db_owner != name:
        why.append("no database" if not pg.db_owner else f"owner {pg.db_owner} -> {name}")
    if pg.running and pg.public_connect:
        why.append("open to every role")
    if not why:
        return []
    if not password:
        raise ValueError("no DATABASE_URL password in the rendered .env (render_all without the host's .env?)")
    relisten = not pg.running or pg.listen != listen
    sql = setup_sql(name, scram_verifier(password, os.urandom(16)), listen=listen if relisten else False)
    script = " && ".join(filter(None, [
        f"systemctl enable --quiet --now {SERVER_UNIT}",
        # The SQL (with the password's verifier) only on stdin: tar prints it into psql.
        "tar -xzOf - | (cd / && runuser -u postgres -- psql -XAq -v ON_ERROR_STOP=1 -d postgres)",
        # A new server listens on localhost by default: only another address needs the restart.
        f"systemctl restart {SERVER_UNIT}" if relisten and (pg.running or listen != LISTEN) else "",
    ]))
    return [Change(f"PostgreSQL role and database {name}", ", ".join(why),
                   files=(_File("/pronghorn-db-setup.sql", sql),), script=script, tar_on_stdin=True,
                   label="setting up the app's PostgreSQL role and database")]


def backup_changes(facts, wanted) -> list:
    """shared/backups, the backup program, the daily timer."""
    lay, changes = wanted.layout, []
    backups = facts.fact(lay.backups_dir)
    if not (backups.kind == "dir" and backups.mode == 0o700 and (backups.owner, backups.group) == ("root", "root")):
        changes.append(Change("backups", "missing" if not backups.exists else "mode or owner",
                              script=f"install -d -m 700 -o root -g root {q(lay.backups_dir)}",
                              label="making the backups folder"))
    if not wanted.database.backups:
        return changes + retire_timer(facts, wanted)
    changes += file_changes(facts, [_File(lay.backup_program, onhost.program("db_backup"))])
    timer = facts.unit(lay.backup_timer)
    if timer.enabled != "enabled" or timer.active != "active":
        changes.append(Change(lay.backup_timer, "not enabled" if timer.enabled != "enabled" else "not active",
                              script=f"systemctl enable --quiet --now {q(lay.backup_timer)}"))
    return changes


def retire_timer(facts, wanted) -> list:
    """Backups turned off: the timer stops and goes with its units and program (the backups
    already made stay)."""
    lay = wanted.layout
    timer = facts.unit(lay.backup_timer)
    if timer.enabled in ("", "not-found") and timer.active != "active" and not facts.fact(lay.backup_program).exists:
        return []
    units = " ".join(q(f"/etc/systemd/system/{u}") for u in (lay.backup_timer, lay.backup_unit))
    return [Change(lay.backup_timer, "backups are off",
                   script=f"systemctl disable --quiet --now {q(lay.backup_timer)} 2>/dev/null; "
                          f"rm -f {units} {q(lay.backup_program)} && systemctl daemon-reload",
                   label="retiring the backup timer")]


def plan(facts, wanted, pg: PostgresState | None = None) -> list:
    """Everything [database] wants that the host lacks, in order: server, role and database,
    backups folder, backup program, timer (or its removal once backups are off)."""
    if wanted.database is None or getattr(wanted, "roles", None) is not None:
        return []  # nothing, or a host of [hosts]: the database host is toolkit/db_host.py's
    if not needed(wanted):
        return retire_timer(facts, wanted)
    changes = server_change(pg or PostgresState(), wanted) if wanted.database.postgresql else []
    return changes + backup_changes(facts, wanted)


# -- the database host of deploy.toml [hosts] (toolkit/db_host.py applies this) ----------------

@dataclass(frozen=True)
class DbHost:
    """What the database host must be: its private address and the addresses of the hosts that
    may connect (the app and worker hosts), and the app's password (kept on the db host)."""
    private: str
    clients: tuple
    password: str


def db_listen(private: str) -> str:
    """listen_addresses: loopback (psql, backups, db.shell) and the private address, never '*'."""
    return f"{LISTEN},{private}" if private else LISTEN


def client_url(name: str, password: str, private: str) -> str:
    """DATABASE_URL for the app hosts: the app's role and database on the db host's private address."""
    return f"postgresql://{name}:{password}@{private}:{PORT}/{name}"


def hba_markers(name: str) -> tuple[str, str]:
    return (f"# BEGIN pronghorn {name}: the app hosts of deploy.toml [hosts] (toolkit/db_host.py)",
            f"# END pronghorn {name}")


def hba_block(name: str, clients) -> str:
    """The app's pg_hba lines: its role, its database, each client's address alone (/32), SCRAM.
    No line for anyone else: a connection that matches no line is refused."""
    begin, end = hba_markers(name)
    lines = [f"host    {name}    {name}    {address}/32    {HBA_METHOD}" for address in clients]
    return "\n".join([begin, *lines, end]) + "\n"


def hba_with(text: str, name: str, clients) -> str:
    """`text` (a pg_hba.conf) with the app's block replaced by one for `clients` (appended at the
    end: the distribution's lines above cover only local and loopback connections)."""
    begin, end = hba_markers(name)
    kept, inside = [], False
    for line in text.splitlines():
        if line.strip() == begin:
            inside = True
        elif inside and line.strip() == end:
            inside = False
        elif not inside:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    head = "\n".join(kept) + "\n" if kept else ""
    return head + ("\n" + hba_block(name, clients) if clients else "")


def hba_change(hba: PgHbaState, name: str, clients) -> list:
    """pg_hba.conf rewritten (owner postgres, 0640 as Debian ships it) and the server reloaded
    when the app's block is not the wanted one. Nothing to do before the server answers: the
    server change runs first and the next provision (the db host's own step) reads the file."""
    if not hba.path:
        return []
    wanted_text = hba_with(hba.text, name, clients)
    if wanted_text == hba.text:
        return []
    return [Change("pg_hba.conf", f"{name} from {', '.join(clients) or 'no host'}",
                   files=(_File(hba.path, wanted_text, 0o640, "postgres", "postgres"),),
                   script=f"systemctl reload {SERVER_UNIT}", label="allowing the app hosts in pg_hba.conf")]


def firewall_rules(clients) -> list[str]:
    """ufw rules as roles/hardening/firewall.py spells them: 5432 from each client only."""
    return [f"{PORT}/tcp from {address}" for address in clients]


def ufw_comment(name: str) -> str:
    return f"pronghorn {name}"


def firewall_changes(hardening, clients, name: str) -> list:
    """Let the clients reach 5432 through ufw, and no one else: this app's rule (marked with its
    comment) for an address that is no longer a client goes, and so does 5432 open to everyone;
    other apps' rules on the same db host stay. Nothing when ufw is not installed ([hardening]
    firewall off: listen_addresses and pg_hba still hold)."""
    from roles.hardening import firewall

    if not hardening.ufw_default_input:
        return []
    mine = ufw_comment(name)
    have = firewall.allowed(hardening_facts(hardening))
    wanted = firewall_rules(clients)
    ours = {f"{r.port}/{r.proto}" + ("" if r.source == "any" else f" from {r.source}")
            for r in hardening.ufw_rules if r.port == str(PORT) and r.action == "allow" and r.direction == "in"
            and (r.comment == mine or r.source == "any")}
    add = [rule for rule in wanted if rule not in have]
    drop = sorted(ours - set(wanted))
    if not add and not drop:
        return []
    script = [_ufw_allow_marked(rule, mine) for rule in add] + [_ufw_delete(rule) for rule in drop]
    notes = ([f"allow {', '.join(add)}"] if add else []) + ([f"remove {', '.join(drop)}"] if drop else [])
    return [Change("; ".join(notes), script=" && ".join(script), label="letting the app hosts reach PostgreSQL")]


def hardening_facts(hardening):
    """firewall.allowed() reads `facts.hardening`."""
    from types import SimpleNamespace

    return SimpleNamespace(hardening=hardening)


def _ufw_allow_marked(rule: str, comment: str) -> str:
    port_proto, _, source = rule.partition(" from ")
    port, _, proto = port_proto.partition("/")
    return f"ufw allow from {q(source)} to any port {q(port)} proto {q(proto)} comment {q(comment)} >/dev/null"


def _ufw_delete(rule: str) -> str:
    port_proto, _, source = rule.partition(" from ")
    port, _, proto = port_proto.partition("/")
    if not source:
        return f"ufw delete allow {q(port_proto)} >/dev/null"
    return f"ufw delete allow from {q(source)} to any port {q(port)} proto {q(proto)} >/dev/null"


def credentials_file(wanted, url: str) -> _File:
    """The db host's copy of DATABASE_URL (root's 0600): the password is generated once and kept."""
    return _File(wanted.layout.db_credentials, envfile.line("DATABASE_URL", url) + "\n")


def db_host_plan(facts, wanted, db: DbHost, pg: PostgresState, hba: PgHbaState, hardening, kept_url: str) -> list:
    """Everything the database host lacks, in order: the kept password, the server (listening on
    localhost and the private address), the role and database, pg_hba for the clients, ufw,
    then the backups (folder, program, timer) as on a single host."""
    name = wanted.layout.db_name
    url = client_url(name, db.password, db.private)
    changes = []
    if kept_url != url:
        changes.append(Change(wanted.layout.db_credentials, "new" if not kept_url else "address changed",
                              files=(credentials_file(wanted, url),)))
    changes += server_change(pg, wanted, password=db.password, listen=db_listen(db.private))
    changes += hba_change(hba, name, db.clients)
    changes += firewall_changes(hardening, db.clients, name)
    return changes + backup_changes(facts, wanted)
