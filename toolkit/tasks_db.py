"""The database tasks ([database] in deploy.toml): db.backup, db.backups, db.restore, db.shell.

Backups and restores run on the host as root through toolkit/onhost/db_backup.py (the same
program the daily APP-backup.timer runs): pg_dump -Fc / pg_restore for PostgreSQL, SQLite's
online backup API for the sqlite files in shared/data. They land in shared/backups/TIMESTAMP,
root's (0700, files 0600). db.shell opens psql as the app's role (peer authentication: no
password anywhere) or sqlite3 on the app's database, as the app user, on a terminal when this
is one.

With deploy.toml [hosts] and a db host (toolkit/db_host.py), every db.* task works on the db
host by default (`db_specs`): the backups are taken and kept there; db.shell is psql there as
the postgres user in the app's role (the app user lives on the app hosts); db.restore stops the
app on the app and worker hosts, restores on the db host, starts them again and checks each.
"""

from __future__ import annotations

import sys

from invoke import task
from invoke.exceptions import Exit

from toolkit.errors import DeployError, ToolkitError, next_task
from toolkit.remote import q
from toolkit.report import Reporter
from toolkit.tasking import (APP_HELP, HOST_HELP, HelpTask, connect_or_stop, host_specs, load_config,
                             run_attached, run_on_hosts, stop)

RESTORE_TIMEOUT = 3600  # seconds: a big database takes a while to load


def db_specs(host, cfg) -> list:
    """The hosts a db.* task works on: --host, else with [hosts] the db host (PostgreSQL there),
    else deploy.toml's hosts."""
    if not host and on_db_host(cfg):
        return host_specs(["db"], cfg)
    return host_specs(host, cfg)


def on_db_host(cfg) -> bool:
    """The database lives on a db host of its own ([hosts] db, engine = "postgresql")."""
    inventory = getattr(cfg, "inventory", None)
    return bool(inventory is not None and inventory.multi and inventory.hosts("db") and cfg.database.postgresql)


def app_specs(cfg) -> list:
    """With a db host: the hosts that run the app or its processes (stopped during a restore)."""
    return host_specs(["app", "worker"], cfg)


def backup_argv(cfg, command: str, **extra) -> list[str]:
    """`python3 -c <db_backup.py> COMMAND --engine ... ` for this app."""
    from toolkit import onhost

    lay, db = cfg.layout, cfg.database
    args = {"engine": db.engine, "db": lay.db_name, "app": cfg.name, "data": lay.data_dir,
            "to": lay.backups_dir, "keep-days": str(db.backup_days), **extra}
    return ["python3", "-c", onhost.program("db_backup"), command] + [a for k, v in args.items()
                                                                        for a in (f"--{k}", str(v))]


def on_host(conn, cfg, command: str, what: str, timeout: float = RESTORE_TIMEOUT, **extra) -> str:
    """Run db_backup.py COMMAND on the host; its stdout, or a DeployError with its message (and,
    for a host the app is not on yet, the deploy to type)."""
    from toolkit.remote import sh

    line = " ".join(q(a) for a in backup_argv(cfg, command, **extra))
    result = sh(conn, line, what=what, check=False, timeout=timeout)
    if result.exited != 0:
        message = (result.stderr.strip() or result.stdout.strip() or "failed").splitlines()[-1]
        undeployed = "not deployed here yet" in message
        raise DeployError(f"{what}: {message.removeprefix('error: ')}",
                          next_task("deploy" if undeployed else "db.backups"), result.stdout + result.stderr)
    return result.stdout


def take_backup(conn, cfg, st) -> str:
    name, _, size = on_host(conn, cfg, "backup", "the backup").strip().partition(" ")
    st.changed(f"{name} ({_size(size)})")
    return name


def _size(text: str) -> str:
    n = int(text) if text.strip().isdigit() else 0
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@task(klass=HelpTask, iterable=["host"], help={"host": HOST_HELP["db.backup"], "app": APP_HELP})
def backup(c, host=None, app="."):
    """Back up the app's database now (into /srv/APP/shared/backups; old ones pruned)."""
    cfg = load_config(app, check_secrets=False)
    rep = Reporter()

    def work(conn, spec):
        with rep.step(f"back up the {cfg.database.engine} database") as st:
            take_backup(conn, cfg, st)
        return ""

    run_on_hosts(db_specs(host, cfg), rep, work, app)


@task(klass=HelpTask, iterable=["host"], help={"host": HOST_HELP["db.backups"], "app": APP_HELP})
def backups(c, host=None, app="."):
    """List the app's database backups (the names db.restore --from takes), oldest first."""
    cfg = load_config(app, check_secrets=False)
    for spec in db_specs(host, cfg):
        conn = connect_or_stop(spec, app)
        try:
            out = on_host(conn, cfg, "list", "listing the backups", timeout=60)
        except ToolkitError as exc:
            stop(exc, spec, app)
        finally:
            conn.close()
        lines = [line.split(" ", 2) for line in out.splitlines() if line.strip()]
        print(f"{spec}: {len(lines)} backup(s) in {cfg.layout.backups_dir}")
        for name, size, files in lines:
            print(f"  {name}  {_size(size):>10}  {files}")


@task(klass=HelpTask, iterable=["host"], name="restore", help={
    "host": HOST_HELP["db.restore"], "app": APP_HELP,
    "from": "the backup to restore: a name `invoke db.backups` lists (e.g. 20261202T024500Z)",
})
def restore(c, host=None, app=".", from_=None):
    """Put a backup back: the app stops, a backup of the current data is taken, the backup is
    restored, the app starts and is health-checked."""
    cfg = load_config(app, check_secrets=False)
    if not from_:
        raise Exit("error: say which backup to restore with --from NAME\n"
                   "  next: " + next_task("db.backups"), code=2)
    rep = Reporter()
    if on_db_host(cfg):
        apps = [(str(spec), connect_or_stop(spec, app)) for spec in app_specs(cfg)]
        try:
            run_on_hosts(db_specs(host, cfg), rep, lambda conn, spec: _restore(conn, cfg, rep, from_, apps), app)
        finally:
            for _, conn in apps:
                conn.close()
        return
    run_on_hosts(host_specs(host, cfg), rep, lambda conn, spec: _restore(conn, cfg, rep, from_), app)


def side_units(cfg) -> tuple:
    """The app's [processes] services and [schedule] timers: stopped with the web process
    during a restore, so a worker or a job never writes into a half-restored database."""
    from toolkit.process_units import process_units, timer_units

    return process_units(cfg) + timer_units(cfg)


def _restore(conn, cfg, rep, name: str, app_hosts=None) -> str:
    """Restore backup `name` on `conn`'s host, with the app stopped on `app_hosts` ((name, conn)
    pairs; default: the same host; with a db host, the app and worker hosts), each under the
    deploy lock."""
    from toolkit import audit, lock
    from toolkit.release_commands import health_check, journal, restart_script
    from toolkit.remote import sh
    from toolkit.tasking import site_url

    apps = [c for _, c in app_hosts] if app_hosts is not None else [conn]
    names = {id(c): n for n, c in app_hosts or ()}
    where = lambda c: f" on {names[id(c)]}" if id(c) in names else ""  # noqa: E731
    held = []
    try:
        for app_conn in apps:
            held.append((app_conn, lock.take(app_conn, cfg)))
        with rep.step("back up the current data first") as st:
            before = take_backup(conn, cfg, st)
        others = side_units(cfg)
        stopped = []
        start = restart_script(cfg) + "".join(f" && systemctl start {q(u)}" for u in others)
        if app_hosts is not None:
            # Several hosts: a start right after the stop may fail while the stopped unit's
            # cgroup is still going (seen in containers: 219/CGROUP); once more after 2 s.
            start = f"{{ {start}; }} || {{ sleep 2 && {start}; }}"
        try:
            for app_conn in apps:
                with rep.step("stop the app" + where(app_conn)) as st:
                    sh(app_conn, "systemctl stop " + " ".join(q(u) for u in cfg.layout.units + others),
                       what="stopping the app", timeout=120)
                    stopped.append(app_conn)
                    st.changed(", ".join(cfg.layout.units + others))
            with rep.step(f"restore {name}") as st:
                on_host(conn, cfg, "restore", f"restoring {name}", name=name)
                st.changed(f"(the data before it: {before})")
        except BaseException:
            _start_all(rep, stopped, start, where)  # the restore's error is the one to show
            raise
        failure = _start_all(rep, stopped, start, where)
        if failure is not None:
            raise failure
        for app_conn in apps:
            with rep.step("health check" + where(app_conn)) as st:
                health = health_check(app_conn, cfg)
                audit.record(app_conn, cfg, "db.restore", name,
                             "ok" if health.ok else f"answers {health.status or 'nothing'}")
                if not health.ok:
                    raise DeployError(f"the app answers {health.status or 'nothing'}{where(app_conn)} after the "
                                      f"restore of {name}; the data before it is backup {before}",
                                      next_task("db.restore", "--from", before),
                                      health.body + "\n" + journal(app_conn, cfg))
                st.info(f"{health.status} from {cfg.health.path}")
    finally:
        for app_conn, lock_held in held:
            lock.release_if_ours(app_conn, cfg, lock_held)
    return site_url(cfg, conn) if app_hosts is None else ""


def _start_all(rep, conns, start: str, where):
    """Start the app on every host in `conns`, even when one fails; the first failure, or None."""
    from toolkit.remote import sh

    failure = None
    for app_conn in conns:
        try:
            with rep.step("start the app" + where(app_conn)) as st:
                sh(app_conn, start, what="starting the app", timeout=300)
                st.changed()
        except Exception as exc:  # noqa: BLE001 - the caller raises it once every host was tried
            failure = failure or exc
    return failure


@task(klass=HelpTask, iterable=["host"], name="shell", help={
    "host": HOST_HELP["db.shell"], "app": APP_HELP,
    "sql": "run this SQL and exit instead of opening the interactive shell",
    "file": "sqlite: the database file under shared/data (default: the first one found)",
})
def shell(c, host=None, app=".", sql=None, file=None):
    """Open the database's shell as the app: psql (the app's role) or sqlite3."""
    from toolkit.app_commands import wants_tty

    cfg = load_config(app, check_secrets=False)
    line = db_host_shell_line if on_db_host(cfg) else shell_line
    run_attached(db_specs(host, cfg), app, lambda conn: line(conn, cfg, sql, file),
                 wants_tty(sys.stdin, sys.stdout) and not sql)


def db_host_shell_line(conn, cfg, sql: str | None, file: str | None = None) -> str:
    """psql on the db host, where the app user does not exist: as the postgres user (peer
    authentication) in the app's database, switched to the app's role at once (PGOPTIONS), so
    what the shell creates belongs to the app."""
    name = cfg.layout.db_name
    argv = ["psql", "-X", "-d", name] + (["-v", "ON_ERROR_STOP=1", "-c", sql] if sql else [])
    error = "error: psql is not on the database host: provision it (invoke provision --limit db)"
    check = f"command -v psql >/dev/null || {{ echo {q(error)} >&2; exit 127; }}"
    return (f"{check}; cd / && exec runuser -u postgres -- env PGOPTIONS={q('-c role=' + name)} "
            + " ".join(q(a) for a in argv))


def shell_line(conn, cfg, sql: str | None, file: str | None) -> str:
    """The line opening psql or sqlite3 as the app user (the SQL, if any, as its argument)."""
    app = q(cfg.name)
    if cfg.database.postgresql:
        argv = ["psql", "-X", "-d", cfg.layout.db_name] + (["-v", "ON_ERROR_STOP=1", "-c", sql] if sql else [])
        shell = "psql"
    else:
        argv = ["sqlite3", "-bail", f"{cfg.layout.data_dir}/{file or first_sqlite(conn, cfg)}"] + ([sql] if sql else [])
        shell = "sqlite3"
    hint = ("provision the host (invoke provision)" if cfg.database.postgresql else
            "set [database] backups = true in deploy.toml (it installs sqlite3), then invoke provision")
    error = f"error: {shell} is not on the host: {hint}"
    check = f"command -v {shell} >/dev/null || {{ echo {q(error)} >&2; exit 127; }}"
    # cd /: runuser keeps root's folder, which the app user may not enter
    return f"{check}; cd / && exec runuser -u {app} -- " + " ".join(q(a) for a in argv)


def first_sqlite(conn, cfg) -> str:
    found = [f for f in on_host(conn, cfg, "files", "finding the sqlite databases", timeout=60).splitlines() if f]
    if not found:
        raise DeployError(f"no sqlite database in {cfg.layout.data_dir} yet (the app makes it there, or "
                          f"[app] shared links it there)", next_task("status"))
    return found[0]
