"""The Django example as a whole stack on a fresh sandbox host, through one deploy chain: Django
on PostgreSQL, a Celery worker and beat with Redis as the broker, a [schedule] timer, the admin.

deploy -> a note posted to /later is written by the worker (the web process only enqueued it),
in PostgreSQL; beat's periodic task runs (HEARTBEAT_SECONDS = 2 here, through [env]);
`createsuperuser --noinput` gets its password from `env.set` (stdin, never a command line) and
the user logs in to the admin; a code change deploy keeps the notes and adds a view that raises:
the client gets a bare 500, `invoke logs` the traceback; `invoke rollback` keeps them too and
the worker runs the old release's code; the schedule's timer has run (every 10 s here).
Every wait is a bounded poll.
"""

import re
import shutil
import subprocess
import sys
import time

import pytest
import requests

from tests.integration.helpers import REPO, invoke, on_host

pytestmark = pytest.mark.integration

APP = "djangoapp"
PASSWORD = "a-long-admin-password-7"
BOOM_VIEW = '''

def boom(request):
    raise RuntimeError("boom-marker: a view that raises")


urlpatterns.append(path("boom", boom))
'''


class Stack:
    def __init__(self, box, path):
        self.box, self.path = box, path
        self.base = f"http://{box.address}"
        self.host = ["--host", box.ssh_alias, "--app", str(path)]

    def run(self, task, *args, stdin=None):
        """`invoke TASK --host H --app A ARGS`; `stdin` is piped in (env.set reads values there)."""
        if stdin is None:
            return invoke(task, *self.host, *args)
        return subprocess.run([sys.executable, "-m", "invoke", task, *self.host, *args], cwd=REPO, input=stdin,
                              capture_output=True, text=True, timeout=600)

    def ok(self, task, *args, stdin=None):
        done = self.run(task, *args, stdin=stdin)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    def post(self, path, text):
        """Post the front page's form (with its CSRF token) to `path`."""
        with requests.Session() as session:
            page = session.get(f"{self.base}/", timeout=20)
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            done = session.post(f"{self.base}{path}", data={"csrfmiddlewaretoken": token, "text": text},
                                allow_redirects=False, timeout=20)
        assert done.status_code == 302, f"{done.status_code}: {done.text[:300]}"

    def page_until(self, pattern, seconds=60):
        """The front page once `pattern` is found in it (bounded: `seconds`), else the last page."""
        page = ""
        for _ in range(int(seconds)):
            page = requests.get(f"{self.base}/", timeout=20).text
            if re.search(pattern, page):
                return page
            time.sleep(1)
        return page

    def sql(self, query):
        done = on_host(self.box, f"runuser -u postgres -- psql -At -d {APP} -c {query!r}")
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.strip()


@pytest.fixture(scope="module")
def stack(module_fresh_sandbox, tmp_path_factory):
    path = tmp_path_factory.mktemp("stack") / "django"
    shutil.copytree(REPO / "examples" / "django", path, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    toml = (path / "deploy.toml").read_text()
    assert 'DEBUG = "false"' in toml and 'on = "daily"' in toml
    # Faster than a person would set them, for a bounded wait: beat every 2 s, the job every 10 s.
    toml = toml.replace('DEBUG = "false"', 'DEBUG = "false"\nHEARTBEAT_SECONDS = "2"')
    (path / "deploy.toml").write_text(toml.replace('on = "daily"', 'on = "*:*:0/10"'))
    app = Stack(module_fresh_sandbox, path)
    out = app.ok("deploy")
    assert "migration(s) applied" in out and "processes stay up" in out, out
    return app


def test_a_task_sent_by_the_web_process_is_run_by_the_worker_into_postgresql(stack):
    stack.post("/later", "queued-note-1")
    page = stack.page_until(r"<li>queued-note-1 \(by the worker\)</li>")
    assert "<li>queued-note-1 (by the worker)</li>" in page, page
    assert stack.sql("select via from notes_note where text = 'queued-note-1'") == "worker"
    env = on_host(stack.box, f"grep -c \"^DATABASE_URL='\\?postgresql://\" /srv/{APP}/shared/.env").stdout.strip()
    assert env == "1"  # the app reads DATABASE_URL: the row above is in PostgreSQL, not a sqlite file
    assert on_host(stack.box, f"test -e /srv/{APP}/shared/data/db.sqlite3").returncode == 1


def test_beat_sends_the_periodic_task_and_the_worker_runs_it(stack):
    page = stack.page_until(r"heartbeats: ([3-9]|\d\d+),")
    assert re.search(r"heartbeats: ([3-9]|\d\d+),", page), page


def test_createsuperuser_reads_its_password_from_env_set_never_a_command_line(stack):
    stack.ok("env.set", "--name", "DJANGO_SUPERUSER_PASSWORD", stdin=PASSWORD)
    made = stack.ok("manage", "--", "createsuperuser", "--noinput", "--username", "admin",
                    "--email", "admin@example.com")
    assert "Superuser created successfully" in made, made
    gone = stack.ok("env.unset", "--name", "DJANGO_SUPERUSER_PASSWORD")
    assert PASSWORD not in made + gone
    assert "DJANGO_SUPERUSER_PASSWORD" not in on_host(stack.box, f"cat /srv/{APP}/shared/.env.local").stdout
    assert logs_in(stack.base) == ""


def logs_in(base):
    """Log in to the admin through nginx ("" when it worked, else what the site answered)."""
    with requests.Session() as session:
        form = session.get(f"{base}/admin/login/", timeout=20)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        done = session.post(f"{base}/admin/login/?next=/admin/", timeout=20, data={
            "csrfmiddlewaretoken": token, "username": "admin", "password": PASSWORD, "next": "/admin/"})
        if done.status_code == 200 and "Site administration" in done.text:
            return ""
        return f"{done.status_code}: {done.text[:300]}"


def test_a_code_change_deploy_keeps_the_data(stack):
    stack.post("/", "written-before-the-deploy")
    with open(stack.path / "guestbook" / "urls.py", "a") as urls:
        urls.write(BOOM_VIEW)
    out = stack.ok("deploy")
    assert "migration(s) applied" not in out and "processes stay up" in out, out
    page = requests.get(f"{stack.base}/", timeout=20).text
    assert "<li>written-before-the-deploy</li>" in page and "queued-note-1" in page, page
    assert logs_in(stack.base) == ""


def test_a_500_gives_the_client_no_traceback_and_invoke_logs_one(stack):
    boom = requests.get(f"{stack.base}/boom", timeout=20)
    assert boom.status_code == 500
    assert "Traceback" not in boom.text and "boom-marker" not in boom.text, boom.text
    logs = ""
    for _ in range(20):  # bounded: the journal may take a moment to have the lines
        logs = stack.ok("logs", "-n", "200")
        if "boom-marker" in logs:
            break
        time.sleep(1)
    assert "Traceback (most recent call last)" in logs and "RuntimeError: boom-marker" in logs, logs
    assert "ERROR django.request: Internal Server Error: /boom" in logs, logs


def test_a_rollback_keeps_the_data_and_the_worker_follows_it(stack):
    stack.ok("rollback")
    assert requests.get(f"{stack.base}/boom", timeout=20).status_code == 404  # the old code
    page = requests.get(f"{stack.base}/", timeout=20).text
    assert "<li>written-before-the-deploy</li>" in page and "queued-note-1" in page, page
    assert logs_in(stack.base) == ""
    worker = on_host(stack.box, f"systemctl show -p MainPID --value {APP}-worker.service").stdout.strip()
    cwd = on_host(stack.box, f"readlink /proc/{worker}/cwd").stdout.strip()
    assert cwd == on_host(stack.box, f"readlink -f /srv/{APP}/current").stdout.strip()
    stack.post("/later", "queued-after-the-rollback")
    assert "queued-after-the-rollback (by the worker)" in stack.page_until("queued-after-the-rollback")


def test_the_schedule_timer_runs_and_status_shows_every_process(stack):
    status = ""
    for _ in range(30):  # bounded: the job runs every 10 s
        status = stack.run("status").stdout
        if re.search(r"djangoapp-clearsessions\.timer .*last run: .*\(ok\)", status):
            break
        time.sleep(1)
    assert re.search(r"djangoapp-clearsessions\.timer .*last run: .*\(ok\)", status), status
    for process in ("worker", "beat"):
        assert re.search(rf"{APP}-{process}\.service\s+enabled / active", status), status
