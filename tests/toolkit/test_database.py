"""[database]: the config keys, DATABASE_URL's generated password (kept, never shown), the
PostgreSQL role's plan, SCRAM verifiers, the backup units, and the on-host backup program's
sqlite backup / restore / pruning on real SQLite files."""

import datetime
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from roles import postgres  # noqa: E402
from roles.wanted import Wanted  # noqa: E402
from toolkit.config import ConfigError, load_app_config  # noqa: E402
from toolkit.facts.files import FileFact  # noqa: E402
from toolkit.facts.host import HostFacts, UnitState  # noqa: E402
from toolkit.facts.postgres import Postgres, PostgresState, scram_matches, scram_verifier  # noqa: E402
from toolkit.onhost import db_backup, envfile, program  # noqa: E402
from toolkit.render import MASK, render_all  # noqa: E402

FLASK = Path(__file__).resolve().parents[2] / "examples" / "flask"


def config(tmp_path, toml):
    app = tmp_path / "shop"
    shutil.copytree(FLASK, app)
    (app / "deploy.toml").write_text('[app]\nname = "shop"\n' + toml)
    return load_app_config(app)


def env_of(files, cfg):
    return envfile.parse({f.path: f for f in files}[cfg.layout.env_file].content)


# -- config ------------------------------------------------------------------------------------

def test_sqlite_is_the_default_and_asks_for_nothing(tmp_path):
    cfg = config(tmp_path, "")
    assert (cfg.database.engine, cfg.database.backups, cfg.database.backup_days) == ("sqlite", False, 14)
    files = render_all(cfg)
    assert "DATABASE_URL" not in env_of(files, cfg)
    assert not [f for f in files if "backup" in f.path]
    assert not postgres.needed(Wanted.of(cfg, files))


def test_postgresql_turns_daily_backups_on(tmp_path):
    cfg = config(tmp_path, '[database]\nengine = "postgresql"\nbackup_days = 30\n')
    assert (cfg.database.postgresql, cfg.database.backups, cfg.database.backup_days) == (True, True, 30)
    assert "postgresql" in Wanted.of(cfg, render_all(cfg)).all_packages


@pytest.mark.parametrize("toml, says", [
    ('[database]\nengine = "mysql"\n', 'expected one of "sqlite", "postgresql"'),
    ('[database]\nengine = "postgresql"\n[env]\nDATABASE_URL = "x"\n', "remove it from [env]"),
    ('secrets = ["DATABASE_URL"]\n[database]\nengine = "postgresql"\n', "remove it from [app] secrets"),
    ('[database]\nbackup_days = 0\n', "backup_days"),
])
def test_bad_database_config_says_what_to_fix(tmp_path, toml, says):
    with pytest.raises(ConfigError) as error:
        config(tmp_path, toml)
    assert says in str(error.value)


# -- DATABASE_URL ------------------------------------------------------------------------------

def test_database_url_is_generated_once_then_kept_from_the_host(tmp_path):
    cfg = config(tmp_path, '[database]\nengine = "postgresql"\n')
    url = env_of(render_all(cfg), cfg)["DATABASE_URL"]
    parts = urlsplit(url)
    assert (parts.scheme, parts.username, parts.hostname, parts.port, parts.path) == (
        "postgresql", "shop", "localhost", 5432, "/shop")
    assert re.fullmatch(r"[A-Za-z0-9]{40}", parts.password)
    assert env_of(render_all(cfg), cfg)["DATABASE_URL"] != url  # a new host: a new password
    kept = env_of(render_all(cfg, {"env": {"DATABASE_URL": url}}), cfg)["DATABASE_URL"]
    assert kept == url
    env = {f.path: f for f in render_all(cfg)}[cfg.layout.env_file]
    assert (env.mode, env.owner) == (0o600, "shop")


def test_a_render_for_review_masks_the_database_url(tmp_path):
    cfg = config(tmp_path, '[database]\nengine = "postgresql"\n')
    assert env_of(render_all(cfg, mask_secrets=True), cfg)["DATABASE_URL"] == MASK


def test_backup_units_run_daily_and_catch_up(tmp_path):
    cfg = config(tmp_path, '[database]\nengine = "postgresql"\nbackup_days = 7\n')
    files = {f.path: f.content for f in render_all(cfg)}
    timer = files["/etc/systemd/system/shop-backup.timer"]
    assert "OnCalendar=daily" in timer and "Persistent=true" in timer
    service = files["/etc/systemd/system/shop-backup.service"]
    assert f"ExecStart=/usr/bin/python3 {cfg.layout.backup_program} backup --engine postgresql" in service
    assert "--keep-days 7" in service and f"--to {cfg.layout.backups_dir}" in service


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze missing")
def test_backup_units_pass_systemd_analyze_verify(tmp_path):
    cfg = config(tmp_path, '[database]\nbackups = true\n')
    for f in render_all(cfg):
        if "backup" in f.path:
            (tmp_path / Path(f.path).name).write_text(f.content)
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "shop-backup.timer"),
                             str(tmp_path / "shop-backup.service")], capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and "db-backup.py" not in line]
    assert problems == []


# -- SCRAM -------------------------------------------------------------------------------------

def test_a_scram_verifier_opens_with_its_password_only():
    verifier = scram_verifier("pw-1", os.urandom(16))
    assert verifier.startswith("SCRAM-SHA-256$4096:")
    assert scram_matches("pw-1", verifier)
    assert not scram_matches("pw-2", verifier)
    assert not scram_matches("pw-1", "md5abcdef") and not scram_matches("pw-1", "")


def test_postgres_fact_parses_psql_lines():
    state = Postgres("shop").parse(["listen localhost", "role SCRAM-SHA-256$4096:x$y:z", "db shop f"])
    assert state == PostgresState(running=True, listen="localhost", role_verifier="SCRAM-SHA-256$4096:x$y:z",
                                  role_exists=True, db_owner="shop", public_connect=False)
    assert Postgres("shop").parse([]) == PostgresState()


# -- the role's plan ---------------------------------------------------------------------------

def provisioned(cfg, files):
    """HostFacts of a host where the backups folder, program and timer are as wanted."""
    lay = cfg.layout
    src = program("db_backup")
    import hashlib
    return HostFacts(
        files={lay.backups_dir: FileFact(lay.backups_dir, exists=True, kind="dir", mode=0o700, owner="root",
                                          group="root"),
               lay.backup_program: FileFact(lay.backup_program, exists=True, kind="file", mode=0o600,
                                            owner="root", group="root",
                                            sha256=hashlib.sha256(src.encode()).hexdigest())},
        units={lay.backup_timer: UnitState("enabled", "active")})


def test_a_fresh_host_gets_server_role_database_backups_and_timer(tmp_path):
    cfg = config(tmp_path, '[database]\nengine = "postgresql"\n')
    files = render_all(cfg)
    password = urlsplit(env_of(files, cfg)["DATABASE_URL"]).password
    changes = postgres.plan(HostFacts(), Wanted.of(cfg, files), PostgresState())
    assert [c.what for c in changes] == ["PostgreSQL role and database shop", "backups", "db-backup.py",
                                         "shop-backup.timer"]
    setup = changes[0]
    assert setup.tar_on_stdin and "psql" in setup.script and "runuser -u postgres" in setup.script
    sql = setup.files[0].content
    assert password not in setup.script and password not in sql  # only its SCRAM hash travels
    verifier = re.search(r"PASSWORD '([^']+)'", sql).group(1)
    assert scram_matches(password, verifier)
    assert 'CREATE DATABASE "shop" OWNER "shop"' in sql and "REVOKE CONNECT" in sql
    assert "listen_addresses = 'localhost'" in sql


def test_a_provisioned_host_changes_nothing(tmp_path):
    cfg = config(tmp_path, '[database]\nengine = "postgresql"\n')
    files = render_all(cfg)
    password = urlsplit(env_of(files, cfg)["DATABASE_URL"]).password
    pg = PostgresState(running=True, listen="localhost", role_exists=True, db_owner="shop",
                       role_verifier=scram_verifier(password, os.urandom(16)))
    wanted = Wanted.of(cfg, files)
    assert postgres.plan(provisioned(cfg, files), wanted, pg) == []
    rekey = postgres.plan(provisioned(cfg, files), wanted, PostgresState(
        running=True, listen="*", role_exists=True, db_owner="shop", public_connect=True,
        role_verifier=scram_verifier("another", os.urandom(16))))
    assert [c.why for c in rekey] == ["listen_addresses * -> localhost, password differs from .env, "
                                      "open to every role"]
    assert "systemctl restart postgresql.service" in rekey[0].script


# -- the on-host backup program, on real sqlite files ------------------------------------------

def args(tmp_path, command, **extra):
    values = dict(engine="sqlite", db="shop", app="", data=str(tmp_path / "data"), to=str(tmp_path / "backups"),
                  keep_days=14, name="", command=command)
    values.update(extra)
    return SimpleNamespace(**values)


def rows(path):
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("select note from notes order by note")]


def test_sqlite_backup_then_restore_brings_the_old_rows_back(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    db_path = data / "sub" / "app.db"
    db = sqlite3.connect(db_path)
    db.execute("pragma journal_mode=wal")
    db.execute("create table notes (note text)")
    db.execute("insert into notes values ('before')")
    db.commit()
    (data / "notes.txt").write_text("not a database")
    os.umask(0o022)
    name = db_backup.backup(args(tmp_path, "backup"))  # while the app's connection is open
    folder = tmp_path / "backups" / name
    assert [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()] == ["sub/app.db"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    db.execute("delete from notes")
    db.execute("insert into notes values ('after')")
    db.commit()
    db.close()
    db_backup.restore(args(tmp_path, "restore", name=name))
    assert rows(db_path) == ["before"]
    # A WAL database that nobody has open backs up too.
    again = db_backup.backup(args(tmp_path, "backup"), now=datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc))
    assert rows(tmp_path / "backups" / again / "sub" / "app.db") == ["before"]
    with pytest.raises(db_backup.Failed, match="no backup named"):
        db_backup.restore(args(tmp_path, "restore", name="20000101T000000Z"))


def test_backups_older_than_keep_days_go_but_the_newest_stays(tmp_path):
    folder = tmp_path / "backups"
    for name in ("20260101T000000Z", "20260301T000000Z", "20260310T000000Z", "20260101T000000Z.partial"):
        (folder / name).mkdir(parents=True)
    now = datetime.datetime(2026, 3, 12, tzinfo=datetime.timezone.utc)
    db_backup.prune(str(folder), 5, now)
    assert sorted(os.listdir(folder)) == ["20260310T000000Z"]
    db_backup.prune(str(folder), 1, now + datetime.timedelta(days=100))
    assert sorted(os.listdir(folder)) == ["20260310T000000Z"]  # the newest is always kept


def test_the_program_runs_as_python3_c_and_lists_backups(tmp_path):
    (tmp_path / "data").mkdir()
    sqlite3.connect(tmp_path / "data" / "db.sqlite3").execute("create table t (x)").connection.commit()
    base = [sys.executable, "-c", program("db_backup")]
    common = ["--engine", "sqlite", "--data", str(tmp_path / "data"), "--to", str(tmp_path / "backups")]
    made = subprocess.run(base + ["backup", *common], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    name = made.stdout.split()[0]
    listed = subprocess.run(base + ["list", *common], capture_output=True, text=True, timeout=60)
    assert listed.stdout.split()[0] == name and listed.stdout.split()[2] == "db.sqlite3"
    files = subprocess.run(base + ["files", *common], capture_output=True, text=True, timeout=60)
    assert files.stdout.strip() == "db.sqlite3"
    bad = subprocess.run(base + ["restore", *common, "--name", "nope"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith("error: no backup named 'nope'")


# -- the tasks' command lines ------------------------------------------------------------------

def test_db_shell_is_psql_as_the_app_by_peer_authentication(tmp_path):
    from toolkit.tasks_db import shell_line

    cfg = config(tmp_path, '[database]\nengine = "postgresql"\n')
    line = shell_line(None, cfg, "select 1", None)
    assert line.endswith("exec runuser -u shop -- psql -X -d shop -v ON_ERROR_STOP=1 -c 'select 1'")
    assert "DATABASE_URL" not in line and "PGPASSWORD" not in line
    sqlite = shell_line(None, config(tmp_path / "2", ""), None, "db.sqlite3")
    assert sqlite.endswith("runuser -u shop -- sqlite3 -bail /srv/shop/shared/data/db.sqlite3")
    missing = subprocess.run(["sh", "-c", sqlite.replace("command -v sqlite3", "command -v no-such-program-x")],
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 127 and "set [database] backups = true" in missing.stderr


def test_a_backup_for_an_app_not_on_the_host_says_so(tmp_path):
    with pytest.raises(db_backup.Failed, match="not deployed here yet"):
        db_backup.as_app("no-such-user-xyz", lambda: b"")


def test_backups_turned_off_retire_the_timer_but_keep_the_backups(tmp_path):
    on = config(tmp_path, '[database]\nbackups = true\n')
    facts = provisioned(on, render_all(on))
    off = config(tmp_path / "off", "")
    changes = postgres.plan(facts, Wanted.of(off, render_all(off)), None)
    assert [c.what for c in changes] == ["shop-backup.timer"]
    assert "systemctl disable" in changes[0].script and "shop-backup.timer" in changes[0].script
    assert off.layout.backups_dir not in changes[0].script
    assert postgres.plan(HostFacts(), Wanted.of(off, render_all(off)), None) == []  # never had one
