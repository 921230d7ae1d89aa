"""[database] on a real host, end to end: data written, backed up, changed, restored, the old data
back; for PostgreSQL (the server on localhost only, DATABASE_URL's password in the 0600 .env
and nowhere in the deploy's output or `ps`) and for sqlite (a tiny app writing its file in
shared/data). Each on a fresh sandbox.
"""

import re
import shlex

import pytest
import requests

from tests.integration.helpers import invoke, on_host

pytestmark = pytest.mark.integration

# A tiny WSGI app: GET / lists the notes in APP_DATA_DIR/notes.db, POST /?note=X adds one.
NOTES_APP = '''import os, sqlite3
from urllib.parse import parse_qs

def application(environ, start_response):
    db = sqlite3.connect(os.path.join(os.environ["APP_DATA_DIR"], "notes.db"))
    db.execute("create table if not exists notes (note text)")
    if environ["REQUEST_METHOD"] == "POST":
        db.execute("insert into notes values (?)", (parse_qs(environ["QUERY_STRING"])["note"][0],))
        db.commit()
    body = ",".join(r[0] for r in db.execute("select note from notes order by rowid")).encode()
    db.close()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def make_app(folder, name, database_toml):
    folder.mkdir()
    (folder / "app.py").write_text(NOTES_APP)
    (folder / "requirements.txt").write_text("")
    (folder / "deploy.toml").write_text(f'[app]\nname = "{name}"\nframework = "wsgi"\nwsgi = "app:application"\n'
                                        f"\n[database]\n{database_toml}")
    return folder


def run_ok(*args):
    done = invoke(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def backup_name(output):
    found = re.search(r"(\d{8}T\d{6}Z(-\d+)?) \(", output)
    assert found, output
    return found.group(1)


def test_postgresql_backup_and_restore(fresh_sandbox, tmp_path):
    box, name = fresh_sandbox, "pgapp"
    app = make_app(tmp_path / name, name, 'engine = "postgresql"\n')
    host = ["--host", box.ssh_alias, "--app", str(app)]

    deployed = run_ok("deploy", *host)
    env = on_host(box, f"stat -c '%a %U' /srv/{name}/shared/.env; grep ^DATABASE_URL= /srv/{name}/shared/.env")
    mode, url = env.stdout.splitlines()
    assert mode == f"600 {name}"
    password = re.fullmatch(rf"DATABASE_URL='postgresql://{name}:([A-Za-z0-9]{{40}})@localhost:5432/{name}'",
                            url).group(1)
    assert password not in deployed

    # Listening on loopback only, v4 and v6.
    listening = on_host(box, "ss -Hltn 'sport = :5432' | awk '{print $4}' | sort").stdout.split()
    assert listening == ["127.0.0.1:5432", "[::1]:5432"], listening
    # The password opens the role over TCP, as the app connects (psql gets it in its environment).
    login = ("import os, subprocess, urllib.parse as u; p = u.urlsplit(os.environ['DATABASE_URL']); "
             "raise SystemExit(subprocess.run(['psql', '-X', '-h', '::1', '-U', p.username, '-d', p.path[1:], "
             "'-Atc', 'select current_user'], env={**os.environ, 'PGPASSWORD': p.password}).returncode)")
    from toolkit.onhost import program
    as_app = " ".join(shlex.quote(a) for a in ["python3", "-c", program("env_exec"), f"/srv/{name}/shared/.env",
                                              "python3", "-c", login])
    checked = on_host(box, f"cd / && runuser -u {name} -- {as_app}")
    assert checked.stdout.strip() == name, checked.stdout + checked.stderr

    run_ok("db.shell", *host, "--sql", "create table notes (note text); insert into notes values ('before')")
    made = run_ok("db.backup", *host)
    name_before = backup_name(made)
    assert password not in made
    run_ok("db.shell", *host, "--sql", "delete from notes; insert into notes values ('after')")
    assert "after" in run_ok("db.shell", *host, "--sql", "select note from notes")

    restored = run_ok("db.restore", *host, "--from", name_before)
    assert "health check" in restored
    after = run_ok("db.shell", *host, "--sql", "select note from notes")
    assert "before" in after and "after" not in after
    assert name_before in run_ok("db.backups", *host)
    files = on_host(box, f"stat -c '%a %U %n' /srv/{name}/shared/backups /srv/{name}/shared/backups/{name_before} "
                         f"/srv/{name}/shared/backups/{name_before}/{name}.dump").stdout.split("\n")
    assert [f.split()[:2] for f in files if f] == [["700", "root"], ["700", "root"], ["600", "root"]]

    # The daily timer is on, and its service makes a backup too.
    assert on_host(box, f"systemctl is-enabled {name}-backup.timer").stdout.strip() == "enabled"
    ran = on_host(box, f"systemctl start {name}-backup.service && ls /srv/{name}/shared/backups | wc -l")
    assert ran.returncode == 0 and int(ran.stdout.strip()) >= 3, ran.stdout + ran.stderr  # + the restore's own

    assert password not in on_host(box, "ps -eo args").stdout
    again = run_ok("provision", *host)
    steps = [line.split()[0] for line in again.splitlines() if re.match(r"\s+\w+\s+database\s", line)]
    assert steps == ["ok"], again  # a second provision leaves the server, role and timer alone


def test_sqlite_backup_and_restore(fresh_sandbox, tmp_path):
    box, name = fresh_sandbox, "notes"
    # A worker besides the web process: stopped during the restore, running again after it.
    app = make_app(tmp_path / name, name, 'backups = true\n\n[processes]\nworker = "sleep 100000"\n')
    host = ["--host", box.ssh_alias, "--app", str(app)]
    run_ok("deploy", *host)
    base = f"http://{box.address}/"
    assert requests.post(base, params={"note": "before"}, timeout=20).text == "before"

    name_before = backup_name(run_ok("db.backup", *host))
    assert requests.post(base, params={"note": "after"}, timeout=20).text == "before,after"
    assert "before,after" in run_ok("db.shell", *host, "--sql", "select group_concat(note) from notes")

    worker_pid = on_host(box, f"systemctl show -p MainPID --value {name}-worker.service").stdout.strip()
    restored = run_ok("db.restore", *host, "--from", name_before)
    assert f"{name}-worker.service" in restored
    assert requests.get(base, timeout=20).text == "before"
    worker = on_host(box, f"systemctl is-active {name}-worker.service; "
                          f"systemctl show -p MainPID --value {name}-worker.service").stdout.split()
    assert worker[0] == "active" and worker[1] not in ("0", worker_pid), (worker, worker_pid)
    # The file is still the app's: it writes again after the restore.
    assert requests.post(base, params={"note": "again"}, timeout=20).text == "before,again"
    assert on_host(box, f"stat -c %U /srv/{name}/shared/data/notes.db").stdout.strip() == name
