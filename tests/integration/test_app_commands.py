"""Commands and settings in the app's world, on a sandbox host with a stock Django project
deployed (`startproject`, as the person in issue 14 has: the Django example has no
django.contrib.auth, so no createsuperuser): `invoke run` runs as the app user in the live
release (its venv first) and passes the exit code, stdin and a terminal through; `manage --
createsuperuser --noinput` makes a user whose password came from `env.set` (piped in: on no
command line, local or remote), and that user logs in; a value set with `env.set` is in the
restarted app's own environment, survives a new release, is masked by `env.list`, and
`env.unset` takes it away again.
"""

import shlex
import subprocess
import sys
import uuid
from types import SimpleNamespace

import pytest

from tests.integration.helpers import REPO, on_host

pytestmark = pytest.mark.integration

APP = "appsite"

SETTINGS_FROM_ENV = '''
import os  # noqa: E402
SECRET_KEY = os.environ["SECRET_KEY"]
DEBUG = os.environ.get("DEBUG", "false") == "true"
ALLOWED_HOSTS = os.environ["ALLOWED_HOSTS"].split(",")
'''

# A name of its own: the shared sandbox host already has an app answering every name ("_").
DEPLOY_TOML = f'''[app]
name = "{APP}"
domains = ["{APP}.test"]
secrets = ["SECRET_KEY"]
generate_secrets = ["SECRET_KEY"]

[env]
DEBUG = "false"

[health]
path = "/admin/login/"
'''


def invoke(*args, stdin="", timeout=600):
    """`invoke ARGS` with `stdin` piped in (not a terminal: no pty, stdout and stderr apart)."""
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, input=stdin)


def on_app(box, *args, stdin=""):
    return invoke(*args[:1], "--host", box.ssh_alias, "--app", str(box.app_dir), *args[1:], stdin=stdin)


def app_process_env(box, name):
    """NAME=VALUE as the running app's master process has it (or "")."""
    out = on_host(box, f"tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value {APP}.service)/environ "
                       f"| grep '^{name}=' || true")
    return out.stdout.strip()


@pytest.fixture(scope="module")
def box(sandbox, tmp_path_factory):
    """The sandbox (its ssh_alias) with a stock `startproject` deployed, its settings read from the
    environment as docs/deploy-config.md asks; app_dir: the project's folder."""
    django = pytest.importorskip("django")
    folder = tmp_path_factory.mktemp("appcmds") / APP
    folder.mkdir()
    subprocess.run([sys.executable, "-m", "django", "startproject", APP, str(folder)], check=True, timeout=60)
    settings = folder / APP / "settings.py"
    settings.write_text(settings.read_text() + SETTINGS_FROM_ENV)
    (folder / "requirements.txt").write_text(f"django=={django.__version__}\n")
    (folder / "deploy.toml").write_text(DEPLOY_TOML)
    done = invoke("deploy", "--host", sandbox.ssh_alias, "--app", str(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    deployed = SimpleNamespace(ssh_alias=sandbox.ssh_alias, app_dir=folder)
    yield deployed
    for name in ("DJANGO_SUPERUSER_PASSWORD", "APP_TEST_TOKEN"):  # left by a failed test
        on_app(deployed, "env.unset", "--name", name)


def test_run_is_the_app_user_in_the_live_release(box):
    done = on_app(box, "run", "--", "sh", "-c", 'id -un; pwd; command -v python; echo "$DJANGO_SETTINGS_MODULE"')
    assert done.returncode == 0, done.stdout + done.stderr
    live = on_host(box, f"readlink -f /srv/{APP}/current").stdout.strip()
    assert live.startswith(f"/srv/{APP}/releases/")
    assert done.stdout.splitlines() == [APP, live, f"{live}/.venv/bin/python", f"{APP}.settings"]

    assert on_app(box, "run", "--", "sh", "-c", "exit 3").returncode == 3
    piped = on_app(box, "run", "--", "sh", "-c", "tr a-z A-Z; echo err >&2", stdin="piped in\n")
    assert (piped.returncode, piped.stdout, piped.stderr.strip()) == (0, "PIPED IN\n", "err")


def test_at_a_terminal_the_command_gets_one(box):
    # script(1) runs invoke on a terminal, as a person at one would (`invoke shell` needs this).
    argv = [sys.executable, "-m", "invoke", "run", "--host", box.ssh_alias, "--app", str(box.app_dir), "--",
            "sh", "-c", "tty; exit 4"]
    done = subprocess.run(["script", "-qec", shlex.join(argv), "/dev/null"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "/dev/pts/" in done.stdout


def test_createsuperuser_with_the_password_from_env_set(box):
    password = f"pw-{uuid.uuid4().hex}"
    user = f"admin{uuid.uuid4().hex[:8]}"  # a kept sandbox may have an admin from an earlier run
    done = on_app(box, "env.set", "--name", "DJANGO_SUPERUSER_PASSWORD", stdin=password + "\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert password not in done.stdout + done.stderr
    made = on_app(box, "manage", "--", "createsuperuser", "--noinput", "--username", user,
                  "--email", "admin@example.com")
    assert made.returncode == 0, made.stdout + made.stderr
    check = ("import os; from django.contrib.auth import authenticate; print(authenticate("
             f"username={user!r}, password=os.environ['DJANGO_SUPERUSER_PASSWORD']) is not None)")
    logs_in = on_app(box, "manage", "--", "shell", "-c", check)
    # (Django 5.2's shell first says what it imported)
    assert logs_in.stdout.strip().splitlines()[-1:] == ["True"], logs_in.stdout + logs_in.stderr
    assert on_app(box, "env.unset", "--name", "DJANGO_SUPERUSER_PASSWORD").returncode == 0


def test_env_set_reaches_the_app_survives_a_release_and_unset_removes_it(box):
    token = f"tok-{uuid.uuid4().hex}"
    done = on_app(box, "env.set", "--name", "APP_TEST_TOKEN", stdin=token)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "health check" in out and token not in out
    assert app_process_env(box, "APP_TEST_TOKEN") == f"APP_TEST_TOKEN={token}"  # the restarted app has it
    assert on_app(box, "run", "--", "printenv", "APP_TEST_TOKEN").stdout.strip() == token

    listed = on_app(box, "env.list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert token not in listed.stdout
    assert "APP_TEST_TOKEN=********" in listed.stdout and "DEBUG=false" in listed.stdout
    assert "SECRET_KEY=********" in listed.stdout

    again = invoke("deploy", "--host", box.ssh_alias, "--app", str(box.app_dir), "--force")
    assert again.returncode == 0, again.stdout + again.stderr
    assert app_process_env(box, "APP_TEST_TOKEN") == f"APP_TEST_TOKEN={token}"
    assert on_app(box, "run", "--", "printenv", "APP_TEST_TOKEN").stdout.strip() == token

    gone = on_app(box, "env.unset", "--name", "APP_TEST_TOKEN")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert app_process_env(box, "APP_TEST_TOKEN") == ""
    assert on_app(box, "run", "--", "printenv", "APP_TEST_TOKEN").returncode == 1
    assert "APP_TEST_TOKEN" not in on_app(box, "env.list").stdout
    mode = on_host(box, f"stat -c '%a %U' /srv/{APP}/shared/.env.local").stdout.split()
    assert mode == ["600", APP]
