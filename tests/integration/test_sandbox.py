"""Sandbox hosts (toolkit/sandbox/) behave like real machines: systemd as PID 1, sshd and journald
running, packages from apt and PyPI through the per-sandbox proxy, and `up`/`down` are idempotent and
leave nothing behind."""

import ipaddress
import os
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from toolkit import sandbox as sandboxes
from toolkit.sandbox import processes

pytestmark = pytest.mark.integration


def test_systemd_is_pid_1_and_the_system_finishes_booting(host):
    assert host.check_output("cat /proc/1/comm") == "systemd"
    state = host.run("timeout 60 systemctl is-system-running --wait")
    assert state.stdout.strip() in ("running", "degraded"), state.stdout + state.stderr


def test_sshd_and_journald_are_active_and_the_journal_records(host):
    assert host.service("ssh").is_running
    assert host.service("systemd-journald").is_running
    marker = f"pronghorn-test-{uuid.uuid4().hex}"
    host.check_output(f"echo {marker} | systemd-cat -t pronghorn-test")
    found = host.run(f"for i in $(seq 50); do journalctl -q -t pronghorn-test --grep {marker} && exit 0; "
                     "sleep 0.1; done; exit 1")
    assert marker in found.stdout


def test_proxy_settings_inside_point_at_the_sandbox_proxy(sandbox, host):
    for path, content in sandboxes.proxy_files(sandbox.proxy_url).items():
        assert host.file(path).content_string == content, path
    assert sandbox.proxy_url == f"http://{sandbox.host_address}:{sandboxes.PROXY_PORT}"


def test_apt_get_update_works_through_the_proxy(sandbox, host):
    proxy_log = sandboxes.host_dir(sandbox.name) / "tinyproxy.log"
    before = proxy_log.read_text()
    result = host.run("apt-get update")
    assert result.rc == 0, result.stdout + result.stderr
    # The container has no route out (the machine does not forward): the mirror was fetched by its proxy.
    fetched = proxy_log.read_text()[len(before):]
    assert "deb.debian.org" in fetched


def test_pip_reaches_pypi_through_the_proxy_with_the_machines_ca(host):
    result = host.run("set -e; d=$(mktemp -d); python3 -m venv $d/venv; "
                      "$d/venv/bin/pip download -q --no-deps six -d $d/dl; ls $d/dl; rm -rf $d")
    assert result.rc == 0, result.stdout + result.stderr
    assert result.stdout.strip().startswith("six-") and result.stdout.strip().endswith(".whl")


def test_plain_ssh_with_the_alias_works(sandbox):
    # What Fabric and a person at the shell use: root's ~/.ssh/config includes the generated config.
    result = subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", sandbox.ssh_alias,
                             "hostname"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == sandbox.name


def test_up_again_returns_the_same_running_sandbox(sandbox):
    again = sandboxes.up(sandbox.name)
    assert again.running and again.pid == sandbox.pid
    assert (again.address, again.index) == (sandbox.address, sandbox.index)
    config = sandboxes.ssh_config_path().read_text()
    assert config.count(f"Host {sandbox.ssh_alias}\n") == 1


def test_reset_gives_a_fresh_root_filesystem_at_the_same_address(fresh_sandbox):
    marker = "/root/left-by-a-test"
    assert sandboxes.run_in(fresh_sandbox, f"touch {marker}").returncode == 0
    reset = sandboxes.reset(fresh_sandbox.name, log=lambda message: None)
    assert reset.address == fresh_sandbox.address and reset.running
    assert sandboxes.run_in(reset, f"test -e {marker}").returncode == 1
    assert sandboxes.run_in(reset, "systemctl is-active ssh").stdout.strip() == "active"


def test_up_boots_again_a_sandbox_whose_container_died(fresh_sandbox):
    # As after a crash or a reboot of this machine: the state is there, the processes are not.
    # Only nspawn is killed: the container's systemd lives on, orphaned, until `up` clears it.
    assert sandboxes.run_in(fresh_sandbox, "echo kept > /root/kept && sync").returncode == 0
    orphans = _descendants(fresh_sandbox.pid)
    os.kill(fresh_sandbox.pid, signal.SIGKILL)
    assert processes.wait_gone(fresh_sandbox.pid, 10)
    assert sandboxes.get(fresh_sandbox.name).running is False

    again = sandboxes.up(fresh_sandbox.name, log=lambda message: None)
    assert again.running and again.address == fresh_sandbox.address
    assert sandboxes.run_in(again, "cat /root/kept").stdout.strip() == "kept"  # its files survive
    assert [pid for pid in orphans if _live(pid)] == []  # the old container is gone


def _numbers_in_use() -> set[int]:
    return {box.index for box in sandboxes.list_sandboxes()}


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        children = processes.children(todo.pop())
        found.update(children)
        todo.extend(children)
    return found


def _live(pid: int) -> bool:
    return processes.process_alive(pid)


def test_two_up_then_down_leave_no_namespace_link_mount_or_process(sandbox):
    names = [f"test-a{uuid.uuid4().hex[:4]}", f"test-b{uuid.uuid4().hex[:4]}"]
    made = []
    try:
        for name in names:
            made.append(sandboxes.up(name, log=lambda message: None))
        assert made[0].address != made[1].address
        leftovers = []
        for box in made:
            record = sandboxes.SandboxRecord.load(box.name)
            pids = {box.pid, record.proxy_pid} | _descendants(box.pid)
            assert len(pids) > 3 and all(_live(pid) for pid in pids)  # nspawn, proxy, systemd, sshd...
            netns = Path(f"/run/netns/{sandboxes.netns_name(box.name)}")
            link = Path(f"/sys/class/net/{sandboxes.veth_name(box.index)}")
            assert netns.exists() and link.exists()
            leftovers.append((box, pids, netns, link))
    finally:
        for name in names:
            sandboxes.down(name)

    config = sandboxes.ssh_config_path().read_text()
    for box, pids, netns, link in leftovers:
        assert sandboxes.get(box.name) is None
        assert not sandboxes.host_dir(box.name).exists()
        assert not netns.exists()
        # The link is named by number: another test session may have been given that number since.
        assert not link.exists() or box.index in _numbers_in_use()
        assert sandboxes.mounts_under(netns) == []
        assert sandboxes.mounts_under(sandboxes.host_dir(box.name)) == []
        assert [pid for pid in pids if _live(pid)] == []
        assert f"Host {box.ssh_alias}\n" not in config
        assert sandboxes.down(box.name) is False  # down is idempotent
    # The session's sandbox is untouched by the others coming and going.
    assert sandboxes.run_in(sandbox, "true").returncode == 0


# --- private networks ----------------------------------------------------------------------------

# A small TCP server on a host: answers each connection with the peer's address, then closes.
# Run as a transient unit so the ssh command returns; RuntimeMaxSec bounds it.
_ECHO_PEER = ("import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
              "s.bind(('0.0.0.0', 7070)); s.listen()\n"
              "while True:\n c, a = s.accept(); c.sendall(a[0].encode()); c.close()")
_CONNECT = ("import socket, sys\n"
            "try:\n s = socket.create_connection((sys.argv[1], 7070), timeout=3); print(s.recv(100).decode())\n"
            "except OSError as e:\n print('refused:', e); sys.exit(3)")


def _serve_peer_address(box):
    result = sandboxes.run_in(box, "systemd-run --unit echo-peer -p RuntimeMaxSec=120 "
                                   f"python3 -c \"{_ECHO_PEER}\" && "
                                   "for i in $(seq 50); do ss -ltn | grep -q :7070 && exit 0; sleep 0.1; done; exit 1")
    assert result.returncode == 0, result.stdout + result.stderr


def _connect_from(box, address):
    return sandboxes.run_in(box, f"python3 -c \"{_CONNECT}\" {address}", timeout=30)


def test_hosts_on_one_private_network_reach_each_other_and_no_one_else_does(sandbox):
    tag = uuid.uuid4().hex[:4]
    net, names = f"tnet{tag}", [f"test-p{tag}", f"test-q{tag}"]
    try:
        first, second = (sandboxes.up(name, net=net, log=lambda message: None) for name in names)
        assert (first.net, second.net) == (net, net)
        subnet = sandboxes.NetRecord.load(net).subnet
        assert all(ipaddress.ip_address(box.private_address) in ipaddress.ip_network(subnet)
                   for box in (first, second))
        assert first.private_address != second.private_address
        assert sandboxes.get(first.name).private_address == first.private_address  # recorded

        _serve_peer_address(second)
        reached = _connect_from(first, second.private_address)
        # The server saw the connection come from the first host's private address: no NAT between.
        assert reached.returncode == 0 and reached.stdout.strip() == first.private_address, reached.stdout

        # A host not on the network (the session's) and this machine do not reach it.
        outsider = _connect_from(sandbox, second.private_address)
        assert outsider.returncode == 3, outsider.stdout + outsider.stderr
        with pytest.raises(OSError):
            socket.create_connection((second.private_address, 7070), timeout=3)
        # Each host is still reachable from this machine at its own address, as any sandbox.
        assert sandboxes.run_in(second, "true").returncode == 0

        # A reset keeps the host on its network, at the same private address.
        again = sandboxes.reset(second.name, log=lambda message: None)
        assert (again.net, again.private_address) == (net, second.private_address)
        _serve_peer_address(again)
        assert _connect_from(first, again.private_address).stdout.strip() == first.private_address

        # The network stays while a host is on it.
        sandboxes.down(first.name)
        assert Path(f"/run/netns/{sandboxes.switch_ns(net)}").exists()
        assert sandboxes.NetRecord.load(net) is not None
    finally:
        for name in names:
            sandboxes.down(name)

    # ...and goes with its last host: no namespace, link, record or lock left of it or its hosts.
    assert sandboxes.NetRecord.load(net) is None
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert sandboxes.switch_ns(net) not in netns
    for box in (first, second):
        assert sandboxes.netns_name(box.name) not in netns
        veth = sandboxes.veth_name(box.index)
        assert (f" {veth}:" not in links and f" {veth}@" not in links) or box.index in _numbers_in_use()
    assert sandboxes.run_in(sandbox, "true").returncode == 0


def test_down_net_removes_the_network_and_its_hosts():
    tag = uuid.uuid4().hex[:4]
    net, name = f"tnet{tag}", f"test-r{tag}"
    try:
        box = sandboxes.up(name, net=net, log=lambda message: None)
        assert sandboxes.down_net(net) == [name]
    finally:
        sandboxes.down(name)
    assert sandboxes.get(name) is None and sandboxes.NetRecord.load(net) is None
    assert not Path(f"/run/netns/{sandboxes.switch_ns(net)}").exists()
    assert not Path(f"/run/netns/{sandboxes.netns_name(box.name)}").exists()
