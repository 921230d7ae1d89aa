"""The host-hardening roles (roles/hardening/) as pure plans on plain facts, their fact's parser,
the [hardening] config switches, and apt's own parser on the unattended-upgrades files.
What they do on a real host: tests/integration/test_hardening.py."""

import io
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from roles import hardening
from roles.hardening import fail2ban, firewall, sshd, swap, timesync, upgrades
from roles.wanted import BASE_PACKAGES, Wanted
from toolkit.config import ConfigError, Hardening, load_app_config
from toolkit.facts.files import FileFact, sha256_text
from toolkit.facts.hardening import HardenedHostFacts, HardeningFact, HostHardening, UfwRule
from toolkit.facts.host import UnitState
from toolkit.layout import HostLayout

REPO = Path(__file__).resolve().parents[2]
NSPAWN_CAPS = 0xfcecafff  # a sandbox host's bounding set: no CAP_NET_ADMIN (12)
ALL_CAPS = 0x1ffffffffff
GIB_KB = 1024 * 1024


def wanted(**kw) -> Wanted:
    kw.setdefault("hardening", Hardening())
    return Wanted(app="shop", layout=HostLayout("shop"), **kw)


def facts(units=None, files=None, os_id="debian", **hard) -> HardenedHostFacts:
    hard.setdefault("capabilities", ALL_CAPS)
    return HardenedHostFacts(os_id=os_id, os_version="12", units=units or {}, files=files or {},
                             hardening=HostHardening(**hard))


def on_host(*rendered) -> dict:
    """Files facts saying each rendered file is on the host exactly as wanted."""
    return {f.path: FileFact(f.path, True, "file", f.mode, f.owner, f.group, sha256_text(f.content))
            for f in rendered}


def rules(*specs) -> tuple:
    return tuple(UfwRule("allow", spec.split("/")[1], spec.split("/")[0]) for spec in specs)


# --------------------------------------------------------------------------- the fact

GATHERED = {
    "hardening": ["systemd-nspawn"],
    "hardening.cap": ["00000000fcecafff"],
    "hardening.mem": ["MemTotal:        1012345 kB", "SwapTotal:             0 kB", "RootFree: 9000000"],
    "hardening.swapfile": ["mode: ", "fstab: 0"],
    "hardening.sshd": ["port 22", "port 2222", "permitrootlogin without-password", "passwordauthentication yes"],
    "hardening.ufw": ["### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in",
                      "### tuple ### allow tcp 22 ::/0 any ::/0 in",
                      "### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 OpenSSH - in",
                      'DEFAULT_INPUT_POLICY="DROP"', "ENABLED=yes"],
    "hardening.login": ["deploy"],
    "hardening.time": ["chrony"],
}


def test_fact_parses_every_section():
    got = HardeningFact().parse_sections(GATHERED)
    assert got.container == "systemd-nspawn" and not got.can(12) and got.can(21)
    assert (got.mem_kb, got.swap_kb, got.root_free_kb) == (1012345, 0, 9000000)
    assert got.swapfile_mode is None and not got.swapfile_in_fstab
    assert got.sshd_ports == (22, 2222) and got.sshd_setting("PasswordAuthentication") == "yes"
    assert UfwRule("allow", "tcp", "22") in got.ufw_rules and len(got.ufw_rules) == 3
    assert got.ufw_default_input == "DROP" and got.ufw_enabled
    assert got.login_user == "deploy" and got.time_daemons == ("chrony",)


def test_fact_on_a_machine_with_a_swapfile_and_no_ufw():
    got = HardeningFact().parse_sections({"hardening": ["none"], "hardening.cap": ["000001ffffffffff"],
                                          "hardening.swapfile": ["mode: 600", "fstab: 1"]})
    assert got.container == "" and got.can(12)
    assert got.swapfile_mode == 0o600 and got.swapfile_in_fstab
    assert got.ufw_rules == () and got.ufw_default_input == "" and not got.ufw_enabled


def test_fact_command_is_one_small_script_per_section():
    command = HardeningFact().command()
    for section in ("cap", "mem", "swapfile", "sshd", "ufw", "login", "time"):
        assert f"echo @@hardening.{section}" in command


# --------------------------------------------------------------------------- the switches

def test_every_part_is_on_by_default_and_each_can_be_turned_off(tmp_path):
    app = tmp_path / "app"
    shutil.copytree(REPO / "examples" / "flask", app)
    assert load_app_config(app).hardening == Hardening()
    assert [p.STEP for p in hardening.enabled(Hardening())] == [p.STEP for p in hardening.PARTS]
    off = load_app_config(app, {"hardening.firewall": False, "hardening.swap": False})
    assert firewall not in hardening.enabled(off.hardening) and swap not in hardening.enabled(off.hardening)
    assert "ufw" not in hardening.packages(off.hardening)
    assert "iptables" in hardening.packages(off.hardening)  # fail2ban bans with iptables then


@pytest.mark.parametrize("value, message", [
    (["99999/tcp"], "a port and protocol"), (["22"], "a port and protocol"), ("22/tcp", "a list"),
])
def test_bad_firewall_allow_names_the_key(tmp_path, value, message):
    app = tmp_path / "app"
    shutil.copytree(REPO / "examples" / "flask", app)
    with pytest.raises(ConfigError, match=r"\[hardening\] firewall_allow") as error:
        load_app_config(app, {"hardening.firewall_allow": value})
    assert message in str(error.value)


def test_unknown_hardening_key_lists_the_allowed_ones(tmp_path):
    app = tmp_path / "app"
    shutil.copytree(REPO / "examples" / "flask", app)
    (app / "deploy.toml").write_text((app / "deploy.toml").read_text() + "\n[hardening]\nfirewal = false\n")
    with pytest.raises(ConfigError, match="unknown key 'firewal'.*did you mean 'firewall'"):
        load_app_config(app)


def test_hardening_packages_go_in_the_base_apt_call_except_what_the_host_must_not_get():
    w = wanted()
    assert w.all_packages[:len(BASE_PACKAGES)] == BASE_PACKAGES
    assert {"ufw", "fail2ban", "python3-systemd", "unattended-upgrades", "systemd-timesyncd"} <= set(w.all_packages)
    with_chrony = hardening.for_host(w, facts(time_daemons=("chrony",)), 22, "root", "publickey")
    assert "systemd-timesyncd" not in with_chrony.all_packages  # installing it would remove chrony
    assert Wanted(app="shop", layout=HostLayout("shop")).all_packages == BASE_PACKAGES


# --------------------------------------------------------------------------- sshd

def test_sshd_connected_as_root_keeps_root_on_keys_only_and_says_how_to_move_on():
    [change] = sshd.plan(facts(), wanted(login_user="root"))
    text = change.files[0].content
    assert "PasswordAuthentication no" in text and "KbdInteractiveAuthentication no" in text
    assert "PermitRootLogin prohibit-password" in text
    assert "sshd -t" in change.script and change.tar_on_stdin
    assert any("deploy user with sudo" in n for n in sshd.notes(facts(), wanted(login_user="root")))


def test_sshd_connected_as_a_deploy_user_turns_root_login_off():
    w = wanted(login_user="deploy")
    [change] = sshd.plan(facts(), w)
    assert "PermitRootLogin no" in change.files[0].content
    assert sshd.notes(facts(), w) == []


def test_sshd_never_turns_passwords_off_under_a_password_login():
    w = wanted(login_user="deploy", login_method="password")
    [change] = sshd.plan(facts(), w)
    assert "PasswordAuthentication" not in change.files[0].content
    assert any("add your key" in n for n in sshd.notes(facts(), w))


def test_sshd_drop_in_as_wanted_changes_nothing_but_a_missing_include_is_said():
    w = wanted(login_user="deploy")
    present = on_host(sshd.drop_in(w))
    assert sshd.plan(facts(files=present), w) == []
    ignored = facts(files=present, sshd={"passwordauthentication": ("yes",)})
    assert any("Include" in n for n in sshd.notes(ignored, w))


def test_sshd_drop_in_sorts_before_cloud_images_own():
    name = Path(sshd.DROP_IN).name
    assert name < "50-cloud-init.conf" and name < "pronghorn-sandbox.conf" and name.endswith(".conf")


# --------------------------------------------------------------------------- firewall

def test_firewall_allows_ssh_ports_first_then_web_then_denies_and_enables():
    f = facts(sshd={"port": ("22",)})
    [change] = firewall.plan(f, wanted(ssh_port=2222, hardening=Hardening(firewall_allow=("5432/tcp",))))
    steps = change.script.split(" && ")
    assert steps[:5] == ["ufw allow 22/tcp >/dev/null", "ufw allow 2222/tcp >/dev/null",
                         "ufw allow 80/tcp >/dev/null", "ufw allow 443/tcp >/dev/null",
                         "ufw allow 5432/tcp >/dev/null"]
    assert steps[5:] == ["ufw default deny incoming >/dev/null", "ufw --force enable >/dev/null"]


def test_firewall_as_wanted_changes_nothing():
    f = facts(sshd={"port": ("22",)}, ufw_rules=rules("22/tcp", "80/tcp", "443/tcp"),
              ufw_default_input="DROP", ufw_enabled=True)
    assert firewall.plan(f, wanted()) == [] and firewall.notes(f, wanted()) == []


def test_firewall_in_a_container_saves_rules_but_never_enables():
    f = facts(container="systemd-nspawn", capabilities=NSPAWN_CAPS, sshd={"port": ("22",)})
    [change] = firewall.plan(f, wanted())
    assert "ufw allow 22/tcp" in change.script and "enable" not in change.script
    assert "CAP_NET_ADMIN" in firewall.notes(f, wanted())[0]
    saved = replace(f, hardening=replace(f.hardening, ufw_rules=rules("22/tcp", "80/tcp", "443/tcp"),
                                         ufw_default_input="DROP"))
    assert firewall.plan(saved, wanted()) == []  # a second provision changes nothing


# --------------------------------------------------------------------------- fail2ban

def test_fail2ban_jail_watches_every_ssh_port_from_the_journal_and_bans_through_ufw():
    f = facts(sshd={"port": ("22", "2222")})
    [change] = fail2ban.plan(f, wanted())
    jail = change.files[0].content
    assert "[sshd]" in jail and "port = 22,2222" in jail and "backend = systemd" in jail
    assert "banaction = ufw" in jail
    assert "fail2ban-client -t" in change.script and "restart fail2ban" in change.script
    no_ufw = fail2ban.jail(f, wanted(hardening=Hardening(firewall=False))).content
    assert "banaction" not in no_ufw


def test_fail2ban_running_with_its_jail_changes_nothing():
    w = wanted()
    f = facts(sshd={"port": ("22",)})
    f = replace(f, files=on_host(fail2ban.jail(f, w)),
                units={fail2ban.UNIT: UnitState("enabled", "active")})
    assert fail2ban.plan(f, w) == []
    stopped = replace(f, units={fail2ban.UNIT: UnitState("enabled", "failed")})
    [change] = fail2ban.plan(stopped, w)
    assert change.what == "started fail2ban" and not change.files


# --------------------------------------------------------------------------- security updates

def test_security_updates_only_from_the_distributions_security_archive():
    debian = {f.path: f.content for f in upgrades.files(facts(os_id="debian"))}
    ubuntu = {f.path: f.content for f in upgrades.files(facts(os_id="ubuntu"))}
    assert 'Unattended-Upgrade "1"' in debian[upgrades.AUTO]
    assert "label=Debian-Security" in debian[upgrades.ORIGINS] and "Ubuntu" not in debian[upgrades.ORIGINS]
    assert "-security" in ubuntu[upgrades.ORIGINS] and "Debian" not in ubuntu[upgrades.ORIGINS]
    assert 'Automatic-Reboot "false"' in debian[upgrades.ORIGINS]


@pytest.mark.skipif(not shutil.which("apt-config"), reason="apt-config missing")
def test_apt_reads_the_origins_file_as_security_only(tmp_path):
    """apt's own parser: the #clear drops the origins 50unattended-upgrades allowed before it."""
    before = tmp_path / "50unattended-upgrades"
    before.write_text('Unattended-Upgrade::Origins-Pattern { "origin=Debian,codename=bookworm,label=Debian"; };\n')
    ours = tmp_path / "52pronghorn"
    ours.write_text(upgrades.files(facts())[1].content)
    result = subprocess.run(["apt-config", "-c", str(before), "-c", str(ours), "dump", "Unattended-Upgrade"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    patterns = [line for line in result.stdout.splitlines() if "Origins-Pattern::" in line]
    assert len(patterns) == 2 and all("Debian-Security" in p for p in patterns)


def test_masked_apt_timers_are_left_masked_and_said():
    w = wanted()
    present = on_host(*upgrades.files(facts()))
    masked = facts(files=present, units={t: UnitState("masked", "inactive") for t in upgrades.TIMERS})
    assert upgrades.plan(masked, w) == []
    assert "systemctl unmask" in upgrades.notes(masked, w)[0]
    off = facts(files=present, units={t: UnitState("disabled", "inactive") for t in upgrades.TIMERS})
    [change] = upgrades.plan(off, w)
    assert "systemctl enable --now" in change.script


# --------------------------------------------------------------------------- time sync

def test_time_sync_starts_timesyncd_on_a_machine():
    [change] = timesync.plan(facts(), wanted())
    assert "enable --quiet systemd-timesyncd.service" in change.script and "start" in change.script
    running = facts(units={"systemd-timesyncd.service": UnitState("enabled", "active")})
    assert timesync.plan(running, wanted()) == []


def test_time_sync_keeps_the_daemon_the_host_has():
    f = facts(time_daemons=("chrony",), units={"chrony.service": UnitState("enabled", "active")})
    assert timesync.plan(f, wanted()) == [] and timesync.drop_packages(f) == ("systemd-timesyncd",)


def test_time_sync_in_a_container_enables_only_and_says_why():
    f = facts(container="systemd-nspawn", units={"systemd-timesyncd.service": UnitState("enabled", "inactive")})
    assert timesync.plan(f, wanted()) == []
    assert "container" in timesync.notes(f, wanted())[0]


# --------------------------------------------------------------------------- swap

def test_swap_file_on_a_small_host_without_swap():
    [change] = swap.plan(facts(mem_kb=GIB_KB // 2, root_free_kb=20 * GIB_KB), wanted())
    assert "swapfile.sh 1024" in change.script
    [bigger] = swap.plan(facts(mem_kb=GIB_KB * 3 // 2, root_free_kb=20 * GIB_KB), wanted())
    assert "swapfile.sh 2048" in bigger.script


@pytest.mark.parametrize("hard", [
    dict(mem_kb=4 * GIB_KB),                                        # not small
    dict(mem_kb=GIB_KB, swap_kb=GIB_KB),                             # has swap already
    dict(mem_kb=GIB_KB, swapfile_mode=0o600, swapfile_in_fstab=True, swap_kb=GIB_KB),
])
def test_no_swap_file_where_none_is_needed(hard):
    assert swap.plan(facts(root_free_kb=20 * GIB_KB, **hard), wanted()) == []


def test_swap_file_skipped_in_a_container_or_on_a_full_disk_with_a_note():
    container = facts(mem_kb=GIB_KB, container="systemd-nspawn", capabilities=NSPAWN_CAPS,
                      root_free_kb=20 * GIB_KB)
    assert swap.plan(container, wanted()) == [] and "container" in swap.notes(container, wanted())[0]
    full = facts(mem_kb=GIB_KB, root_free_kb=GIB_KB)
    assert swap.plan(full, wanted()) == [] and "free on /" in swap.notes(full, wanted())[0]


def test_swap_file_with_a_wrong_mode_is_put_right():
    f = facts(mem_kb=GIB_KB, swap_kb=GIB_KB, swapfile_mode=0o644, swapfile_in_fstab=True, root_free_kb=GIB_KB)
    [change] = swap.plan(f, wanted())
    assert "swapfile.sh" in change.script


# --------------------------------------------------------------------------- provision

def test_provision_reports_what_each_part_skipped(monkeypatch):
    """The parts run as steps after the units; a skipped part is an ok step with its reason."""
    from roles.provision import apply_hardening
    from toolkit.report import Reporter

    ran = []
    monkeypatch.setattr("toolkit.executor.sh", lambda c, script, **kw: ran.append(script) or _ok())
    f = facts(container="systemd-nspawn", capabilities=NSPAWN_CAPS, mem_kb=GIB_KB, sshd={"port": ("22",)},
              ufw_rules=rules("22/tcp", "80/tcp", "443/tcp"), ufw_default_input="DROP")
    rep = Reporter(out=io.StringIO())
    changed = apply_hardening(None, rep, f, wanted(hardening=Hardening(ssh=False, fail2ban=False,
                                                                       unattended_upgrades=False)), dry=False)
    steps = {s.name: s for s in rep.hosts[0].steps}
    assert list(steps) == ["firewall (ufw)", "time sync", "swap file"]
    assert steps["firewall (ufw)"].status == "ok" and "CAP_NET_ADMIN" in steps["firewall (ufw)"].note
    assert "container" in steps["swap file"].note
    assert steps["time sync"].status == "changed" and changed == 1 and len(ran) == 1


def _ok():
    from toolkit.remote import Result

    return Result("", "", 0)


def test_first_deploy_installs_hardening_packages_in_the_background_with_nginx():
    """A first deploy builds the venv meanwhile; the hardening steps run after, with nginx's site."""
    from roles import base
    from toolkit.facts.host import AptListsAge

    f = replace(facts(), installed=set(), apt=AptListsAge(now=1_000_000, mtime=1_000_000 - 60))
    now, later = base.plan(f, wanted(), defer=True)
    assert not now.background and "nginx" not in now.script and "ufw" not in now.script
    assert later.background and all(p in later.script for p in ("nginx", "ufw", "fail2ban", "unattended-upgrades"))
    [everything] = base.plan(f, wanted(), defer=False)
    assert "ufw" in everything.script and "python3-venv" in everything.script
