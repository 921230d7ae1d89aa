"""testinfra checks of a deployed app, run by `invoke verify --host HOST` against the host.

They check what a deploy promises: the app's user cannot log in, its secrets file is private,
systemd runs it (socket + service), nginx's config is valid and the site answers through nginx
on the host itself. The app is found through PRONGHORN_APP_DIR (its deploy.toml).

Run by hand: PRONGHORN_APP_DIR=examples/flask pytest toolkit/checks/test_site.py --hosts=ssh://sandbox-demo
"""

import os
import shlex

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


def test_site_answers_through_nginx(host, cfg):
    name = "localhost" if cfg.any_domain else cfg.domains[0].replace("*.", "www.")
    script = ("import http.client,sys; c=http.client.HTTPConnection('127.0.0.1',80,timeout=10); "
              f"c.request('GET',{cfg.health.path!r},headers={{'Host':{name!r}}}); "
              "print(c.getresponse().status)")
    out = host.check_output("python3 -c " + shlex.quote(script))
    assert int(out) == cfg.health.expect
