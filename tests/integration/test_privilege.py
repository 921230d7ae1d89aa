"""Least privilege on a deployed host, checked on sandbox hosts as an attacker inside the app
would try it: the app's user (runuser -u APP) cannot write any file or folder of its release,
its venv, the server wheels or pronghorn.conf.py; nothing in releases/ is the app's; no release
file is readable by others but the static files nginx serves; pip's build of an sdist ran as the
build user, not root; the uploads left out what .gitignore and the secret-like defaults say; a
symbolic link planted where an app folder belongs stops provisioning, and root does not follow
it. The examples still deploy, and a stock Django project's admin CSS is served.
"""

import shutil
import subprocess
import sys

import pytest
import requests

from tests.integration.helpers import REPO, invoke, on_host

pytestmark = pytest.mark.integration

APP = "privapp"
DOMAIN = "priv.test"
BASE = f"/srv/{APP}"

DEPLOY_TOML = f'''[app]
name = "{APP}"
domains = ["{DOMAIN}"]

[health]
path = "/healthz"
'''

# Writes who ran it into the venv (the only place the build may write), at every run of setup.py.
SETUP_PY = '''
import subprocess, sys
from setuptools import setup
with open(sys.prefix + "/built-by", "w") as f:
    f.write(subprocess.check_output(["id", "-un"], text=True))
setup(name="localpkg", version="1.0", py_modules=["localpkg"])
'''

LOCAL_ONLY = {"db.sqlite3": "local data", "secrets.json": "{}", "local.db": "x", ".env.production": "K=1",
              "certs/site.key": "k", "notes-local.txt": "ignored by .gitignore"}


def deploy(box, app, *extra):
    run = invoke("deploy", "--host", box.ssh_alias, "--app", str(app), *extra)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def host_out(box, command):
    result = on_host(box, command)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def deployed(sandbox, tmp_path_factory):
    """The Flask example with a local sdist in its requirements and local secrets, deployed."""
    app = tmp_path_factory.mktemp("priv") / "app"
    shutil.copytree(REPO / "examples" / "flask", app, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "deploy.toml").write_text(DEPLOY_TOML)
    (app / "localpkg").mkdir()
    (app / "localpkg" / "setup.py").write_text(SETUP_PY)
    (app / "localpkg" / "localpkg.py").write_text("VALUE = 1\n")
    (app / "requirements.txt").write_text((app / "requirements.txt").read_text() + "./localpkg\n")
    (app / ".gitignore").write_text((app / ".gitignore").read_text() + "notes-local.txt\n")
    for rel, text in LOCAL_ONLY.items():
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        (app / rel).write_text(text)
    out = deploy(sandbox, app)
    dry = invoke("deploy", "--host", sandbox.ssh_alias, "--app", str(app), "--dry")
    return sandbox, app, out, dry.stdout + dry.stderr


def release_dir(box):
    return host_out(box, f"readlink -f {BASE}/current").strip()


def test_the_app_user_cannot_write_its_code_venv_or_server_config(deployed):
    box = deployed[0]
    paths = f"{BASE}/releases {BASE}/venvs {BASE}/wheels {BASE}/shared/pronghorn.conf.py"
    # find -writable asks the kernel (access(2)) as the app's user: every file and folder
    writable = host_out(box, f"cd / && runuser -u {APP} -- find -P {paths} -writable 2>&1 && "
                             f"runuser -u {APP} -- find -P {BASE} {BASE}/shared -maxdepth 0 -writable")
    assert writable == "", writable
    assert host_out(box, f"find -P {BASE}/releases {BASE}/venvs {BASE}/wheels -user {APP}") == ""
    # and for real: writing code, replacing the config, planting a link in shared/
    for attempt in (f"echo x >> {release_dir(box)}/app.py", f"echo x > {BASE}/shared/pronghorn.conf.py",
                    f"ln -s /etc {BASE}/shared/evil", f"touch {BASE}/venvs/x"):
        result = on_host(box, f"runuser -u {APP} -- sh -c '{attempt}'")
        assert result.returncode != 0 and "ermission denied" in result.stderr, attempt


def test_no_release_file_is_readable_by_others_but_the_served_static_files(deployed):
    box = deployed[0]
    release = release_dir(box)
    readable = host_out(box, f"find -P {release} -mindepth 1 ! -type l -perm -o+r "
                             f"! -path '{release}/static' ! -path '{release}/static/*'")
    assert readable == "", readable
    venv_readable = host_out(box, f"find -P {BASE}/venvs/ -mindepth 1 ! -type l -perm -o+r")
    assert venv_readable == "", venv_readable
    # nginx (www-data) reads the static files and nothing else of the release
    assert requests.get(f"http://{box.address}/static/style.css", headers={"Host": DOMAIN},
                        timeout=10).status_code == 200
    assert on_host(box, f"runuser -u www-data -- cat {release}/app.py").returncode != 0
    assert on_host(box, f"runuser -u www-data -- cat {BASE}/shared/pronghorn.conf.py").returncode != 0


def test_the_sdist_was_built_by_the_build_user_not_root(deployed):
    box = deployed[0]
    assert host_out(box, f"cat {BASE}/venvs/*/built-by").split() == [f"{APP}-build"]
    assert host_out(box, f"getent passwd {APP}-build").strip().endswith(":/usr/sbin/nologin")
    assert host_out(box, f"stat -c %U:%G {BASE}/venvs/*/").split() == [f"root:{APP}"]


def test_uploads_leave_out_ignored_and_secret_like_files(deployed):
    box, _, out, dry = deployed
    release = release_dir(box)
    present = host_out(box, f"cd {release} && ls -A . certs 2>/dev/null; true")
    for rel in LOCAL_ONLY:
        assert rel.split("/")[-1] not in present.split(), rel
    # --dry names the secret-like files it leaves out (db.sqlite3 is in the example's .gitignore)
    for name in ("secrets.json", "local.db", ".env.production", "certs/site.key"):
        assert name in dry, dry
    assert "notes-local.txt" not in dry  # ignored by .gitignore: not a secret, just not the app's


def test_a_link_planted_where_an_app_folder_belongs_is_refused(deployed):
    box, app, _, _ = deployed
    # A host provisioned by an older toolkit: shared/ was the app's, so the app could swap
    # media/ for a link to a folder of root's.
    host_out(box, f"install -d -m 700 /root/{APP}-target && chown {APP} {BASE}/shared && "
                  f"runuser -u {APP} -- sh -c 'mv {BASE}/shared/media {BASE}/shared/media.real && "
                  f"ln -s /root/{APP}-target {BASE}/shared/media'")
    try:
        run = invoke("provision", "--host", box.ssh_alias, "--app", str(app))
        assert run.returncode != 0
        assert f"{BASE}/shared/media (uploads) on the host is a symbolic link" in run.stdout + run.stderr
        assert f"mv {BASE}/shared/media {BASE}/shared/media.suspect" in run.stdout + run.stderr
        # root followed nothing: the target is still root's and closed
        assert host_out(box, f"stat -c '%U %a' /root/{APP}-target").split() == ["root", "700"]
    finally:
        host_out(box, f"rm {BASE}/shared/media && mv {BASE}/shared/media.real {BASE}/shared/media && "
                      f"rmdir /root/{APP}-target")
    run = invoke("provision", "--host", box.ssh_alias, "--app", str(app))
    assert run.returncode == 0, run.stdout + run.stderr
    assert host_out(box, f"stat -c '%U:%G %a' {BASE}/shared").split() == [f"root:{APP}", "751"]


STOCK_SETTINGS = '''
import os  # noqa: E402
SECRET_KEY = os.environ["SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = os.environ["ALLOWED_HOSTS"].split(",")
'''


def startproject(folder):
    """A stock `django-admin startproject` (admin included, no STATIC_ROOT), secrets from the env."""
    import django

    folder.mkdir()
    subprocess.run([sys.executable, "-m", "django", "startproject", "mysite", str(folder)], check=True,
                   timeout=60)
    settings = folder / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + STOCK_SETTINGS)
    (folder / "requirements.txt").write_text(f"django=={django.__version__}\n")
    (folder / "deploy.toml").write_text('[app]\nname = "mysite"\nsecrets = ["SECRET_KEY"]\n'
                                        'generate_secrets = ["SECRET_KEY"]\n[health]\npath = "/admin/login/"\n')
    return folder


@pytest.mark.parametrize("example", ["bottle", "django", "startproject"])
def test_the_examples_deploy_with_a_root_owned_release(fresh_sandbox, tmp_path, example):
    app = startproject(tmp_path / "mysite") if example == "startproject" else REPO / "examples" / example
    out = deploy(fresh_sandbox, app)
    assert "health check" in out
    name = {"startproject": "mysite", "django": "djangoapp", "bottle": "bottleapp"}[example]
    assert host_out(fresh_sandbox, f"find -P /srv/{name}/releases /srv/{name}/venvs -user {name}") == ""
    if example == "startproject":
        # collectstatic ran although the release is root's, and nginx serves what it wrote
        css = requests.get(f"http://{fresh_sandbox.address}/static/admin/css/base.css", timeout=10)
        assert css.status_code == 200 and "body" in css.text


def test_verify_checks_the_ownership(deployed):
    box, app = deployed[0], deployed[1]
    checked = invoke("verify", "--host", box.ssh_alias, "--app", str(app))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    target = f"{release_dir(box)}/app.py"
    host_out(box, f"chown {APP} {target}")
    try:
        checked = invoke("verify", "--host", box.ssh_alias, "--app", str(app))
        assert checked.returncode != 0 and f"owned by {APP}" in checked.stdout + checked.stderr
        assert target in checked.stdout + checked.stderr
    finally:
        host_out(box, f"chown root {target}")
