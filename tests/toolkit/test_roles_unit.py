"""Role and release logic against facts and a fake host (no ssh): each role acts only where the
host differs, `dry` changes nothing, the release bookkeeping keeps what rollback needs."""

import io
import tarfile
from dataclasses import dataclass

import pytest

from roles import app_env, base, facts as facts_mod, layout, nginx, systemd, user
from toolkit.layout import HostLayout
from toolkit.remote import FileFact, RemoteError, Result, file_differs, parse_file_facts, sha256_text
from toolkit.report import Reporter


@dataclass(frozen=True)
class Proxy:
    http: str = ""
    https: str = ""
    no_proxy: tuple = ()
    ca_bundle: str = ""


@dataclass(frozen=True)
class Cfg:
    name: str = "shop"
    access_log: str = "journal"
    proxy: Proxy = Proxy()

    @property
    def layout(self):
        return HostLayout(self.name)


@dataclass(frozen=True)
class File:
    path: str
    content: str
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"


class FakeHost:
    """Records the scripts a role would run; answers with exit 0 (or what `answers` says)."""

    def __init__(self, answers=None):
        self.scripts = []
        self.stdins = []
        self.answers = answers or {}

    def sh(self, c, script, what=None, check=True, stdin=None, timeout=None):
        self.scripts.append(script)
        self.stdins.append(stdin)
        for needle, result in self.answers.items():
            if needle in script:
                if check and result.exited:
                    raise RemoteError(what or "command", result.exited, result.stdout + result.stderr)
                return result
        return Result("", "", 0)


@pytest.fixture
def fake(monkeypatch):
    host = FakeHost()
    for module in ("roles.base", "roles.user", "roles.layout", "roles.systemd", "roles.nginx",
                   "toolkit.remote"):
        monkeypatch.setattr(module + ".sh", host.sh)
    return host


def rep():
    return Reporter(out=io.StringIO())


def fact(path, kind="file", mode=0o644, owner="root", group="root", content=None):
    return FileFact(path, True, kind, mode, owner, group, sha256_text(content) if content is not None else "")


CFG = Cfg()


# -- facts ------------------------------------------------------------------------------------

def test_facts_parse_every_section():
    out = "\n".join([
        "@@os", "debian 12", "@@now", "1700000000", "@@apt", "1699990000.5",
        "@@pkgs", "python3 installed", "nginx not-installed", "tar installed",
        "@@passwd", "shop:x:998:998:app:/srv/shop:/usr/sbin/nologin",
        "@@group", "shop", "@@lock", "bob@laptop since today (pid 1)", "@@python", "3.11.2",
        "@@env", "SECRET_KEY='abc'", 'QUOTED="a\\"b"', "# comment",
        "@@enabled", "shop.socket enabled", "shop.service disabled",
        "@@active", "shop.socket active", "@@files", "/etc/x\tfile\t640 root shop\tabc", "/nope\t-",
    ])
    f = facts_mod.parse(out)
    assert (f.os_id, f.os_version, f.now, f.apt_lists_mtime) == ("debian", "12", 1700000000, 1699990000)
    assert f.installed == {"python3", "tar"}
    assert f.passwd["shop"][6] == "/usr/sbin/nologin"
    assert f.groups == {"shop"}
    assert f.locked_by == "bob@laptop since today (pid 1)"
    assert f.env == {"SECRET_KEY": "abc", "QUOTED": 'a"b'}
    assert f.unit_enabled == {"shop.socket": "enabled", "shop.service": "disabled"}
    assert f.files["/etc/x"].mode == 0o640 and f.files["/etc/x"].group == "shop"
    assert not f.files["/nope"].exists


def test_file_differs_names_the_reason():
    want = dict(content="hello\n", mode=0o600, owner="shop", group="shop")
    assert file_differs(None, **want) == "missing"
    assert file_differs(fact("/f", kind="dir"), **want) == "is a dir"
    assert file_differs(fact("/f", content="old\n", mode=0o600, owner="shop", group="shop"), **want) == "content"
    assert file_differs(fact("/f", content="hello\n", mode=0o644, owner="shop", group="shop"), **want) == "mode 644 -> 600"
    assert file_differs(fact("/f", content="hello\n", mode=0o600), **want) == "owner root:root -> shop:shop"
    assert file_differs(fact("/f", content="hello\n", mode=0o600, owner="shop", group="shop"), **want) == ""


def test_file_facts_parse():
    facts = parse_file_facts("/a\tdir\t755 root root\t-\n/b\t-\n")
    assert facts["/a"].kind == "dir" and facts["/a"].sha256 == ""
    assert not facts["/b"].exists


# -- base -------------------------------------------------------------------------------------

def facts_with(**kw):
    f = facts_mod.HostFacts(now=1_000_000, apt_lists_mtime=1_000_000 - 60)
    for key, value in kw.items():
        setattr(f, key, value)
    return f


def test_missing_nginx_installs_in_the_background(fake):
    f = facts_with(installed=set(facts_mod.BASE_PACKAGES) - {"nginx", "python3-venv"})
    changed, job = base.start_packages(None, CFG, rep(), f)
    assert changed and job is not None
    job.result(timeout=10)
    # what the venv needs comes first, in the foreground; nginx after, in the background
    assert "python3-venv" in fake.scripts[0] and "nginx" not in fake.scripts[0]
    assert "nginx" in fake.scripts[1]


def test_background_install_failure_is_raised_when_waited_for(fake):
    fake.answers = {"nginx": Result("E: Unable to locate package nginx", "", 100)}
    f = facts_with(installed=set(facts_mod.BASE_PACKAGES) - {"nginx"}, apt_lists_mtime=0)
    _, job = base.start_packages(None, CFG, rep(), f)
    with pytest.raises(RemoteError, match="Unable to locate"):
        job.result(timeout=10)


def test_nothing_missing_starts_nothing_in_the_background(fake):
    changed, job = base.start_packages(None, CFG, rep(), facts_with(installed=set(facts_mod.BASE_PACKAGES)))
    assert (changed, job, fake.scripts) == (False, None, [])


def test_packages_all_present_means_no_command(fake):
    f = facts_with(installed=set(facts_mod.BASE_PACKAGES))
    assert base.ensure_packages(None, CFG, rep(), facts=f) is False
    assert fake.scripts == []


def test_missing_package_with_fresh_lists_installs_without_update(fake):
    f = facts_with(installed=set(facts_mod.BASE_PACKAGES) - {"nginx"})
    assert base.ensure_packages(None, CFG, rep(), facts=f) is True
    assert len(fake.scripts) == 1
    assert "apt-get install" in fake.scripts[0] and "nginx" in fake.scripts[0]
    assert "apt-get update" not in fake.scripts[0]


def test_stale_lists_are_updated_first(fake):
    f = facts_with(installed=set(), apt_lists_mtime=0)
    assert base.apt_lists_stale(f)
    base.ensure_packages(None, CFG, rep(), facts=f)
    assert "apt-get update" in fake.scripts[0]


def test_failed_install_on_fresh_lists_retries_after_update(fake):
    fake.answers = {"apt-get install": Result("", "E: Unable to locate package", 100)}
    f = facts_with(installed=set(facts_mod.BASE_PACKAGES) - {"nginx"})
    with pytest.raises(RemoteError, match="Unable to locate package"):
        base.ensure_packages(None, CFG, rep(), facts=f)
    assert "apt-get update" not in fake.scripts[0]
    assert "apt-get update" in fake.scripts[1]


def test_dry_run_reports_but_runs_nothing(fake):
    r = Reporter(out=io.StringIO(), dry=True)
    f = facts_with(installed=set())
    assert base.ensure_packages(None, CFG, r, dry=True, facts=f) is True
    assert user.ensure_user(None, CFG, r, dry=True, facts=f) is True
    assert layout.ensure_layout(None, CFG, r, dry=True, facts=f) is True
    assert fake.scripts == []
    assert "would change" in r.out.getvalue()


# -- user and layout --------------------------------------------------------------------------

def test_user_created_with_nologin_and_home():
    note, script = user.user_script(CFG, facts_with())
    assert "groupadd --system shop" in script
    assert "useradd --system --gid shop --home-dir /srv/shop" in script
    assert "--shell /usr/sbin/nologin" in script
    assert note == "created group and user"


def test_existing_user_with_wrong_shell_is_fixed_not_recreated():
    f = facts_with(groups={"shop"}, passwd={"shop": "shop:x:998:998::/srv/shop:/bin/bash".split(":")})
    note, script = user.user_script(CFG, f)
    assert script == "usermod --shell /usr/sbin/nologin shop"


def test_user_as_wanted_needs_nothing():
    f = facts_with(groups={"shop"}, passwd={"shop": "shop:x:998:998::/srv/shop:/usr/sbin/nologin".split(":")})
    assert user.user_script(CFG, f) == ("", "")


def test_layout_fixes_only_what_differs():
    wanted = layout.wanted_dirs(CFG)
    files = {p: fact(p, "dir", mode, owner, group) for p, mode, owner, group in wanted}
    files["/srv/shop/shared/media"] = fact("/srv/shop/shared/media", "dir", 0o700, "shop", "shop")
    del files["/srv/shop/venvs"]
    fixes, script = layout.layout_script(CFG, facts_with(files=files))
    assert fixes == ["/srv/shop/shared/media", "/srv/shop/venvs"]
    assert "install -d -m 2750 -o shop -g www-data /srv/shop/shared/media" in script
    assert "install -d -m 755 -o root -g root /srv/shop/venvs" in script
    # uploads made while media/ was in the app's own group move to the group nginx reads with
    assert "chgrp -R www-data /srv/shop/shared/media" in script


def test_media_is_readable_by_nginx_only():
    media = {p: (mode, owner, group) for p, mode, owner, group in layout.wanted_dirs(CFG)}["/srv/shop/shared/media"]
    # setgid + group www-data: files the app writes with UMask=0027 (0640) stay readable by nginx
    assert media == (0o2750, "shop", "www-data")


def test_file_access_log_gets_a_log_dir():
    paths = [d[0] for d in layout.wanted_dirs(Cfg(access_log="file"))]
    assert "/var/log/shop" in paths
    assert "/var/log/shop" not in [d[0] for d in layout.wanted_dirs(CFG)]


# -- files: app env, systemd, nginx -----------------------------------------------------------

ENV = File("/srv/shop/shared/.env", "A='1'\n", 0o600, "shop", "shop")
UNIT = File("/etc/systemd/system/shop.service", "[Service]\n")
SOCK = File("/etc/systemd/system/shop.socket", "[Socket]\n")
SITE = File("/etc/nginx/sites-available/shop.conf", "server {}\n")
ALL = [ENV, UNIT, SOCK, SITE]


def matching_facts(files, **kw):
    return facts_with(files={f.path: fact(f.path, "file", f.mode, f.owner, f.group, f.content) for f in files},
                      **kw)


def test_app_env_writes_only_changed_files_in_one_tar(fake):
    f = matching_facts([])
    assert app_env.ensure_app_env(None, CFG, rep(), facts=f, files=ALL) is True
    assert len(fake.scripts) == 1 and "tar -xzf -" in fake.scripts[0]
    with tarfile.open(fileobj=io.BytesIO(fake.stdins[0])) as tar:
        (member,) = tar.getmembers()
        assert member.name == "srv/shop/shared/.env"
        assert member.mode == 0o600 and member.uname == "shop"


def test_app_env_as_wanted_runs_nothing(fake):
    assert app_env.ensure_app_env(None, CFG, rep(), facts=matching_facts(ALL), files=ALL) is False
    assert fake.scripts == []


def test_units_unchanged_and_running_need_nothing(fake):
    f = matching_facts(ALL, unit_enabled={"shop.socket": "enabled", "shop.service": "enabled"},
                       unit_active={"shop.socket": "active"})
    assert systemd.ensure_units(None, CFG, rep(), facts=f, files=ALL) is False
    assert fake.scripts == []


def test_changed_unit_reloads_systemd_once(fake):
    f = matching_facts([ENV, SOCK, SITE], unit_enabled={"shop.socket": "enabled", "shop.service": "enabled"},
                       unit_active={"shop.socket": "active"})
    assert systemd.ensure_units(None, CFG, rep(), facts=f, files=ALL) is True
    assert fake.scripts[-1] == "systemctl daemon-reload"


def test_new_units_are_enabled_and_socket_started():
    notes, script = systemd.activation_script(CFG, facts_with(), ["/etc/systemd/system/shop.socket"])
    assert script.startswith("systemctl daemon-reload")
    assert "systemctl enable --quiet shop.socket" in script
    assert "systemctl start shop.socket" in script


def test_nginx_plan_and_script():
    f = matching_facts([], unit_active={"nginx.service": "active"})
    f.files[nginx.DEFAULT_SITE] = fact(nginx.DEFAULT_SITE, "link")
    to_write, links, removals = nginx.plan([SITE], f)
    assert to_write == [SITE]
    assert links == ["/etc/nginx/sites-enabled/shop.conf"]
    assert removals == [nginx.DEFAULT_SITE]
    script = nginx.apply_script(to_write, links, removals, nginx_active=True)
    # the config is tested before nginx reloads, and the old file comes back if the test fails
    assert script.index("nginx -t") < script.index("systemctl reload nginx")
    assert "mv -f /etc/nginx/sites-available/shop.conf.pronghorn-prev" in script


CATCH_ALL = File("/etc/nginx/sites-available/pronghorn-default.conf", "server { return 444; }\n")


def test_catch_all_is_enabled_when_rendered():
    f = matching_facts([SITE, CATCH_ALL], unit_active={"nginx.service": "active"})
    _, links, removals = nginx.plan([SITE, CATCH_ALL], f)
    assert nginx.CATCH_ALL in links and removals == []


def test_catch_all_is_disabled_when_the_app_answers_every_name():
    # domains = ["_"]: the catch-all is not rendered, and its old link would be a second
    # default server on port 80
    f = matching_facts([SITE], unit_active={"nginx.service": "active"})
    f.files[nginx.CATCH_ALL] = fact(nginx.CATCH_ALL, "link")
    f.files["/etc/nginx/sites-enabled/shop.conf"] = fact("/etc/nginx/sites-enabled/shop.conf", "link")
    to_write, links, removals = nginx.plan([SITE], f)
    assert (to_write, links, removals) == ([], [], [nginx.CATCH_ALL])
    assert f"rm -f {nginx.CATCH_ALL}" in nginx.apply_script(to_write, links, removals, nginx_active=True)


def test_nginx_as_wanted_does_not_reload(fake):
    f = matching_facts([SITE], unit_active={"nginx.service": "active"})
    f.files["/etc/nginx/sites-enabled/shop.conf"] = fact("/etc/nginx/sites-enabled/shop.conf", "link")
    assert nginx.ensure_site(None, CFG, rep(), facts=f, files=[SITE]) is False
    assert fake.scripts == []


def test_second_default_server_says_which_setting_to_change(fake):
    from toolkit.errors import DeployError

    fake.answers = {"nginx -t": Result("nginx: [emerg] a duplicate default server for 0.0.0.0:80 in "
                                       "/etc/nginx/sites-enabled/blog.conf:15\nnginx -t failed", "", 1)}
    with pytest.raises(DeployError) as err:
        nginx.ensure_site(None, CFG, rep(), facts=matching_facts([]), files=[SITE])
    assert 'domains = ["_"]' in str(err.value) and "domains = [" in err.value.next_step


def test_nginx_test_failure_is_reported(fake):
    fake.answers = {"nginx -t": Result("nginx: [emerg] unknown directive\nnginx -t failed", "", 1)}
    f = matching_facts([], unit_active={"nginx.service": "active"})
    with pytest.raises(RemoteError) as err:
        nginx.ensure_site(None, CFG, rep(), facts=f, files=[SITE])
    assert "unknown directive" in str(err.value)


# -- extra CA ----------------------------------------------------------------------------------

EXTRA_CA = File("/usr/local/share/ca-certificates/pronghorn-extra-ca.crt", "-----BEGIN CERTIFICATE-----\n")


def test_changed_extra_ca_is_added_to_the_trust_store(fake, monkeypatch):
    from roles import proxy

    monkeypatch.setattr("roles.proxy.sh", fake.sh)
    assert proxy.ensure_extra_ca(None, CFG, rep(), facts=matching_facts([]), files=[EXTRA_CA]) is True
    assert fake.scripts[-1].startswith("update-ca-certificates")


def test_unchanged_extra_ca_does_not_rebuild_the_trust_store(fake, monkeypatch):
    from roles import proxy

    monkeypatch.setattr("roles.proxy.sh", fake.sh)
    assert proxy.ensure_extra_ca(None, CFG, rep(), facts=matching_facts([EXTRA_CA]), files=[EXTRA_CA]) is False
    assert not any("update-ca-certificates" in s for s in fake.scripts)
