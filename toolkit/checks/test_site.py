"""testinfra checks of a deployed app, run by `invoke verify --host HOST` against the host.

They check what a deploy promises: the app's user cannot log in, its secrets file is private,
it owns and can write none of its code (releases, venvs, server config), the release is closed
to other users but for the static files nginx serves,
systemd runs it (socket + service), nginx's config is valid and the site answers through nginx
on the host itself, one file of each static folder included. The app is found through
PRONGHORN_APP_DIR (its deploy.toml).

Run by hand: PRONGHORN_APP_DIR=examples/flask pytest toolkit/checks/test_site.py --hosts=ssh://sandbox-demo
"""

import os
import shlex
from urllib.parse import quote

import pytest

from toolkit.config import load_app_config


@pytest.fixture(scope="module")
def cfg():
    return load_app_config(os.environ.get("PRONGHORN_APP_DIR", "."))


def test_app_user_is_a_system_user_without_login(host, cfg):
    user = host.user(cfg.name)
    assert user.exists, f"user {cfg.name} is missing: run `invoke provision`"
    assert user.shell in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false")
    assert user.home == cfg.layout.base_dir
    assert user.uid < 1000, "the app user should be a system user"


def test_env_file_is_private_to_the_app(host, cfg):
    env = host.file(cfg.layout.env_file)
    assert env.exists
    assert env.user == cfg.name and env.group == cfg.name
    assert env.mode == 0o600


def test_uploads_folder_is_readable_by_nginx_only(host, cfg):
    # The service writes uploads 0640 (UMask=0027); setgid www-data lets nginx read them.
    media = host.file(cfg.layout.media_dir)
    assert media.is_directory
    assert (media.user, media.group) == (cfg.name, "www-data")
    assert media.mode == 0o2750, f"mode {media.mode:o}: run `invoke provision`"


def test_the_app_user_owns_and_can_write_none_of_its_code(host, cfg):
    # Releases, venvs, wheels and the server config are root's: code the app runs cannot be
    # rewritten by the app (or by a dependency it imports).
    lay, app = cfg.layout, shlex.quote(cfg.name)
    code = " ".join(shlex.quote(p) for p in (lay.releases_dir, lay.venvs_dir, lay.wheels_dir, lay.pronghorn_conf))
    with host.sudo():
        owned = host.check_output(f"find -P {code} -user {app} | head -n 5")
        # ! -type l: -writable follows a link, and the links to shared/ (toolkit/shared_paths.py)
        # lead to data the app is meant to write; the root-owned link itself it cannot change.
        writable = host.check_output(f"cd / && runuser -u {app} -- find -P {code} ! -type l -writable "
                                     f"2>/dev/null | head -n 5; true")
    assert owned == "", f"owned by {cfg.name} (run `invoke provision`, then deploy):\n{owned}"
    assert writable == "", f"writable by {cfg.name}:\n{writable}"


def test_the_live_release_is_closed_to_others_but_its_static_files(host, cfg):
    lay = cfg.layout
    with host.sudo():
        release = host.check_output(f"readlink -f {shlex.quote(lay.current_dir)}")
        served = [host.check_output(f"readlink -f {shlex.quote(release + '/' + d)}") for d in cfg.static.values()]
        skip = " ".join(f"! -path {shlex.quote(p)} ! -path {shlex.quote(p + '/*')}" for p in served)
        readable = host.check_output(f"find -P {shlex.quote(release)} {shlex.quote(lay.venvs_dir)} -mindepth 1 "
                                     f"! -type l -perm -o+r {skip} | head -n 5")
    assert readable == "", (f"readable by every user of the host (a release made by an older toolkit: "
                            f"deploy again):\n{readable}")


def test_current_points_into_releases(host, cfg):
    current = host.file(cfg.layout.current_dir)
    assert current.is_symlink
    assert current.linked_to.startswith(cfg.layout.releases_dir + "/")
    assert host.file(current.linked_to + "/.good").exists, "the live release is not marked good"


def test_socket_and_service_enabled_and_running(host, cfg):
    for unit in (cfg.layout.socket_unit_name, cfg.layout.unit_name):
        service = host.service(unit)
        assert service.is_enabled, f"{unit} is not enabled"
        assert service.is_running, f"{unit} is not active"


def test_app_socket_listening(host, cfg):
    assert host.socket(f"unix://{cfg.layout.socket_path}").is_listening


def test_nginx_config_valid_and_running(host):
    with host.sudo():
        assert host.run("nginx -t").rc == 0
    assert host.service("nginx").is_running
    assert host.socket("tcp://0.0.0.0:80").is_listening


def _status_through_nginx(host, cfg, path):
    """The status nginx on the host answers for `path`, asked with the app's real Host name."""
    name = "localhost" if cfg.any_domain else cfg.domains[0].replace("*.", "www.")
    script = ("import http.client,sys; c=http.client.HTTPConnection('127.0.0.1',80,timeout=10); "
              f"c.request('GET',sys.argv[1],headers={{'Host':{name!r}}}); "
              "print(c.getresponse().status)")
    return int(host.check_output("python3 -c " + shlex.quote(script) + " " + shlex.quote(path)))


def test_site_answers_through_nginx(host, cfg):
    assert _status_through_nginx(host, cfg, cfg.health.path) == cfg.health.expect


def test_static_files_answer_through_nginx(host, cfg):
    # A static folder nginx cannot serve (collectstatic wrote elsewhere, a missing folder) makes
    # every CSS file a 404 while the health check stays green: fetch one real file of each.
    for url, folder in cfg.static.items():
        root = f"{cfg.layout.current_dir}/{folder.rstrip('/')}/"
        with host.sudo():  # the release is readable by root and the app's group only
            found = host.run(f"find -L {shlex.quote(root)} -type f ! -name '.*' ! -path '*/.*' -print -quit")
        one = found.stdout.strip()
        assert one, f"nothing to serve at {url}: {root} is missing or empty (collectstatic, [static] in deploy.toml)"
        path = url + quote(one[len(root):])
        assert _status_through_nginx(host, cfg, path) == 200, f"{path} ({one}) is not served by nginx"


def test_the_server_and_its_workers_run_with_umask_0027(host, cfg):
    # UMask=0027 in the unit: files the app writes (uploads, the sqlite database) are not
    # world-readable. pronghorn keeps the umask it inherits unless --umask is given.
    unit = shlex.quote(cfg.layout.unit_name)
    with host.sudo():
        master = host.check_output(f"systemctl show -p MainPID --value {unit}").strip()
        assert master not in ("", "0"), f"{cfg.layout.unit_name} is not running: `invoke status`"
        pids = [master] + host.check_output(f"pgrep -P {master} || true").split()
        umasks = {pid: host.check_output(f"awk '/^Umask:/ {{print $2}}' /proc/{pid}/status") for pid in pids}
    assert len(pids) > 1, "no worker processes under the server"
    assert set(umasks.values()) == {"0027"}, f"umask per process: {umasks}"
