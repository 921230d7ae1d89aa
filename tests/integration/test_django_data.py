"""Data survives every release: a stock `django-admin startproject` app keeps its data across
deploys and rollbacks, and paths named in `[app] shared` outlive a release for any app.

The project is made here with the installed Django and changed only as docs/deploy-config.md
asks (SECRET_KEY, DEBUG and ALLOWED_HOSTS from the environment); its DATABASES still say
`BASE_DIR / "db.sqlite3"`, inside the release, and it has no STATIC_ROOT. The deploy links the
database to shared/data (migrate creates it there), collects the static files where nginx
serves them, and a user created after the first deploy still logs in - a write to the
database through the web - after a code change and after a rollback. ALLOWED_HOSTS holds the
host's own names, not "*". `invoke verify` passes, fetching a collected static file through
nginx; with the app stopped nginx answers its 503 page.
"""

import re
import shlex
import subprocess
import sys

import pytest
import requests

from tests.integration.helpers import invoke, on_host

pytestmark = pytest.mark.integration

APP = "mysite"
PASSWORD = "a-long-test-password-1"

SETTINGS_FROM_ENV = '''
# As docs/deploy-config.md says: the deployed host's values come from the environment.
import os  # noqa: E402
SECRET_KEY = os.environ["SECRET_KEY"]
DEBUG = os.environ.get("DEBUG", "false") == "true"
ALLOWED_HOSTS = os.environ["ALLOWED_HOSTS"].split(",")
'''

DEPLOY_TOML = '''[app]
name = "mysite"
secrets = ["SECRET_KEY"]
generate_secrets = ["SECRET_KEY"]

[env]
DEBUG = "false"

[health]
path = "/admin/login/"
'''


def startproject(folder):
    import django

    folder.mkdir()
    subprocess.run([sys.executable, "-m", "django", "startproject", APP, str(folder)], check=True, timeout=60)
    settings = folder / APP / "settings.py"
    assert 'BASE_DIR / "db.sqlite3"' in settings.read_text() or "BASE_DIR / 'db.sqlite3'" in settings.read_text()
    settings.write_text(settings.read_text() + SETTINGS_FROM_ENV)
    (folder / "requirements.txt").write_text(f"django=={django.__version__}\n")
    (folder / "deploy.toml").write_text(DEPLOY_TOML)


def deploy(box, app):
    run = invoke("deploy", "--host", box.ssh_alias, "--app", str(app))
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def manage(box, *args, env="X=1"):
    """manage.py ARGS as the app user in the live release's environment (shared/.env)."""
    from toolkit.onhost import program

    release = f"/srv/{APP}/current"
    argv = [f"{release}/.venv/bin/python", "-c", program("env_exec"), f"/srv/{APP}/shared/.env",
            f"{release}/.venv/bin/python", "manage.py", *args]
    return on_host(box, f"export {env}; cd {release} && runuser -u {APP} -- " + " ".join(map(shlex.quote, argv)))


def logs_in(base):
    """Log in to Django's admin through nginx: reads the user and writes a session row.
    Returns "" when it worked, else what the site answered."""
    with requests.Session() as session:
        form = session.get(f"{base}/admin/login/", timeout=20)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        done = session.post(f"{base}/admin/login/?next=/admin/", timeout=20, data={
            "csrfmiddlewaretoken": token, "username": "alice", "password": PASSWORD, "next": "/admin/"})
        if done.status_code == 200 and "Site administration" in done.text:
            return ""
        return f"{done.status_code}: {done.text[:300]}"


def test_stock_startproject_keeps_its_data_across_deploys_and_rollbacks(fresh_sandbox, tmp_path):
    pytest.importorskip("django")
    box, app = fresh_sandbox, tmp_path / APP
    startproject(app)
    base = f"http://{box.address}"

    first = deploy(box, app)
    assert f"db.sqlite3 -> /srv/{APP}/shared/data/db.sqlite3" in first, first
    assert "STATIC_ROOT is not set" in first and "migration(s) applied" in first
    assert on_host(box, f"readlink /srv/{APP}/current/db.sqlite3").stdout.strip() == "../../shared/data/db.sqlite3"
    # What ALLOWED_HOSTS is made of for domains = ["_"]: the host's own names and addresses.
    from toolkit.facts.names import HostNames
    fact = HostNames()
    assert box.address in fact.parse(on_host(box, fact.command()).stdout.splitlines())
    allowed = on_host(box, f"grep ^ALLOWED_HOSTS= /srv/{APP}/shared/.env").stdout
    assert "*" not in allowed and box.address in allowed and "localhost" in allowed, allowed
    forged = requests.get(f"{base}/admin/login/", headers={"Host": "evil.example"}, timeout=20)
    assert forged.status_code == 400                          # Django refuses an unknown Host
    made = manage(box, "createsuperuser", "--noinput", "--username", "alice", "--email", "alice@example.com",
                  env=f"DJANGO_SUPERUSER_PASSWORD={PASSWORD}")
    assert made.returncode == 0, made.stdout + made.stderr
    assert logs_in(base) == ""
    css = requests.get(f"{base}/static/admin/css/base.css", timeout=20)
    assert css.status_code == 200 and "body" in css.text     # the admin's CSS, collected, via nginx

    urls = app / APP / "urls.py"
    urls.write_text(urls.read_text() + "\n# a code change\n")
    second = deploy(box, app)
    assert "migration(s) applied" not in second               # the same database, already migrated
    assert logs_in(base) == ""

    back = invoke("rollback", "--host", box.ssh_alias, "--app", str(app))
    assert back.returncode == 0, back.stdout + back.stderr
    assert logs_in(base) == ""
    assert requests.get(f"{base}/static/admin/css/base.css", timeout=20).status_code == 200

    checked = invoke("verify", "--host", box.ssh_alias, "--app", str(app))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "test_static_files_answer_through_nginx" not in checked.stdout  # not among the failures

    # The app gone (as after a failed first deploy): nginx answers its 503 page at once.
    on_host(box, f"systemctl stop {APP}.socket {APP}.service")
    down = requests.get(f"{base}/admin/login/", timeout=20)
    assert down.status_code == 503 and "being deployed or is down" in down.text


def test_configured_shared_paths_outlive_a_release(fresh_sandbox, tmp_path):
    # [app] shared for any framework: a file and a folder, the folder seeded from the upload once.
    import shutil

    from tests.integration.helpers import REPO

    box, app = fresh_sandbox, tmp_path / "flask"
    shutil.copytree(REPO / "examples" / "flask", app, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "deploy.toml").write_text((app / "deploy.toml").read_text().replace(
        '[app]\n', '[app]\nshared = ["notes.txt", "uploads/"]\n'))
    (app / "uploads").mkdir()
    (app / "uploads" / "seed.txt").write_text("from the first upload")
    first = deploy(box, app)
    assert "uploads/ -> /srv/flaskapp/shared/data/uploads (new, with the release's copy)" in first, first
    written = on_host(box, "runuser -u flaskapp -- sh -c 'echo kept > /srv/flaskapp/current/notes.txt "
                           "&& echo kept > /srv/flaskapp/current/uploads/new.txt'")
    assert written.returncode == 0, written.stderr                    # the app user writes through
    (app / "uploads" / "seed.txt").write_text("a later upload does not overwrite")
    (app / "app.py").write_text((app / "app.py").read_text() + "\n# a code change\n")
    second = deploy(box, app)
    assert "(kept)" in second
    shown = on_host(box, "cat /srv/flaskapp/current/notes.txt /srv/flaskapp/current/uploads/new.txt "
                         "/srv/flaskapp/current/uploads/seed.txt").stdout.split("\n")
    assert shown[:3] == ["kept", "kept", "from the first upload"]
