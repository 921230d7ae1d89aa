"""The database host of deploy.toml [hosts]: PostgreSQL on its own host, reachable from the app
hosts only (toolkit/db_host.py, roles/postgres.py db_host_plan).

Four sandbox hosts on one private network (tests/integration/fleet.py): `lb`, `app1`, `app2`,
`db`. One `invoke deploy` of a small Flask app that keeps rows in PostgreSQL through
DATABASE_URL; then: rows written through the load balancer are read back by both app hosts (one
database, on the db host); the app hosts have no PostgreSQL server; the db host listens on
loopback and its private address only; a host on the network that is not an app host (the load
balancer) cannot connect, nor can this machine, and pg_hba refuses the app's role from any address
but the app hosts' even with the right password; the password is in no output; a second
provision changes nothing and keeps it.

Then HTTPS at the load balancer, on the same hosts (a second app, so no other fleet is brought
up): pebble (tests/integration/pebble.py) issues the load balancer's certificate during the
deploy; https through it answers from both app hosts, which see https; http redirects (the ACME
path excepted); HSTS; the app hosts hold no certificate; a rolling deploy fails no https request."""

import shlex
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest
import requests

from tests.integration import pebble as pebble_mod
from tests.integration.fleet import fleet  # noqa: F401  (the fixture)
from tests.integration.helpers import invoke, on_host

pytestmark = pytest.mark.integration

APP = "flaskdb"
CREDENTIALS = f"/etc/pronghorn/database/{APP}.env"

APP_PY = '''"""Rows in PostgreSQL through DATABASE_URL: POST /rows?text=... adds one, GET /rows lists them."""
import os
import socket

import psycopg
from flask import Flask, request

app = Flask(__name__)


def connect():
    return psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=10)


@app.get("/healthz")
def healthz():
    with connect() as db:
        db.execute("select 1")
    return "ok"


@app.post("/rows")
def add():
    with connect() as db:
        db.execute("create table if not exists notes (id serial primary key, text text not null)")
        db.execute("insert into notes (text) values (%s)", (request.args["text"],))
    return "added"


@app.get("/rows")
def rows():
    with connect() as db:
        found = [r[0] for r in db.execute("select text from notes order by id")]
    return {"host": socket.gethostname(), "rows": found}
'''

# A TCP connection to PORT on ADDRESS from a host: "connected" or why not (bounded by its timeout).
CONNECT = ("python3 -c \"import socket, sys\n"
           "try:\n socket.create_connection((sys.argv[1], 5432), timeout=3); print('connected')\n"
           "except OSError as e:\n print('refused:', e)\" {address}")


def deploy_toml(fleet):
    return (f'[app]\nname = "{APP}"\n\n[health]\npath = "/healthz"\n\n'
            f'[database]\nengine = "postgresql"\n\n'
            f'[hosts]\nlb = ["{fleet.lb.ssh_alias}"]\n'
            f'app = ["{fleet.app1.ssh_alias}", "{fleet.app2.ssh_alias}"]\n'
            f'db = ["{fleet.db.ssh_alias}"]\n\n'
            f'[network]\nprivate = "10.78.0.0/16"\n')


@pytest.fixture(scope="module")
def deployed(fleet, tmp_path_factory):
    app = tmp_path_factory.mktemp("fleet-db") / "app"
    app.mkdir()
    (app / "app.py").write_text(APP_PY)
    (app / "requirements.txt").write_text("flask>=3.0,<4\npsycopg[binary]>=3.2,<3.3\n")
    (app / "deploy.toml").write_text(deploy_toml(fleet))
    run = invoke("deploy", "--app", str(app), timeout=1800)
    assert run.returncode == 0, run.stdout + run.stderr
    return app, run


def lb_url(fleet, path):
    return f"http://{fleet.lb.address}{path}"


def app_url(box) -> str:
    line = on_host(box, f"grep ^DATABASE_URL= /srv/{APP}/shared/.env").stdout.strip()
    return line.partition("=")[2].strip("'\"")


def test_rows_written_through_one_app_host_are_read_by_both_from_the_db_host(fleet, deployed):
    text = f"note-{uuid.uuid4().hex[:8]}"
    assert requests.post(lb_url(fleet, f"/rows?text={text}"), timeout=20).text == "added"
    seen = {}
    for _ in range(12):  # the load balancer spreads these over both app hosts
        answer = requests.get(lb_url(fleet, "/rows"), timeout=20).json()
        seen[answer["host"]] = answer["rows"]
    assert set(seen) == {fleet.app1.name, fleet.app2.name}, seen
    assert all(text in rows for rows in seen.values()), seen
    # Both app hosts were given the db host's private address; neither runs a server of its own.
    for box in (fleet.app1, fleet.app2):
        assert f"@{fleet.db.private_address}:5432/{APP}" in app_url(box)
        assert on_host(box, "dpkg-query -W -f='${Status}' postgresql 2>/dev/null").stdout.strip() != \
            "install ok installed"
        assert on_host(box, "ss -Hltn 'sport = :5432'").stdout.strip() == ""


def test_the_db_host_listens_on_loopback_and_its_private_address_only(fleet, deployed):
    listening = on_host(fleet.db, "ss -Hltn 'sport = :5432'").stdout
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening.splitlines()}
    assert addresses <= {"127.0.0.1", "[::1]", fleet.db.private_address}, listening
    assert fleet.db.private_address in addresses  # (not its 10.77 address, not 0.0.0.0 or *)


def test_only_the_app_hosts_reach_the_database(fleet, deployed):
    db = fleet.db.private_address
    assert on_host(fleet.app1, CONNECT.format(address=db)).stdout.strip() == "connected"
    # The load balancer is on the private network but is not an app host: ufw drops it.
    assert on_host(fleet.lb, CONNECT.format(address=db)).stdout.startswith("refused")
    # This machine is on no private network, and the db host's own address has nothing on 5432.
    assert on_host(fleet.lb, CONNECT.format(address=fleet.db.address)).stdout.startswith("refused")
    for address in (db, fleet.db.address):
        with pytest.raises(OSError):
            socket.create_connection((address, 5432), timeout=3)
    rules = on_host(fleet.db, "ufw status | grep 5432").stdout.splitlines()
    # "5432/tcp  ALLOW  10.78.1.3  # pronghorn flaskdb": the app's own rules, one per app host
    assert sorted(line.split("#")[0].split()[-1] for line in rules) == sorted(
        [fleet.app1.private_address, fleet.app2.private_address]), rules
    assert all(line.endswith(f"# pronghorn {APP}") for line in rules), rules


def test_pg_hba_refuses_the_apps_role_from_any_other_address_even_with_its_password(fleet, deployed):
    # On the db host itself (past its firewall), with the app's own password, from the db host's
    # private address: no pg_hba line lets that address in. The password stays in the
    # environment of psql (read from the root-only file), never on a command line.
    login = (f"set -a; . {CREDENTIALS}; set +a; "
             "eval \"$(python3 -c \"import os, urllib.parse as u; p = u.urlsplit(os.environ['DATABASE_URL']); "
             "print(f'export PGHOST={p.hostname} PGUSER={p.username} PGDATABASE={p.path[1:]} "
             "PGPASSWORD={p.password}')\")\"; ")
    refused = on_host(fleet.db, login + "psql -XAtq -c 'select 1' 2>&1")
    assert refused.returncode != 0 and "no pg_hba.conf entry" in refused.stdout, refused.stdout
    assert f'host "{fleet.db.private_address}"' in refused.stdout
    # The same login over loopback is let in by the distribution's lines: the password is right.
    assert on_host(fleet.db, login + "PGHOST=127.0.0.1 psql -XAtq -c 'select 1'").stdout.strip() == "1"
    hba = on_host(fleet.db, "cat \"$(cd / && runuser -u postgres -- psql -XAtqc 'show hba_file')\"").stdout
    ours = [line.split() for line in hba.splitlines() if APP in line and not line.startswith("#")]
    assert sorted(ours) == sorted([["host", APP, APP, f"{box.private_address}/32", "scram-sha-256"]
                                   for box in (fleet.app1, fleet.app2)])


def test_the_password_is_kept_on_the_db_host_root_only_and_in_no_output(fleet, deployed):
    app, run = deployed
    password = app_url(fleet.app1).split(":")[2].split("@")[0]
    assert len(password) >= 32
    assert password not in run.stdout + run.stderr
    assert on_host(fleet.db, f"stat -c '%a %U' {CREDENTIALS}").stdout.strip() == "600 root"
    assert app_url(fleet.app2) == app_url(fleet.app1)
    again = invoke("provision", "--app", str(app), timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    assert password not in again.stdout + again.stderr
    assert app_url(fleet.app1).split(":")[2].split("@")[0] == password  # generated once, kept
    db_lines = [line for line in again.stdout.splitlines() if "database host" in line]
    assert db_lines and not any("changed" in line for line in db_lines), again.stdout


def test_backup_and_restore_run_on_the_db_host_with_the_app_hosts_stopped_meanwhile(fleet, deployed):
    app, _ = deployed
    kept = f"kept-{uuid.uuid4().hex[:8]}"
    assert requests.post(lb_url(fleet, f"/rows?text={kept}"), timeout=20).text == "added"
    run = invoke("db.backup", "--app", str(app), timeout=300)  # no --host: the db host
    assert run.returncode == 0, run.stdout + run.stderr
    assert fleet.db.ssh_alias in run.stdout
    listed = invoke("db.backups", "--app", str(app), timeout=120)
    assert listed.returncode == 0 and fleet.db.ssh_alias in listed.stdout, listed.stdout + listed.stderr
    name = listed.stdout.strip().splitlines()[-1].split()[0]
    assert on_host(fleet.db, f"test -d /srv/{APP}/shared/backups/{name}").returncode == 0
    assert on_host(fleet.db, f"systemctl is-enabled {APP}-backup.timer").stdout.strip() == "enabled"
    assert on_host(fleet.app1, f"ls /srv/{APP}/shared/backups 2>/dev/null").stdout.strip() == ""

    lost = f"lost-{uuid.uuid4().hex[:8]}"
    assert requests.post(lb_url(fleet, f"/rows?text={lost}"), timeout=20).text == "added"
    restored = invoke("db.restore", "--app", str(app), "--from", name, timeout=900)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    for box in (fleet.app1, fleet.app2):  # each app host was stopped, started and checked
        assert f"stop the app on {box.ssh_alias}" in restored.stdout
        assert f"health check on {box.ssh_alias}" in restored.stdout
    rows = requests.get(lb_url(fleet, "/rows"), timeout=20).json()["rows"]
    assert kept in rows and lost not in rows


def test_db_shell_on_the_db_host_works_in_the_apps_role(fleet, deployed):
    app, _ = deployed
    run = invoke("db.shell", "--app", str(app), "--sql", "select current_user, count(*) from notes", timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert APP in run.stdout


# --------------------------------------------------------------------------- HTTPS at the load balancer

TLS_APP, TLS_DOMAIN = "fleettls", "fleet.example.org"

TLS_APP_PY = '''import socket

VERSION = "{version}"


def app(environ, start_response):
    """Which scheme the app sees, which app host answered, which release."""
    body = f"scheme={{environ['wsgi.url_scheme']}} host={{socket.gethostname()}} version={{VERSION}}\\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


# GET http://ADDRESS/ claiming https, past the sandbox's proxy.
FORGED = ("python3 -c \"import urllib.request as u; print(u.build_opener(u.ProxyHandler({{}})).open(u.Request("
          "'http://{address}/', headers={{'Host': '{domain}', 'X-Forwarded-Proto': 'https'}}), timeout=10)"
          ".read().decode())\"")


def tls_toml(fleet, directory):
    return (f'[app]\nname = "{TLS_APP}"\nframework = "wsgi"\nwsgi = "app:app"\ndomains = ["{TLS_DOMAIN}"]\n\n'
            f'[tls]\nmode = "letsencrypt"\nemail = "ops@example.org"\nacme_directory = "{directory}"\n\n'
            f'[hosts]\nlb = ["{fleet.lb.ssh_alias}"]\n'
            f'app = ["{fleet.app1.ssh_alias}", "{fleet.app2.ssh_alias}"]\n\n'
            f'[network]\nprivate = "10.78.0.0/16"\n')


def lb_https(fleet, root, path="/"):
    """GET https://TLS_DOMAIN/ at the load balancer's address, verified against pebble's root."""
    from toolkit.onhost.health_check import ServerNameConnection

    conn = ServerNameConnection(fleet.lb.address, 443, TLS_DOMAIN, ssl.create_default_context(cafile=str(root)), 10)
    try:
        conn.request("GET", path, headers={"Host": TLS_DOMAIN})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def lb_curl(fleet, url, *args):
    """curl URL with TLS_DOMAIN resolved to the load balancer: headers and body."""
    port = "443" if url.startswith("https") else "80"
    done = subprocess.run(["curl", "-sS", "-i", "--max-time", "10", "--resolve", f"{TLS_DOMAIN}:{port}:{fleet.lb.address}",
                           *args, url], capture_output=True, text=True, timeout=30)
    return done.stdout + done.stderr


def test_https_at_the_load_balancer_with_a_certificate_from_pebble(fleet, deployed, tmp_path_factory):
    """The load balancer gets the certificate (HTTP-01 through its own nginx) and ends TLS; the app
    hosts behind it serve http on the private network, and the app sees https; a rolling deploy
    goes on serving https with no failed request."""
    if not pebble_mod.available():
        pytest.fail("pebble, pebble-challtestsrv or openssl missing (scripts/bootstrap installs them)", pytrace=False)
    acme = pebble_mod.start(fleet.lb.host_address, tmp_path_factory.mktemp("pebble"))
    try:
        root, _ = pebble_mod.trust_files(acme)
        acme.point(TLS_DOMAIN, fleet.lb.address)
        # The load balancer trusts pebble (its listener's CA and its root) for this test, and
        # reaches it past the sandbox's proxy (which only passes https on port 443).
        store = "/usr/local/share/ca-certificates/pebble-test"
        trust = (f"printf '%s' {shlex.quote((acme.folder / 'ca.pem').read_text())} > {store}-listener.crt && "
                 f"printf '%s' {shlex.quote(root.read_text())} > {store}-root.crt && "
                 f"update-ca-certificates >/dev/null && sed -i -E 's/^(no_proxy|NO_PROXY)=\"([^\"]*)\"$/"
                 f"\\1=\"\\2,{acme.address}\"/' /etc/environment")
        assert on_host(fleet.lb, trust).returncode == 0
        app = tmp_path_factory.mktemp("fleet-tls") / "app"
        app.mkdir()
        (app / "app.py").write_text(TLS_APP_PY.format(version="1"))
        (app / "requirements.txt").write_text("")
        (app / "deploy.toml").write_text(tls_toml(fleet, acme.directory))

        first = invoke("deploy", "--app", str(app), timeout=900)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "tls certificate (ACME)" in first.stdout and "not issued" not in first.stdout, first.stdout
        assert first.stdout.count(f"site: https://{TLS_DOMAIN}/") == 1, first.stdout  # once: the lb, checked through it
        assert "health check (site)" in first.stdout

        # https through the load balancer: a certificate pebble issued, the app on both app hosts,
        # told the client came over https; HSTS.
        hosts = set()
        for _ in range(6):
            status, body, headers = lb_https(fleet, root)
            assert status == 200 and body.startswith("scheme=https "), (status, body)
            hosts.add(body.split("host=")[1].split()[0])
            assert headers.get("strict-transport-security") == "max-age=15552000", headers
        assert hosts == {fleet.app1.name, fleet.app2.name}
        page = lb_curl(fleet, f"https://{TLS_DOMAIN}/", "--cacert", str(root))
        assert page.startswith("HTTP/2 200") and "scheme=https" in page, page
        redirect = lb_curl(fleet, f"http://{TLS_DOMAIN}/some/page?q=1")
        assert redirect.startswith("HTTP/1.1 301"), redirect
        assert f"location: https://{TLS_DOMAIN}/some/page?q=1" in redirect.lower()
        challenge = lb_curl(fleet, f"http://{TLS_DOMAIN}/.well-known/acme-challenge/no-such-token")
        assert challenge.startswith("HTTP/1.1 404"), challenge  # from the lb's webroot, not redirected
        # The app hosts hold no certificate and serve no https. X-Forwarded-Proto is believed from
        # the load balancer only: the firewall keeps other hosts out, and past it (here: the app
        # host itself, on its private address) a client's claim of https is not passed on.
        for box in (fleet.app1, fleet.app2):
            assert on_host(box, "ss -Hltn 'sport = :443'").stdout.strip() == ""
            assert on_host(box, "test -e /etc/letsencrypt/live; echo $?").stdout.strip() == "1"
        forged = on_host(fleet.app1, FORGED.format(address=fleet.app1.private_address, domain=TLS_DOMAIN))
        assert forged.stdout.startswith("scheme=http "), forged.stdout + forged.stderr

        # The certificate is the load balancer's: status shows its expiry there (only there).
        status_run = invoke("status", "--app", str(app), timeout=300)
        assert status_run.returncode == 0, status_run.stdout + status_run.stderr
        assert status_run.stdout.count("certificate (letsencrypt): expires") == 1, status_run.stdout
        assert f"{fleet.lb.ssh_alias} |   certificate (letsencrypt): expires" in status_run.stdout, status_run.stdout
        assert f"site: https://{TLS_DOMAIN}/" in status_run.stdout and "site: http:" not in status_run.stdout

        # Renewal goes to the load balancer (no --host: the lb hosts), certbot's dry run against pebble.
        dry = invoke("tls.renew", "--dry", "--app", str(app), timeout=300)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "certbot renew --dry-run" in dry.stdout and fleet.lb.ssh_alias in dry.stdout, dry.stdout
        assert fleet.app1.ssh_alias not in dry.stdout, dry.stdout

        # A rolling deploy of new code, with https requests running through the load balancer.
        (app / "app.py").write_text(TLS_APP_PY.format(version="2"))
        failures, done, stop = [], [0], threading.Event()

        def loop():
            deadline = time.monotonic() + 300
            while not stop.is_set() and time.monotonic() < deadline:
                done[0] += 1
                try:
                    status = lb_https(fleet, root)[0]
                    if status != 200:
                        failures.append(status)
                except Exception as exc:  # a reset or a refused handshake is a failed request
                    failures.append(repr(exc))

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            second = invoke("deploy", "--app", str(app), timeout=900)
        finally:
            stop.set()
            thread.join(timeout=60)
        assert second.returncode == 0, second.stdout + second.stderr
        assert done[0] > 20 and failures == [], (done[0], failures[:5])
        versions = {lb_https(fleet, root)[1].split("version=")[1].strip() for _ in range(4)}
        assert versions == {"2"}
    finally:
        acme.stop()
