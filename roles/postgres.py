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
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from roles.files import file_changes
from toolkit import onhost
from toolkit.executor import Change
from toolkit.facts.postgres import PostgresState, scram_matches, scram_verifier
from toolkit.onhost import envfile
from toolkit.remote import q

STEP = "database"
SERVER_UNIT = "postgresql.service"
LISTEN = "localhost"


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


def setup_sql(name: str, verifier: str, listen: bool) -> str:
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
        lines.append(f"ALTER SYSTEM SET listen_addresses = {literal(LISTEN)};")
    return "\n".join(lines) + "\n"


def server_change(pg: PostgresState, wanted) -> list:
    """The server, role and database: one change when anything differs."""
    name, password = wanted.layout.db_name, database_password(wanted)
    why = []
    if not pg.running:
        why.append("new, or the server does not answer")
    if pg.running and pg.listen != LISTEN:
        why.append(f"listen_addresses {pg.listen or '?'} -> {LISTEN}")
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
    relisten = not pg.running or pg.listen != LISTEN
    sql = setup_sql(name, scram_verifier(password, os.urandom(16)), listen=relisten)
    script = " && ".join(filter(None, [
        f"systemctl enable --quiet --now {SERVER_UNIT}",
        # The SQL (with the password's verifier) only on stdin: tar prints it into psql.
        "tar -xzOf - | (cd / && runuser -u postgres -- psql -XAq -v ON_ERROR_STOP=1 -d postgres)",
        f"systemctl restart {SERVER_UNIT}" if relisten and pg.running else "",
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
    if wanted.database is None:
        return []
    if not needed(wanted):
        return retire_timer(facts, wanted)
    changes = server_change(pg or PostgresState(), wanted) if wanted.database.postgresql else []
    return changes + backup_changes(facts, wanted)
