"""Data that survives releases (toolkit/shared_paths.py and the on-host programs it runs):
what a Django project's reported paths lead to, and link_shared / django_paths run for real
here (as root, dropping to another user for the shared side, as on a host)."""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from toolkit import onhost
from toolkit.config import load_app_config
from toolkit.errors import DeployError
from toolkit.shared_paths import Link, configured_links, parse_report, plan_django

REPO = Path(__file__).resolve().parents[2]
RELEASE = "/srv/djangoapp/releases/20260101T000000Z"
DATA, MEDIA = "/srv/djangoapp/shared/data", "/srv/djangoapp/shared/media"


@pytest.fixture(scope="module")
def cfg():
    return load_app_config(REPO / "examples" / "django")


def report(**changes):
    """What onhost/django_paths.py prints for a stock `startproject` app, with changes."""
    base = {"release": RELEASE, "databases": [{"alias": "default", "engine": "django.db.backends.sqlite3",
                                               "name": f"{RELEASE}/db.sqlite3"}],
            "media_root": "", "static_root": "", "static_url": "/static/"}
    return {**base, **changes}


def test_stock_startproject_sqlite_is_linked_to_shared_data(cfg):
    plan = plan_django(cfg, report())
    assert plan.links == [Link("db.sqlite3", f"{DATA}/db.sqlite3", 'DATABASES["default"]["NAME"]')]
    # no STATIC_ROOT (a stock project): collected into the folder nginx serves
    assert plan.collect_into == f"{RELEASE}/staticfiles"


def test_databases_already_in_shared_or_not_sqlite_need_nothing(cfg):
    plan = plan_django(cfg, report(databases=[
        {"alias": "default", "engine": "django.db.backends.sqlite3", "name": f"{DATA}/db.sqlite3"},
        {"alias": "pg", "engine": "django.db.backends.postgresql", "name": "shop"},
        {"alias": "mem", "engine": "django.db.backends.sqlite3", "name": ":memory:"}]))
    assert plan.links == []


def test_sqlite_the_service_cannot_write_stops_before_the_switch_naming_the_setting(cfg):
    with pytest.raises(DeployError) as caught:
        plan_django(cfg, report(databases=[{"alias": "default", "engine": "django.db.backends.sqlite3",
                                            "name": "/var/lib/shop/db.sqlite3"}]))
    assert "/var/lib/shop/db.sqlite3" in str(caught.value) and "nothing was switched" in str(caught.value)
    assert 'DATABASES["default"]["NAME"] = os.environ["APP_DATA_DIR"] + "/db.sqlite3"' in caught.value.next_step


def test_media_root_inside_the_release_is_linked_to_shared_media(cfg):
    plan = plan_django(cfg, report(media_root=f"{RELEASE}/media"))
    assert Link("media/", MEDIA, "MEDIA_ROOT") in plan.links
    assert plan_django(cfg, report(media_root=MEDIA)).links[1:] == []
    with pytest.raises(DeployError) as caught:
        plan_django(cfg, report(media_root="/var/www/uploads"))
    assert 'MEDIA_ROOT = os.environ["APP_MEDIA_DIR"]' in caught.value.next_step


def test_static_root_nginx_does_not_serve_stops_with_the_static_line_to_write(cfg):
    with pytest.raises(DeployError) as caught:
        plan_django(cfg, report(static_root=f"{RELEASE}/collected"))
    assert "nginx serves /static/ from staticfiles/" in str(caught.value)
    assert '[static]\n  "/static/" = "collected"' in caught.value.next_step
    assert plan_django(cfg, report(static_root=f"{RELEASE}/staticfiles")).collect_into == ""


def test_static_root_outside_the_release_stops_with_what_to_set(cfg):
    with pytest.raises(DeployError) as caught:
        plan_django(cfg, report(static_root="/var/www/static"))
    assert 'STATIC_ROOT = BASE_DIR / "staticfiles"' in caught.value.next_step


def test_static_url_nginx_does_not_serve_stops_with_the_static_line_to_add(cfg):
    with pytest.raises(DeployError) as caught:
        plan_django(cfg, report(static_url="/assets/", static_root=f"{RELEASE}/collected"))
    assert "every CSS file would be a 404" in str(caught.value)
    assert '[static]\n  "/assets/" = "collected"' in caught.value.next_step
    assert plan_django(cfg, report(static_url="https://cdn.example/s/")).collect_into == ""


def test_configured_shared_paths_live_under_shared_data(cfg):
    shared = SimpleNamespace(layout=cfg.layout, shared=("db.sqlite3", "uploads/", "var/cache/"))
    assert [(link.rel, link.target) for link in configured_links(shared)] == [
        ("db.sqlite3", f"{DATA}/db.sqlite3"), ("uploads/", f"{DATA}/uploads"),
        ("var/cache/", f"{DATA}/var/cache")]
    for bad in (".", "./db.sqlite3", "a//b"):
        with pytest.raises(DeployError):
            configured_links(SimpleNamespace(layout=cfg.layout, shared=(bad,)))


# -------------------------------------------------------------------- on-host programs, for real

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="link_shared drops to another user: needs root")


def link_shared(release, *args):
    return subprocess.run([sys.executable, "-c", onhost.program("link_shared"), str(release), "nobody",
                           *map(str, args)], capture_output=True, text=True, timeout=30)


@pytest.fixture
def top():
    """A folder the app user (here: nobody) can pass through, as /srv/APP is on a host
    (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="shared-paths-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def tree(top):
    """A release (root's) and a shared/data folder the app user owns."""
    release, data = top / "release", top / "shared" / "data"
    release.mkdir()
    data.mkdir(parents=True)
    os.chown(data, pwd.getpwnam("nobody").pw_uid, -1)
    return release, data


@needs_root
def test_link_shared_links_files_and_folders_the_app_user_owns(tree):
    release, data = tree
    (release / "uploads").mkdir()
    (release / "uploads" / ".gitkeep").write_text("")
    done = link_shared(release, "db.sqlite3", data / "db.sqlite3", "uploads/", data / "uploads")
    assert done.returncode == 0, done.stderr
    assert (release / "db.sqlite3").is_symlink() and os.readlink(release / "db.sqlite3") == "../shared/data/db.sqlite3"
    assert not (data / "db.sqlite3").exists()           # the app creates it, through the link
    assert (release / "uploads").is_symlink() and (data / "uploads" / ".gitkeep").exists()
    assert (data / "uploads").stat().st_uid == pwd.getpwnam("nobody").pw_uid   # made as the app
    assert "uploads/ -> " in done.stdout and "new, with the release's copy" in done.stdout
    # what the app wrote there is what the next release sees
    (data / "db.sqlite3").write_text("rows")
    nxt = release.parent / "release2"
    nxt.mkdir()
    again = link_shared(nxt, "db.sqlite3", data / "db.sqlite3")
    assert again.returncode == 0 and "(kept)" in again.stdout
    assert (nxt / "db.sqlite3").read_text() == "rows"


@needs_root
def test_link_shared_never_follows_links_on_either_side(tree, top):
    release, data = tree
    outside = top / "outside"
    outside.mkdir()
    (data / "sub").symlink_to(outside)                  # planted by the app in shared/data
    done = link_shared(release, "sub/db.sqlite3", data / "sub" / "db.sqlite3", "x/", data / "sub" / "x")
    # the child runs as nobody: it cannot create anything in root's folder the link points to
    assert done.returncode != 0 and list(outside.iterdir()) == []
    (release / "conf").symlink_to(outside)              # a release folder that is a link
    refused = link_shared(release, "conf/db.sqlite3", data / "db.sqlite3")
    assert refused.returncode != 0 and "is a symlink" in refused.stderr
    for bad in (".", "./", "../x", "a/../../x"):                # never the release itself or above
        assert link_shared(release, bad, data / "x").returncode != 0, bad
    assert release.is_dir() and not release.is_symlink()
    assert list(outside.iterdir()) == []


def test_django_paths_reports_a_stock_projects_paths(tmp_path):
    pytest.importorskip("django")
    subprocess.run([sys.executable, "-m", "django", "startproject", "mysite", str(tmp_path)], check=True,
                   timeout=60)
    out = subprocess.run([sys.executable, "-c", onhost.program("django_paths")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "DJANGO_SETTINGS_MODULE": "mysite.settings"})
    found = parse_report(out.stdout)
    assert found["release"] == str(tmp_path.resolve())
    assert found["databases"] == [{"alias": "default", "engine": "django.db.backends.sqlite3",
                                   "name": str(tmp_path.resolve() / "db.sqlite3")}]
    assert (found["static_root"], found["static_url"], found["media_root"]) == ("", "/static/", "")
