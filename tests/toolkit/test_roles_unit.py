"""Each role's plan with plain data: facts as the host would report them, what is wanted, and the
changes the plan returns (nothing runs: a role has no connection to run anything on)."""

import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from roles import app_env, base, layout, nginx, proxy, systemd, user
from roles.wanted import BASE_PACKAGES, Wanted
from toolkit.errors import DeployError
from toolkit.facts.files import FileFact, sha256_text
from toolkit.facts.host import AptListsAge, HostFacts, UnitState
from toolkit.layout import HostLayout
from toolkit.report import Reporter


@dataclass(frozen=True)
class Proxy:
    http: str = ""
    https: str = ""
    no_proxy: tuple = ()
    ca_bundle: str = ""


@dataclass(frozen=True)
class Cfg:
    """A fake app config (test_release_unit uses it too)."""

    name: str = "shop"
    access_log: str = "journal"
    proxy: Proxy = Proxy()
    python: str = "python3"

    @property
    def layout(self):
        return HostLayout(self.name)


CFG = Cfg()


@dataclass(frozen=True)
class File:
    path: str
    content: str
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"


def wanted(files=(), **kw) -> Wanted:
    return Wanted(app="shop", layout=HostLayout("shop"), files=tuple(files), **kw)


def test_wanted_from_the_config():
    assert Wanted.of(CFG, [ENV]) == wanted([ENV])


def fact(path, kind="file", mode=0o644, owner="root", group="root", content=None):
    return FileFact(path, True, kind, mode, owner, group, sha256_text(content) if content is not None else "")


def facts_with(**kw) -> HostFacts:
    kw.setdefault("apt", AptListsAge(now=1_000_000, mtime=1_000_000 - 60))
    return HostFacts(**kw)


def matching_facts(files, **kw) -> HostFacts:
    return facts_with(files={f.path: fact(f.path, "file", f.mode, f.owner, f.group, f.content) for f in files},
                      **kw)


RUNNING = {"shop.socket": UnitState("enabled", "active"), "shop.service": UnitState("enabled", "inactive"),
           "nginx.service": UnitState("enabled", "active")}


# -- base -------------------------------------------------------------------------------------

def test_packages_all_present_means_no_change():
    assert base.plan(facts_with(installed=set(BASE_PACKAGES)), wanted()) == []


def test_missing_package_with_fresh_lists_installs_without_update():
    (change,) = base.plan(facts_with(installed=set(BASE_PACKAGES) - {"nginx"}), wanted())
    assert change.note == "install nginx"
    assert "apt-get install" in change.script and "nginx" in change.script
    # lists that looked fresh but still fail: fetched, and the install retried once
    assert change.script.index("apt-get install") < change.script.index("apt-get update")


def test_stale_lists_are_updated_first():
    f = facts_with(installed=set(), apt=AptListsAge(now=1_000_000, mtime=0))
    assert base.apt_lists_stale(f)
    (change,) = base.plan(f, wanted())
    assert change.note.endswith("(after apt-get update)")
    assert change.script.index("apt-get update") < change.script.index("apt-get install")


def test_deferred_nginx_installs_in_the_background_after_what_the_venv_needs():
    f = facts_with(installed=set(BASE_PACKAGES) - {"nginx", "python3-venv"}, apt=AptListsAge(10**6, 0))
    now, later = base.plan(f, wanted(), defer=True)
    assert not now.background and "python3-venv" in now.script and "nginx" not in now.script
    assert later.background and "nginx" in later.script
    # the lists are fetched once, before the first install; the background one only retries after a fetch
    assert now.why == "after apt-get update" and later.why == ""
    assert later.script.index("apt-get install") < later.script.index("apt-get update")


def test_deferred_nginx_alone_updates_stale_lists_itself():
    f = facts_with(installed=set(BASE_PACKAGES) - {"nginx"}, apt=AptListsAge(10**6, 0))
    (later,) = base.plan(f, wanted(), defer=True)
    assert later.background and later.script.index("apt-get update") < later.script.index("apt-get install")


# -- user and layout --------------------------------------------------------------------------

def test_user_created_with_nologin_and_home():
    (change,) = user.plan(facts_with(), wanted())
    assert "groupadd --system shop" in change.script
    assert "useradd --system --gid shop --home-dir /srv/shop" in change.script
    assert "--shell /usr/sbin/nologin" in change.script
    assert change.note == "created group and user"


def test_existing_user_with_wrong_shell_is_fixed_not_recreated():
    f = facts_with(groups={"shop"}, passwd={"shop": "shop:x:998:998::/srv/shop:/bin/bash".split(":")})
    (change,) = user.plan(f, wanted())
    assert change.script == "usermod --shell /usr/sbin/nologin shop"


def test_user_as_wanted_needs_nothing():
    f = facts_with(groups={"shop"}, passwd={"shop": "shop:x:998:998::/srv/shop:/usr/sbin/nologin".split(":")})
    assert user.plan(f, wanted()) == []


def test_layout_fixes_only_what_differs():
    files = {p: fact(p, "dir", mode, owner, group) for p, mode, owner, group in layout.wanted_dirs(wanted())}
    files["/srv/shop/shared/media"] = fact("/srv/shop/shared/media", "dir", 0o700, "shop", "shop")
    del files["/srv/shop/venvs"]
    (change,) = layout.plan(facts_with(files=files), wanted())
    assert change.note == "media, venvs"
    assert "install -d -m 2750 -o shop -g www-data /srv/shop/shared/media" in change.script
    assert "install -d -m 755 -o root -g root /srv/shop/venvs" in change.script
    # uploads made while media/ was in the app's own group move to the group nginx reads with,
    # never following a link the app made in there
    assert "chgrp -R -h www-data /srv/shop/shared/media" in change.script
    assert "find -P /srv/shop/shared/media" in change.script


def test_layout_owns_code_folders_as_root_and_lets_the_app_write_only_its_data():
    dirs = {p: (mode, owner, group) for p, mode, owner, group in layout.wanted_dirs(wanted())}
    assert dirs["/srv/shop/releases"] == (0o755, "root", "root")
    # root's: the app cannot replace .env or pronghorn.conf.py; others only pass through to media/
    assert dirs["/srv/shop/shared"] == (0o751, "root", "shop")
    assert dirs["/srv/shop/shared/data"] == (0o750, "shop", "shop")
    assert dirs["/srv/shop/venvs"][1:] == ("root", "root")


def test_releases_the_app_owned_become_roots_without_following_links():
    files = {p: fact(p, "dir", mode, owner, group) for p, mode, owner, group in layout.wanted_dirs(wanted())}
    files["/srv/shop/releases"] = fact("/srv/shop/releases", "dir", 0o755, "shop", "shop")
    (change,) = layout.plan(facts_with(files=files), wanted())
    # the folder itself first (the app can no longer add to it), then its trees with -h
    assert change.script.index("install -d -m 755 -o root -g root /srv/shop/releases") < \
        change.script.index("chown -R -h root:shop")


@pytest.mark.parametrize("path, kind", [("/srv/shop/shared/media", "link"), ("/srv/shop/shared/data", "link"),
                                        ("/srv/shop/shared/data", "file"), ("/srv/shop/shared", "link")])
def test_a_planted_link_where_a_folder_belongs_is_refused_not_fixed(path, kind):
    files = {p: fact(p, "dir", mode, owner, group) for p, mode, owner, group in layout.wanted_dirs(wanted())}
    files[path] = fact(path, kind, 0o777, "shop", "shop")
    with pytest.raises(DeployError) as err:
        layout.plan(facts_with(files=files), wanted())
    assert path in str(err.value) and "refuses" in str(err.value)
    assert f"mv {path} {path}.suspect" in err.value.next_step
    assert "invoke provision --host" in err.value.next_step


def test_layout_as_wanted_needs_nothing():
    files = {p: fact(p, "dir", mode, owner, group) for p, mode, owner, group in layout.wanted_dirs(wanted())}
    assert layout.plan(facts_with(files=files), wanted()) == []


def test_media_is_readable_by_nginx_only():
    media = {p: (mode, owner, group) for p, mode, owner, group in layout.wanted_dirs(wanted())}["/srv/shop/shared/media"]
    # setgid + group www-data: files the app writes with UMask=0027 (0640) stay readable by nginx
    assert media == (0o2750, "shop", "www-data")


def test_file_access_log_gets_a_log_dir():
    assert "/var/log/shop" in [d[0] for d in layout.wanted_dirs(wanted(access_log="file"))]
    assert "/var/log/shop" not in [d[0] for d in layout.wanted_dirs(wanted())]


# -- files: app env, systemd, nginx -----------------------------------------------------------

ENV = File("/srv/shop/shared/.env", "A='1'\n", 0o600, "shop", "shop")
UNIT = File("/etc/systemd/system/shop.service", "[Service]\n")
SOCK = File("/etc/systemd/system/shop.socket", "[Socket]\n")
SITE = File("/etc/nginx/sites-available/shop.conf", "server {}\n")
ALL = [ENV, UNIT, SOCK, SITE]


def test_app_env_writes_only_its_changed_files():
    (change,) = app_env.plan(matching_facts([]), wanted(ALL))
    assert change.files == (ENV,) and change.note == ".env (missing)" and not change.script


def test_app_env_names_a_wrong_mode():
    f = matching_facts([ENV])
    f.files[ENV.path] = fact(ENV.path, mode=0o644, owner="shop", group="shop", content=ENV.content)
    assert [c.note for c in app_env.plan(f, wanted(ALL))] == [".env (mode 644 -> 600)"]


def test_app_env_as_wanted_needs_nothing():
    assert app_env.plan(matching_facts(ALL), wanted(ALL)) == []


def test_units_unchanged_and_running_need_nothing():
    assert systemd.plan(matching_facts(ALL, units=RUNNING), wanted(ALL)) == []


def test_changed_unit_reloads_systemd_once():
    changes = systemd.plan(matching_facts([ENV, SOCK, SITE], units=RUNNING), wanted(ALL))
    assert [c.files for c in changes[:-1]] == [(UNIT,)]
    assert changes[-1].script == "systemctl daemon-reload" and changes[-1].note == ""


def test_new_units_are_enabled_and_socket_started():
    changes = systemd.plan(facts_with(), wanted(ALL))
    script = changes[-1].script
    assert script.startswith("systemctl daemon-reload")
    assert "systemctl enable --quiet shop.socket" in script
    assert "systemctl start shop.socket" in script
    assert changes[-1].note == "enabled shop.socket, enabled shop.service, started shop.socket"


def test_changed_socket_is_restarted():
    changes = systemd.plan(matching_facts([ENV, UNIT], units=RUNNING), wanted(ALL))
    assert "systemctl restart shop.socket" in changes[-1].script


def test_nginx_plan_and_script():
    f = matching_facts([], units=RUNNING)
    f.files[nginx.DEFAULT_SITE] = fact(nginx.DEFAULT_SITE, "link")
    (change,) = nginx.plan(f, wanted([SITE]))
    assert change.files == (SITE,) and change.tar_on_stdin
    assert change.note == "shop.conf, enabled site, disabled default site"
    assert change.script.endswith(" nginx_site.sh reload w:/etc/nginx/sites-available/shop.conf "
                                  "l:/etc/nginx/sites-enabled/shop.conf r:/etc/nginx/sites-enabled/default")


def run_site_script(tmp_path, files, args, nginx_ok=True):
    """nginx_site.sh for real, on paths under tmp_path, with stand-ins for nginx and systemctl."""
    import os
    import pwd
    import subprocess

    from toolkit.executor import tar_of

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "nginx").write_text("#!/bin/sh\n" + ("exit 0\n" if nginx_ok else "echo 'nginx: [emerg] bad'; exit 1\n"))
    (bin_dir / "systemctl").write_text(f"#!/bin/sh\necho \"$*\" >> {tmp_path}/systemctl.log\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    me = pwd.getpwuid(os.getuid()).pw_name
    group = __import__("grp").getgrgid(os.getgid()).gr_name
    tar = tar_of([File(str(path), content, 0o644, me, group) for path, content in files])
    script = nginx.apply_script([File(str(path), "") for path, _ in files], *args)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    return subprocess.run(["sh", "-c", script], input=tar, capture_output=True, env=env)


def test_site_script_installs_links_and_reloads(tmp_path):
    (tmp_path / "sites-available").mkdir()
    (tmp_path / "sites-enabled").mkdir()
    site, link, default = (tmp_path / "sites-available/shop.conf", tmp_path / "sites-enabled/shop.conf",
                           tmp_path / "sites-enabled/default")
    site.write_text("old\n")
    default.write_text("debian's\n")
    run = run_site_script(tmp_path, [(site, "new\n")], ([str(link)], [str(default)], True))
    assert run.returncode == 0, run.stdout + run.stderr
    assert site.read_text() == "new\n" and link.read_text() == "new\n" and not default.exists()
    assert not (tmp_path / "sites-available/shop.conf.pronghorn-prev").exists()
    assert (tmp_path / "systemctl.log").read_text() == "reload nginx\n"


def test_site_script_puts_the_old_config_back_when_nginx_t_fails(tmp_path):
    (tmp_path / "sites-available").mkdir()
    (tmp_path / "sites-enabled").mkdir()
    site, new, link = (tmp_path / "sites-available/shop.conf", tmp_path / "sites-available/other.conf",
                       tmp_path / "sites-enabled/shop.conf")
    site.write_text("old\n")
    run = run_site_script(tmp_path, [(site, "bad\n"), (new, "bad\n")], ([str(link)], [], False), nginx_ok=False)
    assert run.returncode == 1
    assert b"[emerg] bad" in run.stdout and b"previous config was put back" in run.stdout
    assert site.read_text() == "old\n" and not new.exists() and not link.is_symlink()
    assert not (tmp_path / "systemctl.log").exists()  # nginx was never reloaded


CATCH_ALL = File("/etc/nginx/sites-available/pronghorn-default.conf", "server { return 444; }\n")


def test_catch_all_is_enabled_when_rendered():
    f = matching_facts([SITE, CATCH_ALL], units=RUNNING)
    _, links, removals = nginx.differences(f, [SITE, CATCH_ALL])
    assert nginx.CATCH_ALL in links and removals == []


def test_catch_all_is_disabled_when_the_app_answers_every_name():
    # domains = ["_"]: the catch-all is not rendered, and its old link would be a second
    # default server on port 80
    f = matching_facts([SITE], units=RUNNING)
    f.files[nginx.CATCH_ALL] = fact(nginx.CATCH_ALL, "link")
    f.files["/etc/nginx/sites-enabled/shop.conf"] = fact("/etc/nginx/sites-enabled/shop.conf", "link")
    (change,) = nginx.plan(f, wanted([SITE]))
    assert change.files == () and change.note == "disabled pronghorn-default.conf site"
    assert change.script.endswith(f" nginx_site.sh reload r:{nginx.CATCH_ALL}")  # no w:, so no tar is read


def test_catch_all_stays_off_when_another_app_answers_every_name():
    # Another app on the host has domains = ["_"] and is the default server: a second default
    # (our catch-all) would fail `nginx -t`; that app answers unknown names instead.
    other = "/etc/nginx/sites-enabled/blog.conf"
    f = matching_facts([SITE], units=RUNNING)
    to_write, links, removals = nginx.differences(f, [SITE, CATCH_ALL], default_servers={other})
    assert nginx.CATCH_ALL not in links and CATCH_ALL not in to_write
    # our own sites (Debian's default, the catch-all itself) are no reason to leave it off
    _, links, _ = nginx.differences(f, [SITE, CATCH_ALL], default_servers={nginx.DEFAULT_SITE, nginx.CATCH_ALL})
    assert nginx.CATCH_ALL in links


def test_stopped_nginx_is_started():
    f = matching_facts([SITE], units={"nginx.service": UnitState("disabled", "inactive")})
    f.files["/etc/nginx/sites-enabled/shop.conf"] = fact("/etc/nginx/sites-enabled/shop.conf", "link")
    (change,) = nginx.plan(f, wanted([SITE]))
    assert change.note == "started nginx" and change.script.endswith(" nginx_site.sh start")


def test_nginx_restarts_when_a_site_enabled_again_binds_a_wildcard():
    """The catch-all's file is on the host, unchanged, but disabled (the app had domains = ["_"]);
    the app gets its domains, so the catch-all is linked again: its `listen 80` beside the running
    10.78.0.2:80 cannot be taken by a reload (it failed, nginx kept the old config)."""
    catch_all = File(nginx.AVAILABLE + "pronghorn-default.conf", "server {\n    listen 80 default_server;\n}\n")
    f = matching_facts([SITE, catch_all], units=RUNNING)
    f.files["/etc/nginx/sites-enabled/shop.conf"] = fact("/etc/nginx/sites-enabled/shop.conf", "link")
    running = {"/etc/nginx/sites-enabled/shop.conf": ["10.78.0.2:80", "127.0.0.1:80"]}
    (change,) = nginx.plan(f, wanted([SITE, catch_all]), listeners=running)
    assert "restarted nginx (listen addresses changed)" in change.note
    # "start" (not "reload"): the script restarts a running nginx
    assert change.script.endswith(" nginx_site.sh start l:/etc/nginx/sites-enabled/pronghorn-default.conf")


def test_nginx_as_wanted_does_not_reload():
    f = matching_facts([SITE], units=RUNNING)
    f.files["/etc/nginx/sites-enabled/shop.conf"] = fact("/etc/nginx/sites-enabled/shop.conf", "link")
    assert nginx.plan(f, wanted([SITE])) == []


def test_second_default_server_says_which_setting_to_change():
    err = nginx.two_default_servers("nginx: [emerg] a duplicate default server for 0.0.0.0:80 in "
                                    "/etc/nginx/sites-enabled/blog.conf:15\nnginx -t failed")
    assert isinstance(err, DeployError)
    assert 'domains = ["_"]' in str(err) and "domains = [" in err.next_step
    assert nginx.two_default_servers("nginx: [emerg] unknown directive") is None


# -- proxy and extra CA ------------------------------------------------------------------------

EXTRA_CA = File("/usr/local/share/ca-certificates/pronghorn-extra-ca.crt", "-----BEGIN CERTIFICATE-----\n")
APT_PROXY = File("/etc/apt/apt.conf.d/80pronghorn-proxy", 'Acquire::http::Proxy "http://p:3128";\n')


def test_changed_extra_ca_is_added_to_the_trust_store():
    changes = proxy.plan_extra_ca(matching_facts([]), wanted([EXTRA_CA]))
    assert changes[0].files == (EXTRA_CA,)
    assert changes[-1].script.startswith("update-ca-certificates")


def test_unchanged_extra_ca_does_not_rebuild_the_trust_store():
    assert proxy.plan_extra_ca(matching_facts([EXTRA_CA]), wanted([EXTRA_CA])) == []


def test_proxy_files_only_when_configured():
    assert proxy.proxy_files(wanted(ALL)) == []
    assert [c.files for c in proxy.plan_proxy(matching_facts([]), wanted([APT_PROXY, *ALL]))] == [(APT_PROXY,)]


# -- provision: the roles in order, on one gather ---------------------------------------------

class FakeHost:
    """Answers the facts gather with `facts_out` and every other script with exit 0."""

    def __init__(self, facts_out="@@end\n"):
        self.facts_out, self.scripts = facts_out, []

    def sh(self, c, script, what=None, check=True, stdin=None, timeout=None):
        from toolkit.remote import Result

        self.scripts.append(script)
        return Result(self.facts_out if script.startswith("export LC_ALL=C") else "", "", 0)


@pytest.fixture
def host(monkeypatch):
    fake = FakeHost("@@os\ndebian 12\n@@apt\n1000000\n999990\n@@python\n3.11.2\n@@end\n")
    monkeypatch.setattr("toolkit.facts.sh", fake.sh)
    monkeypatch.setattr("toolkit.executor.sh", fake.sh)
    return fake


def flask_config():
    from toolkit.config import load_app_config

    return load_app_config(Path(__file__).resolve().parents[2] / "examples" / "flask")


# The hardening parts (tests/toolkit/test_hardening.py) run between the units and nginx; the swap
# step changes nothing on this fake host (its memory size is unknown).
HARDENING = ["ssh login (sshd)", "firewall (ufw)", "fail2ban (sshd jail)", "security updates", "time sync"]
STEPS = ["read the host's state", "apt packages", "user flaskapp", "folders under /srv/flaskapp",
         "app env and server config", "systemd units", *HARDENING, "swap file", "nginx site"]


def test_dry_provision_reads_once_and_runs_nothing(host):
    from roles.provision import provision

    rep = Reporter(out=io.StringIO(), dry=True)
    done = provision(None, flask_config(), rep, dry=True)
    assert len(host.scripts) == 1  # the one gather
    assert [s.name for s in rep.hosts[0].steps] == STEPS
    assert done.changed == len(STEPS) - 2 and not done.host_was_provisioned
    assert "would change" in rep.out.getvalue()


def test_provision_on_a_fresh_host_runs_each_role_once(host):
    from roles.provision import provision

    rep = Reporter(out=io.StringIO())
    provision(None, flask_config(), rep)
    assert [s.status for s in rep.hosts[0].steps] == ["ok"] + ["changed"] * (len(STEPS) - 3) + ["ok", "changed"]
    scripts = host.scripts
    assert "apt-get install" in scripts[1] and "useradd" in scripts[2] and "install -d" in scripts[3]
    assert "nginx -t" in scripts[-1]
    assert sum(s.startswith("export LC_ALL=C") for s in scripts) == 2  # nginx's facts read again after apt


def test_a_lock_held_by_someone_else_stops_provisioning(monkeypatch):
    from roles.provision import provision
    from toolkit.errors import LockHeld

    fake = FakeHost("@@os\ndebian 12\n@@lock.held\nbob@elsewhere since today (pid 1)\n@@end\n")
    monkeypatch.setattr("toolkit.facts.sh", fake.sh)
    with pytest.raises(LockHeld, match="bob@elsewhere"):
        provision(None, flask_config(), Reporter(out=io.StringIO()))
    assert len(fake.scripts) == 1


def test_an_unsupported_system_is_refused(monkeypatch):
    from roles.provision import UnsupportedHost, provision

    fake = FakeHost("@@os\nfedora 40\n@@end\n")
    monkeypatch.setattr("toolkit.facts.sh", fake.sh)
    with pytest.raises(UnsupportedHost, match="fedora 40"):
        provision(None, flask_config(), Reporter(out=io.StringIO()))
