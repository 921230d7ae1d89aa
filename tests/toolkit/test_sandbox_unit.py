"""Unit tests of the toolkit/sandbox/ package's logic: names, addresses, generated files and error messages.
No root needed; nothing here starts a container (tests/integration/test_sandbox.py does)."""

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from toolkit import sandbox  # noqa: E402
from toolkit.sandbox import common, image, processes, sshconfig  # noqa: E402
from toolkit import tasks_sandbox  # noqa: E402
from toolkit.sandbox import SandboxError, SandboxRecord  # noqa: E402

CERT_A = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"
CERT_B = "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----"
CERT_C = "-----BEGIN CERTIFICATE-----\nCCCC\n-----END CERTIFICATE-----"


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "STATE_DIR", tmp_path / "state")
    return tmp_path / "state"


# --- names, releases, addresses ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["demo", "test1", "a", "web-2", "x" * 31])
def test_valid_names(name):
    assert sandbox.validate_name(name) == name


@pytest.mark.parametrize("name", ["", "Demo", "1st", "-x", "a_b", "a.b", "x" * 32, "../etc", "a b"])
def test_invalid_names_are_refused_with_the_rule(name):
    with pytest.raises(SandboxError, match="lowercase letters, digits and '-'"):
        sandbox.validate_name(name)


def test_unknown_release_lists_the_choices():
    with pytest.raises(SandboxError) as error:
        sandbox.resolve_release("buster")
    assert "bookworm, trixie, noble, jammy" in str(error.value)


def test_a_misspelt_release_gets_a_suggestion():
    with pytest.raises(SandboxError, match="did you mean 'trixie'"):
        sandbox.resolve_release("trixy")


def test_releases_map_to_their_image_names():
    assert sandbox.resolve_release("bookworm").image == "debian-12"
    assert sandbox.resolve_release("trixie").image == "debian-13"
    assert sandbox.resolve_release("noble").image == "ubuntu-24.04"
    assert sandbox.resolve_release("jammy").image == "ubuntu-22.04"


def test_mirror_can_be_overridden(monkeypatch):
    monkeypatch.setenv("PRONGHORN_UBUNTU_MIRROR", "http://127.0.0.1:9/ubuntu/")
    assert sandbox.resolve_release("noble").mirror == "http://127.0.0.1:9/ubuntu"


def test_unreachable_mirror_says_what_to_do(monkeypatch):
    # A closed loopback port: the same error path as a mirror blocked by a firewall.
    monkeypatch.setenv("PRONGHORN_UBUNTU_MIRROR", "http://127.0.0.1:9/ubuntu")
    with pytest.raises(SandboxError) as error:
        sandbox.check_mirror(sandbox.resolve_release("jammy"), timeout=2)
    message = str(error.value)
    assert "not reachable" in message and "--release bookworm" in message
    assert "PRONGHORN_UBUNTU_MIRROR" in message


def test_addresses_are_a_slash_30_per_sandbox():
    assert sandbox.addresses(1) == ("10.77.1.1", "10.77.1.2")
    assert sandbox.addresses(250) == ("10.77.250.1", "10.77.250.2")


def test_interface_names_fit_the_kernel_limit():
    assert len(sandbox.veth_name(sandbox.MAX_SANDBOXES)) <= 15


def test_allocate_index_takes_the_lowest_free_number():
    assert sandbox.allocate_index(set()) == 1
    assert sandbox.allocate_index({1, 2, 4}) == 3
    assert sandbox.allocate_index({2}) == 1


def test_allocate_index_when_all_are_used():
    with pytest.raises(SandboxError, match="sandbox.down --all"):
        sandbox.allocate_index(set(range(1, sandbox.MAX_SANDBOXES + 1)))


# --- preflight -----------------------------------------------------------------------------------

def test_preflight_without_root_names_the_fix(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SandboxError) as error:
        sandbox.preflight()
    assert "run as root" in str(error.value) and "sudo" in str(error.value)


def test_preflight_names_missing_tools_and_their_packages(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(common, "which", lambda tool: None if tool in ("debootstrap", "systemd-nspawn") else "/bin/x")
    with pytest.raises(SandboxError) as error:
        sandbox.preflight()
    message = str(error.value)
    assert "debootstrap, systemd-nspawn" in message
    assert "apt-get install -y debootstrap systemd-container" in message
    assert "make test" in message


def test_preflight_passes_with_root_and_tools(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(common, "which", lambda tool: "/usr/bin/" + tool)
    sandbox.preflight()


# --- files written inside a host -----------------------------------------------------------------

def test_proxy_files_point_apt_pip_and_shells_at_the_proxy():
    files = sandbox.proxy_files("http://10.77.3.1:8888")
    apt = files["/etc/apt/apt.conf.d/80pronghorn-proxy"]
    assert 'Acquire::http::Proxy "http://10.77.3.1:8888";\n' in apt
    assert 'Acquire::https::Proxy "http://10.77.3.1:8888";\n' in apt
    pip = files["/etc/pip.conf"]
    assert "proxy = http://10.77.3.1:8888" in pip and "cert = /etc/ssl/certs/ca-certificates.crt" in pip
    env = files["/etc/environment"]
    assert 'https_proxy="http://10.77.3.1:8888"' in env and 'no_proxy="localhost,127.0.0.1,::1"' in env
    assert env.startswith('PATH="')  # /etc/environment replaces PATH for login sessions


def test_proxy_files_refuse_a_bad_url():
    with pytest.raises(SandboxError, match="http://HOST:PORT"):
        sandbox.proxy_files("10.77.3.1:8888")


def test_extra_ca_files_are_the_certificates_the_host_lacks():
    local = f"# comment\n{CERT_A}\n{CERT_B}\n\n{CERT_C}\n"
    host = f"{CERT_A}\n{CERT_C}\n"
    assert sandbox.extra_ca_files(local, host) == {
        "/usr/local/share/ca-certificates/pronghorn-extra-01.crt": CERT_B + "\n"}


def test_no_extra_ca_files_when_the_host_trusts_everything():
    assert sandbox.extra_ca_files(f"{CERT_A}\n", f"{CERT_B}\n{CERT_A}\n") == {}


def test_split_pem_keeps_each_block():
    assert sandbox.split_pem(f"x\n{CERT_A}\ny\n{CERT_B}") == [CERT_A, CERT_B]


def test_tinyproxy_config_listens_only_on_the_host_side_and_allows_only_its_sandbox(state_dir):
    config = sandbox.render_tinyproxy_config("demo", 7, "tinyproxy", "tinyproxy")
    lines = config.splitlines()
    assert "Listen 10.77.7.1" in lines and "Port 8888" in lines
    assert [line for line in lines if line.startswith("Allow")] == ["Allow 10.77.7.0/30"]
    assert f'PidFile "{state_dir}/hosts/demo/tinyproxy.pid"' in lines


# --- ssh config ----------------------------------------------------------------------------------

def _box(name, index, running=True):
    host, container = sandbox.addresses(index)
    return sandbox.Sandbox(name=name, address=container, host_address=host, ssh_alias=f"sandbox-{name}",
                           key_path="/repo/.sandbox/id_ed25519", pid=123, running=running, index=index)


def test_ssh_config_has_one_block_per_sandbox():
    text = sandbox.render_ssh_config([_box("web", 2), _box("demo", 1)])
    assert text.count("\nHost ") == 2
    demo = text[text.index("Host sandbox-demo"):text.index("Host sandbox-web")]
    for line in ["HostName 10.77.1.2", "User root", "IdentityFile /repo/.sandbox/id_ed25519",
                 "StrictHostKeyChecking yes", f"UserKnownHostsFile {sshconfig.known_hosts_path()}",
                 "UpdateHostKeys no", "LogLevel ERROR"]:
        assert f"    {line}\n" in demo
    assert "/dev/null" not in text and "StrictHostKeyChecking no" not in text


def test_ssh_config_without_sandboxes_has_no_hosts():
    lines = sandbox.render_ssh_config([]).splitlines()
    assert [line for line in lines if line.startswith("Host ")] == []


def test_ssh_reads_the_generated_config(tmp_path):
    # The real ssh client parses the file and resolves the alias as Fabric will (ssh -G prints it).
    config = tmp_path / "ssh_config"
    config.write_text(sandbox.render_ssh_config([_box("demo", 4)]))
    shown = subprocess.run(["ssh", "-G", "-F", str(config), "sandbox-demo"], capture_output=True,
                           text=True, check=True).stdout.splitlines()
    assert "hostname 10.77.4.2" in shown and "user root" in shown
    assert "stricthostkeychecking true" in shown
    assert f"userknownhostsfile {sshconfig.known_hosts_path()}" in shown


def _write_host_keys(state_dir, name, files):
    ssh_dir = state_dir / "hosts" / name / "rootfs" / "etc" / "ssh"
    ssh_dir.mkdir(parents=True)
    for file_name, text in files.items():
        (ssh_dir / file_name).write_text(text)


def test_host_keys_are_read_from_the_hosts_own_files_ed25519_first(state_dir):
    _write_host_keys(state_dir, "demo", {
        "ssh_host_rsa_key.pub": "ssh-rsa AAAArsa root@demo\n",
        "ssh_host_ed25519_key.pub": "ssh-ed25519 AAAAed root@demo\n",
        "ssh_host_ecdsa_key.pub": "ecdsa-sha2-nistp256 AAAAec root@demo\n",
        "ssh_host_ed25519_key": "PRIVATE, never read\n",
    })
    assert sshconfig.host_keys_from_rootfs("demo") == [
        "ssh-ed25519 AAAAed", "ecdsa-sha2-nistp256 AAAAec", "ssh-rsa AAAArsa"]


def test_known_hosts_lists_each_hosts_recorded_keys_under_its_name_and_address(state_dir):
    sshconfig.record_host_keys("demo", ["ssh-ed25519 AAAAed", "ssh-rsa AAAArsa"])
    sshconfig.record_host_keys("untrusted", [])
    keys = sshconfig.recorded_host_keys
    text = sshconfig.render_known_hosts([_box("demo", 4), _box("untrusted", 5), _box("ghost", 6)], keys)
    entries = [line for line in text.splitlines() if not line.startswith("#")]
    assert entries == ["sandbox-demo,10.77.4.2 ssh-ed25519 AAAAed", "sandbox-demo,10.77.4.2 ssh-rsa AAAArsa"]
    assert keys("ghost") is None  # never recorded, unlike an emptied record
    sshconfig.add_host_key("untrusted", "ssh-ed25519 AAAAnew")
    sshconfig.add_host_key("untrusted", "ssh-ed25519 AAAAnew")
    assert keys("untrusted") == ["ssh-ed25519 AAAAnew"]


def test_openssh_accepts_only_the_recorded_key(state_dir, tmp_path):
    # ssh-keygen -F answers from the rendered file as ssh will: the recorded key, by name and address.
    key = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    fields = (tmp_path / "hostkey.pub").read_text().split()
    sshconfig.record_host_keys("demo", [f"{fields[0]} {fields[1]}"])
    known = tmp_path / "known_hosts"
    known.write_text(sshconfig.render_known_hosts([_box("demo", 4)], sshconfig.recorded_host_keys))
    for name in ("10.77.4.2", "sandbox-demo"):
        found = subprocess.run(["ssh-keygen", "-F", name, "-f", str(known)], capture_output=True, text=True)
        assert found.returncode == 0 and fields[1] in found.stdout
    assert subprocess.run(["ssh-keygen", "-F", "10.77.5.2", "-f", str(known)],
                          capture_output=True).returncode != 0


def test_include_goes_to_the_top_once(tmp_path):
    user_config = tmp_path / ".ssh" / "config"
    user_config.parent.mkdir()
    user_config.write_text("Host work\n    User me\n")
    included = Path("/repo/.sandbox/ssh_config")
    assert sandbox.ensure_include(user_config, included) is True
    assert user_config.read_text() == "Include /repo/.sandbox/ssh_config\nHost work\n    User me\n"
    assert sandbox.ensure_include(user_config, included) is False
    assert user_config.read_text().count("Include") == 1


def test_include_creates_a_private_config(tmp_path):
    user_config = tmp_path / ".ssh" / "config"
    sandbox.ensure_include(user_config, Path("/repo/.sandbox/ssh_config"))
    assert user_config.read_text() == "Include /repo/.sandbox/ssh_config\n"
    assert user_config.stat().st_mode & 0o777 == 0o600


def test_ssh_command_uses_the_generated_config():
    argv = sandbox.ssh_command(_box("demo", 1), "uptime")
    assert argv[:3] == ["ssh", "-F", str(sandbox.ssh_config_path())]
    assert argv[-2:] == ["sandbox-demo", "uptime"] and "BatchMode=yes" in argv


# --- state ---------------------------------------------------------------------------------------

def _dead_pid():
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_state_round_trip_and_running_detection(state_dir):
    me = os.getpid()
    SandboxRecord("alive", 3, "bookworm", "/k", nspawn_pid=me, nspawn_start=processes.start_time(me)).save()
    SandboxRecord("dead", 1, "bookworm", "/k", nspawn_pid=_dead_pid(), nspawn_start=1).save()
    alive, dead = sandbox.get("alive"), sandbox.get("dead")
    assert alive.running and alive.pid == me and alive.address == "10.77.3.2"
    assert alive.ssh_alias == "sandbox-alive" and alive.proxy_url == "http://10.77.3.1:8888"
    assert not dead.running and dead.pid is None
    assert [box.name for box in sandbox.list_sandboxes()] == ["alive", "dead"]
    assert sandbox.get("nothing") is None


def test_a_reused_pid_is_not_taken_for_the_sandbox(state_dir):
    # After a reboot the recorded PID may belong to another process: its start time differs.
    me = os.getpid()
    SandboxRecord("old", 1, "bookworm", "/k", nspawn_pid=me, nspawn_start=processes.start_time(me) - 1).save()
    assert sandbox.get("old").running is False


def test_corrupt_state_names_the_file_and_the_fix(state_dir):
    path = state_dir / "hosts" / "broken" / "state.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(SandboxError) as error:
        sandbox.get("broken")
    assert str(path) in str(error.value) and "sandbox.down --name broken" in str(error.value)


def test_proxy_settings_for_an_unknown_sandbox(state_dir):
    with pytest.raises(SandboxError, match="invoke sandbox.up --name ghost"):
        sandbox.proxy_settings("ghost")


def test_mounts_under_finds_mount_points_below_a_path(tmp_path):
    assert "/proc" in sandbox.mounts_under(Path("/proc"))
    assert sandbox.mounts_under(tmp_path / "nothing-mounted-here") == []


def test_image_is_rebuilt_when_its_version_is_old(tmp_path):
    tree = tmp_path / "debian-12"
    tree.mkdir()
    assert image.image_version(tree) is None  # an interrupted or foreign tree is never used
    (tree / ".pronghorn-image").write_text('{"version": %d}' % sandbox.IMAGE_VERSION)
    assert image.image_version(tree) == sandbox.IMAGE_VERSION


def test_each_release_has_its_own_image_directory(state_dir):
    dirs = {image.image_dir(release) for release in sandbox.RELEASES.values()}
    assert len(dirs) == len(sandbox.RELEASES)
    assert image.image_dir(sandbox.resolve_release("trixie")) == state_dir / "images" / "debian-13"


def test_debian_sources_name_the_release_and_its_security_suite(monkeypatch):
    monkeypatch.delenv("PRONGHORN_DEBIAN_MIRROR", raising=False)
    sources = sandbox.resolve_release("trixie").sources_list().splitlines()
    assert sources == ["deb http://deb.debian.org/debian trixie main",
                       "deb http://deb.debian.org/debian trixie-updates main",
                       "deb http://security.debian.org/debian-security trixie-security main"]


# --- the invoke tasks ----------------------------------------------------------------------------

TASKS = [tasks_sandbox.up, tasks_sandbox.down, tasks_sandbox.list_, tasks_sandbox.ssh]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_each_task_has_a_one_line_docstring_and_help_for_every_option(task):
    doc = task.__doc__.strip()
    assert doc and "\n" not in doc
    options = list(inspect.signature(task.body).parameters)[1:]  # after the context `c`
    for option in options:
        assert option in task.help, f"{task.name}: --{option} has no help"


def test_ssh_task_passes_what_follows_the_double_dash():
    assert tasks_sandbox._remainder(["invoke", "sandbox.ssh", "--", "uname", "-a"]) == "uname -a"
    assert tasks_sandbox._remainder(["invoke", "sandbox.ssh"]) == ""


# --- the state record ----------------------------------------------------------------------------

def test_record_file_keeps_the_state_json_format(state_dir):
    # The keys of state.json are those of the dict the toolkit wrote before the record existed, so
    # sandboxes made by an older checkout are still found, stopped and removed.
    SandboxRecord("web", 4, "trixie", "/k", nspawn_pid=10, nspawn_start=20, proxy_pid=30).save()
    data = json.loads((state_dir / "hosts" / "web" / "state.json").read_text())
    assert data == {"name": "web", "index": 4, "release": "trixie", "key_path": "/k",
                    "nspawn_pid": 10, "nspawn_start": 20, "proxy_pid": 30}
    assert SandboxRecord.load("web") == SandboxRecord("web", 4, "trixie", "/k", nspawn_pid=10,
                                                      nspawn_start=20, proxy_pid=30)


def test_a_stopped_record_keeps_the_host_and_forgets_its_processes():
    running = SandboxRecord("web", 4, "bookworm", "/k", nspawn_pid=10, nspawn_start=20, init_pid=11,
                            init_start=21, proxy_pid=30, proxy_start=31)
    assert running.stopped() == SandboxRecord("web", 4, "bookworm", "/k")
    assert running.nspawn_pid == 10  # records are never changed in place


def test_record_with_a_missing_field_names_the_fix(state_dir):
    path = state_dir / "hosts" / "half" / "state.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"name": "half"}')
    with pytest.raises(SandboxError, match="sandbox.down --name half"):
        SandboxRecord.load("half")


def test_a_trailing_newline_is_not_a_valid_name():
    with pytest.raises(SandboxError):
        sandbox.validate_name("demo\n")


# --- private networks (privnet.py) ---------------------------------------------------------------

@pytest.mark.parametrize("net", ["shop", "a", "net-2", "x" * 31])
def test_valid_network_names(net):
    assert sandbox.validate_net(net) == net


@pytest.mark.parametrize("net", ["", "Shop", "1net", "a_b", "a.b", "x" * 32, "../etc", "shop\n"])
def test_invalid_network_names_are_refused_with_the_rule(net):
    with pytest.raises(SandboxError, match=r"invalid network name .*lowercase letters.*--net shop"):
        sandbox.validate_net(net)


def test_a_hosts_private_address_is_its_number_in_its_networks_subnet():
    assert sandbox.private_address(1, 2) == "10.78.1.2"
    assert sandbox.private_address(sandbox.MAX_NETWORKS, sandbox.MAX_SANDBOXES) == "10.78.250.250"
    # Every private address lies in the range deploy.toml's [network] private names for sandboxes.
    import ipaddress
    assert ipaddress.ip_address(sandbox.private_address(250, 250)) in ipaddress.ip_network(sandbox.PRIVATE_RANGE)


def test_allocate_net_index_takes_the_lowest_free_number():
    assert sandbox.allocate_net_index(set()) == 1
    assert sandbox.allocate_net_index({1, 3}) == 2


def test_allocate_net_index_when_every_subnet_is_used_names_the_fix():
    with pytest.raises(SandboxError, match=r"all 250 private networks.*sandbox.down --net NAME"):
        sandbox.allocate_net_index(set(range(1, sandbox.MAX_NETWORKS + 1)))


def test_switch_namespace_and_locks_never_collide_with_a_hosts():
    from toolkit.sandbox import privnet
    # A host may be called "net-shop": its namespace is pronghorn-net-shop, the switch's is not.
    assert sandbox.switch_ns("shop") != sandbox.netns_name("net-shop")
    assert privnet.lock_name("shop") != "shop"
    assert len(privnet.port_name(sandbox.MAX_SANDBOXES)) <= 15


def test_networks_are_numbered_once_and_recorded(state_dir):
    from toolkit.sandbox import privnet
    shop = privnet.ensure_net("shop")
    blog = privnet.ensure_net("blog")
    assert (shop.index, blog.index) == (1, 2)
    assert privnet.ensure_net("shop") == shop  # joining again keeps the number
    assert sandbox.NetRecord.load("shop").subnet == "10.78.1.0/24"
    assert [net.name for net in sandbox.net_records()] == ["blog", "shop"]
    privnet.NetRecord.path("shop").unlink()
    assert privnet.ensure_net("cafe").index == 1  # a freed number is given out again


def test_corrupt_network_state_names_the_file_and_the_fix(state_dir):
    path = state_dir / "nets" / "shop.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"name": "shop"}')
    with pytest.raises(SandboxError) as error:
        sandbox.NetRecord.load("shop")
    assert str(path) in str(error.value) and "sandbox.down --net shop" in str(error.value)


def test_a_host_on_a_network_records_it_and_its_private_address(state_dir):
    SandboxRecord("db", 4, "bookworm", "/k", net="shop", private_address="10.78.1.4").save()
    data = json.loads((state_dir / "hosts" / "db" / "state.json").read_text())
    assert data["net"] == "shop" and data["private_address"] == "10.78.1.4"
    box = sandbox.get("db")
    assert (box.net, box.private_address, box.address) == ("shop", "10.78.1.4", "10.77.4.2")
    # A host without a network is recorded exactly as before.
    SandboxRecord("web", 5, "bookworm", "/k").save()
    assert "net" not in json.loads((state_dir / "hosts" / "web" / "state.json").read_text())
    assert sandbox.get("web").private_address is None


def test_a_stopped_record_keeps_its_network():
    running = SandboxRecord("db", 4, "bookworm", "/k", nspawn_pid=10, net="shop", private_address="10.78.1.4")
    assert running.stopped() == SandboxRecord("db", 4, "bookworm", "/k", net="shop",
                                              private_address="10.78.1.4")


def test_up_refuses_a_bad_network_name_before_touching_anything(state_dir):
    with pytest.raises(SandboxError, match="invalid network name"):
        sandbox.up("web", net="Shop!")
    assert not (state_dir / "hosts").exists()


def test_down_net_of_an_unknown_network_says_how_to_see_them(state_dir, monkeypatch):
    monkeypatch.setattr(common.os, "geteuid", lambda: 0)
    with pytest.raises(SandboxError, match=r"no private network named 'nowhere'.*sandbox.list"):
        sandbox.down_net("nowhere")


@pytest.mark.parametrize("made_on, asked", [(None, "shop"), ("blog", "shop")])
def test_up_of_a_host_made_on_another_network_says_to_remake_it(state_dir, monkeypatch, made_on, asked):
    from toolkit.sandbox import lifecycle
    monkeypatch.setattr(lifecycle, "preflight", lambda: None)
    SandboxRecord("web", 5, "bookworm", "/k", net=made_on,
                  private_address="10.78.1.5" if made_on else None).save()
    with pytest.raises(SandboxError) as error:
        sandbox.up("web", net=asked)
    message = str(error.value)
    assert f"not on {asked}" in message
    assert "sandbox.down --name web" in message and f"sandbox.up --name web --net {asked}" in message


def test_a_hosts_private_mac_is_stable_and_its_own():
    from toolkit.sandbox import privnet
    macs = {privnet.private_mac(net, host) for net in (1, 2, 250) for host in (1, 2, 250)}
    assert len(macs) == 9
    assert all(int(mac.split(":")[0], 16) & 0b11 == 0b10 for mac in macs)  # local, unicast
    assert privnet.private_mac(1, 2) == privnet.private_mac(1, 2)
