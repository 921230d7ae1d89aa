"""The database host of deploy.toml [hosts] (roles/postgres.py db_host_plan, toolkit/db_host.py):
pure plans on plain data. tests/integration/test_fleet_db.py proves them on sandbox hosts."""

import os
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from roles import postgres  # noqa: E402
from roles.wanted import Wanted  # noqa: E402
from toolkit import db_host  # noqa: E402
from toolkit.config import load_app_config  # noqa: E402
from toolkit.facts.files import FileFact  # noqa: E402
from toolkit.facts.hardening import HostHardening, UfwRule  # noqa: E402
from toolkit.facts.host import HostFacts, UnitState  # noqa: E402
from toolkit.facts.postgres import PgHba, PgHbaState, PostgresState, scram_matches, scram_verifier  # noqa: E402
from toolkit.onhost import envfile, program  # noqa: E402
from toolkit.render import render_all  # noqa: E402

FLASK = REPO / "examples" / "flask"
DEBIAN_HBA = """# PostgreSQL Client Authentication Configuration File
local   all             postgres                                peer
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
"""
APPS = ("10.78.1.8", "10.78.1.10")
PRIVATE = "10.78.1.12"
PASSWORD = "p" * 40


def config(tmp_path, toml='[database]\nengine = "postgresql"\n'):
    app = tmp_path / "shop"
    if not app.exists():
        shutil.copytree(FLASK, app)
    (app / "deploy.toml").write_text('[app]\nname = "shop"\n' + toml)
    return load_app_config(app)


def ufw(*rules, installed=True):
    return HostHardening(ufw_rules=tuple(rules), ufw_default_input="DROP" if installed else "", ufw_enabled=installed)


def done_backups(wanted):
    import hashlib
    lay = wanted.layout
    files = {lay.backups_dir: FileFact(lay.backups_dir, exists=True, kind="dir", mode=0o700, owner="root",
                                       group="root"),
             lay.backup_program: FileFact(lay.backup_program, exists=True, kind="file", mode=0o600, owner="root",
                                          group="root", sha256=hashlib.sha256(program("db_backup").encode()).hexdigest())}
    return HostFacts(files=files, units={lay.backup_timer: UnitState("enabled", "active")})


def plan(tmp_path, pg=PostgresState(), hba=PgHbaState("/etc/postgresql/15/main/pg_hba.conf", DEBIAN_HBA),
         hardening=None, kept="", clients=APPS, facts=None):
    cfg = config(tmp_path)
    wanted = db_host.wanted_for(cfg)
    db = postgres.DbHost(private=PRIVATE, clients=clients, password=PASSWORD)
    return wanted, postgres.db_host_plan(facts or HostFacts(), wanted, db, pg, hba, hardening or ufw(), kept)


# -- pg_hba.conf -------------------------------------------------------------------------------

def test_the_hba_block_lets_only_the_apps_role_into_its_database_from_each_client():
    block = postgres.hba_block("shop", APPS)
    lines = [line.split() for line in block.splitlines() if not line.startswith("#")]
    assert lines == [["host", "shop", "shop", "10.78.1.8/32", "scram-sha-256"],
                     ["host", "shop", "shop", "10.78.1.10/32", "scram-sha-256"]]


def test_the_block_is_appended_once_and_replaced_keeping_the_rest():
    once = postgres.hba_with(DEBIAN_HBA, "shop", APPS)
    assert once.startswith(DEBIAN_HBA) and once.count("10.78.1.8/32") == 1
    assert postgres.hba_with(once, "shop", APPS) == once  # idempotent
    fewer = postgres.hba_with(once, "shop", ("10.78.1.8",))
    assert "10.78.1.10/32" not in fewer and "10.78.1.8/32" in fewer and fewer.startswith(DEBIAN_HBA)
    # Another app's block on the same server is left alone.
    both = postgres.hba_with(fewer, "blog", ("10.78.1.9",))
    assert "10.78.1.8/32" in postgres.hba_with(both, "blog", ()) and "blog" not in postgres.hba_with(both, "blog", ())
    assert postgres.hba_with(once, "shop", ()).strip() == DEBIAN_HBA.strip()


def test_hba_change_rewrites_the_servers_file_as_postgres_and_reloads(tmp_path):
    state = PgHbaState("/etc/postgresql/15/main/pg_hba.conf", DEBIAN_HBA)
    (change,) = postgres.hba_change(state, "shop", APPS)
    (written,) = change.files
    assert (written.path, written.owner, written.mode) == (state.path, "postgres", 0o640)
    assert "systemctl reload postgresql.service" == change.script
    assert postgres.hba_change(PgHbaState(state.path, written.content), "shop", APPS) == []


def test_pg_hba_fact_reads_the_path_then_the_file():
    state = PgHba().parse(["/etc/postgresql/15/main/pg_hba.conf", "local all all peer", ""])
    assert state == PgHbaState("/etc/postgresql/15/main/pg_hba.conf", "local all all peer\n\n")
    assert PgHba().parse([]) == PgHbaState()


# -- ufw ---------------------------------------------------------------------------------------

def test_ufw_lets_5432_in_from_the_clients_only_marked_as_the_apps():
    (change,) = postgres.firewall_changes(ufw(), APPS, "shop")
    assert change.script == (
        "ufw allow from 10.78.1.8 to any port 5432 proto tcp comment 'pronghorn shop' >/dev/null && "
        "ufw allow from 10.78.1.10 to any port 5432 proto tcp comment 'pronghorn shop' >/dev/null")
    done = ufw(*(UfwRule("allow", "tcp", "5432", source=a, comment="pronghorn shop") for a in APPS))
    assert postgres.firewall_changes(done, APPS, "shop") == []


def test_a_host_that_is_no_longer_a_client_loses_its_rule_another_apps_stay_and_5432_open_to_all_goes():
    have = ufw(UfwRule("allow", "tcp", "5432", source="10.78.1.8", comment="pronghorn shop"),
               UfwRule("allow", "tcp", "5432", source="10.78.1.99", comment="pronghorn shop"),
               UfwRule("allow", "tcp", "5432", source="10.78.1.50", comment="pronghorn blog"),
               UfwRule("allow", "tcp", "5432"), UfwRule("allow", "tcp", "22"))
    (change,) = postgres.firewall_changes(have, ("10.78.1.8",), "shop")
    assert "ufw delete allow from 10.78.1.99 to any port 5432 proto tcp" in change.script
    assert "ufw delete allow 5432/tcp " in change.script
    assert "10.78.1.50" not in change.script  # the blog app's client, on the same db host
    assert "22" not in change.script and "allow from 10.78.1.8 " not in change.script


def test_ufw_comments_are_read_back_from_the_rules_file():
    from toolkit.facts.hardening import parse_ufw

    rules, _, _ = parse_ufw(["### tuple ### allow tcp 5432 0.0.0.0/0 any 10.78.1.8 in comment=70726f6e67686f726e2073686f70",
                             "### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in"])
    assert rules == (UfwRule("allow", "tcp", "5432", "in", "10.78.1.8", "pronghorn shop"),
                     UfwRule("allow", "tcp", "22", "in", "any", ""))


def test_no_ufw_no_firewall_change():
    assert postgres.firewall_changes(ufw(installed=False), APPS, "shop") == []


# -- the whole plan ----------------------------------------------------------------------------

def test_a_fresh_db_host_gets_credentials_server_listening_privately_hba_ufw_and_backups(tmp_path):
    wanted, changes = plan(tmp_path, hba=PgHbaState())
    assert [c.what for c in changes] == [wanted.layout.db_credentials, "PostgreSQL role and database shop",
                                         "allow 5432/tcp from 10.78.1.8, 5432/tcp from 10.78.1.10", "backups",
                                         "db-backup.py", "shop-backup.timer"]
    kept = changes[0].files[0]
    assert (kept.mode, kept.owner) == (0o600, "root")
    assert envfile.parse(kept.content)["DATABASE_URL"] == f"postgresql://shop:{PASSWORD}@{PRIVATE}:5432/shop"
    sql = changes[1].files[0].content
    assert f"listen_addresses = 'localhost,{PRIVATE}'" in sql
    assert scram_matches(PASSWORD, re.search(r"PASSWORD '([^']+)'", sql).group(1))
    for change in changes:  # the password only ever travels inside a file, never in a command
        assert PASSWORD not in change.script and PASSWORD not in change.what + change.why


def test_a_provisioned_db_host_changes_nothing(tmp_path):
    url = f"postgresql://shop:{PASSWORD}@{PRIVATE}:5432/shop"
    pg = PostgresState(running=True, listen=f"localhost,{PRIVATE}", role_exists=True, db_owner="shop",
                       role_verifier=scram_verifier(PASSWORD, os.urandom(16)))
    hba = PgHbaState("/etc/postgresql/15/main/pg_hba.conf", postgres.hba_with(DEBIAN_HBA, "shop", APPS))
    rules = ufw(*(UfwRule("allow", "tcp", "5432", source=a, comment="pronghorn shop") for a in APPS))
    wanted = db_host.wanted_for(config(tmp_path))
    _, changes = plan(tmp_path, pg=pg, hba=hba, hardening=rules, kept=url, facts=done_backups(wanted))
    assert changes == []


def test_a_server_listening_on_localhost_only_is_moved_to_the_private_address_too(tmp_path):
    pg = PostgresState(running=True, listen="localhost", role_exists=True, db_owner="shop",
                       role_verifier=scram_verifier(PASSWORD, os.urandom(16)))
    _, changes = plan(tmp_path, pg=pg)
    (server,) = [c for c in changes if c.what.startswith("PostgreSQL")]
    assert server.why == f"listen_addresses localhost -> localhost,{PRIVATE}"
    assert "systemctl restart postgresql.service" in server.script


def test_the_single_host_plan_leaves_a_host_of_the_inventory_to_the_db_host(tmp_path):
    cfg = config(tmp_path)
    wanted = Wanted.of(cfg, render_all(cfg))
    assert postgres.plan(HostFacts(), wanted, PostgresState()) != []
    from dataclasses import replace
    assert postgres.plan(HostFacts(), replace(wanted, roles=("app",)), PostgresState()) == []


# -- what the app hosts get --------------------------------------------------------------------

def test_an_app_hosts_env_gets_the_db_hosts_url(tmp_path):
    cfg = config(tmp_path)
    url = f"postgresql://shop:{PASSWORD}@{PRIVATE}:5432/shop"
    files = render_all(cfg, {"env": {"DATABASE_URL": "postgresql://shop:old@localhost:5432/shop"},
                             **db_host.database_vars(url)})
    env = envfile.parse({f.path: f for f in files}[cfg.layout.env_file].content)
    assert env["DATABASE_URL"] == url


def test_the_kept_url_is_the_one_for_this_apps_role_only():
    assert db_host.kept_url({"DATABASE_URL": "postgresql://shop:pw@10.78.1.12:5432/shop"}, "shop")
    assert db_host.kept_url({"DATABASE_URL": "postgresql://blog:pw@10.78.1.12:5432/blog"}, "shop") == ""
    assert db_host.kept_url({}, "shop") == ""
    password = db_host.new_password()
    assert len(password) == 40 and password.isalnum() and password != db_host.new_password()


def test_clients_are_the_app_and_worker_hosts_private_addresses(tmp_path):
    from toolkit.fleet import Address
    from toolkit.inventory import Inventory

    inventory = Inventory.of({"lb": ["lb"], "app": ["a1", "a2"], "worker": ["w"], "db": ["db"]}, "10.78.0.0/16")
    cfg = type("Cfg", (), {"inventory": inventory})()
    addresses = {h: Address(f"10.78.1.{n}", h) for n, h in enumerate(["lb", "a1", "a2", "w", "db"], start=1)}
    assert db_host.clients(cfg, addresses) == ("10.78.1.2", "10.78.1.3", "10.78.1.4")


def test_the_db_host_gets_the_backup_units_and_no_app_files(tmp_path):
    wanted = db_host.wanted_for(config(tmp_path))
    assert sorted(f.path.rsplit("/", 1)[-1] for f in wanted.files) == ["shop-backup.service", "shop-backup.timer"]
    assert wanted.roles == ("db",)


def test_app_and_worker_hosts_get_the_url_and_the_db_host_gets_what_to_apply():
    url = f"postgresql://shop:{PASSWORD}@{PRIVATE}:5432/shop"
    database = db_host.Database("sandbox-db", PRIVATE, APPS, url)
    assert db_host.host_vars(database, "sandbox-app1", ("app", "worker")) == {"database_url": url}
    assert db_host.host_vars(database, "sandbox-db", ("db",)) == {"db_host": database}
    assert db_host.host_vars(database, "sandbox-lb", ("lb",)) == {}
    assert db_host.host_vars(None, "sandbox-app1", ("app",)) == {}
    assert database.password == PASSWORD and PASSWORD not in repr(database)


def test_without_a_db_host_or_postgresql_there_is_no_database_to_read(tmp_path):
    from toolkit.inventory import Inventory

    cfg = config(tmp_path)
    never = lambda host: pytest.fail("no host should be contacted")  # noqa: E731
    assert db_host.read(cfg, {}, never) is None  # single host: [app] hosts
    multi = type("Cfg", (), {"inventory": Inventory.of({"app": ["a1"]}, ""), "database": cfg.database,
                             "layout": cfg.layout})()
    assert db_host.read(multi, {}, never) is None


# -- the db.* tasks with a db host ---------------------------------------------------------------

def fleet_config(tmp_path):
    return config(tmp_path, '[database]\nengine = "postgresql"\n\n[hosts]\nlb = ["sandbox-lb"]\n'
                            'app = ["sandbox-app1", "sandbox-app2"]\ndb = ["sandbox-db"]\n\n'
                            '[network]\nprivate = "10.78.0.0/16"\n')


def test_db_tasks_work_on_the_db_host_and_restore_stops_the_app_hosts(tmp_path):
    from toolkit import tasks_db

    cfg = fleet_config(tmp_path)
    assert tasks_db.on_db_host(cfg)
    assert [str(s) for s in tasks_db.db_specs(None, cfg)] == ["sandbox-db"]
    assert [str(s) for s in tasks_db.app_specs(cfg)] == ["sandbox-app1", "sandbox-app2"]
    (tmp_path / "one").mkdir()
    assert not tasks_db.on_db_host(config(tmp_path / "one"))  # a single host keeps its own database


def test_db_shell_on_the_db_host_is_psql_as_postgres_in_the_apps_role(tmp_path):
    from toolkit import tasks_db

    line = tasks_db.db_host_shell_line(None, fleet_config(tmp_path), "select 1")
    assert "runuser -u postgres -- env PGOPTIONS='-c role=shop' psql -X -d shop" in line
    assert line.endswith("-c 'select 1'")


def test_a_restore_starts_every_app_host_again_even_when_one_fails_to_start(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from toolkit import audit, lock, release_commands, remote, tasks_db
    from toolkit.errors import RemoteError
    from toolkit.report import Reporter

    cfg = fleet_config(tmp_path)
    db, app1, app2 = (SimpleNamespace(host=h) for h in ("db", "app1", "app2"))
    ran = []

    def sh(conn, script, **kw):
        ran.append((conn.host, script.split()[1] if script.startswith("systemctl stop") else "start"))
        if conn is app1 and "restart" in script:
            raise RemoteError("starting the app", 1, "Job for shop.service failed")
        return SimpleNamespace(ok=True, exited=0, stdout="", stderr="")

    monkeypatch.setattr(remote, "sh", sh)
    monkeypatch.setattr(lock, "take", lambda conn, cfg: f"lock-{conn.host}")
    released = []
    monkeypatch.setattr(lock, "release_if_ours", lambda conn, cfg, held: released.append(held))
    monkeypatch.setattr(tasks_db, "take_backup", lambda conn, cfg, st: "20261202T000000Z")
    monkeypatch.setattr(tasks_db, "on_host", lambda conn, cfg, *a, **k: ran.append((conn.host, "restore")) or "")
    monkeypatch.setattr(release_commands, "health_check", lambda conn, cfg: SimpleNamespace(ok=True, status=200))
    monkeypatch.setattr(audit, "record", lambda *a, **k: None)
    with pytest.raises(RemoteError):
        tasks_db._restore(db, cfg, Reporter(), "20261201T000000Z", [("sandbox-app1", app1), ("sandbox-app2", app2)])
    assert ran == [("app1", "stop"), ("app2", "stop"), ("db", "restore"), ("app1", "start"), ("app2", "start")]
    assert sorted(released) == ["lock-app1", "lock-app2"]


def test_a_server_installed_in_the_same_run_is_restarted_to_listen_on_the_private_address(tmp_path):
    _, changes = plan(tmp_path, pg=PostgresState())  # not answering yet: installed by this run
    (server,) = [c for c in changes if c.what.startswith("PostgreSQL")]
    assert server.script.endswith("systemctl restart postgresql.service")
    # ...while a single host's new server already listens where it should (no restart).
    cfg = config(tmp_path)
    single = postgres.plan(HostFacts(), Wanted.of(cfg, render_all(cfg)), PostgresState())
    assert "restart" not in single[0].script
