"""The operations on a host, in terms of the other modules: `up` (make and boot, or find it
running), `reset` (a fresh root filesystem at the same address), `down` (stop and delete all that
`up` made). Each holds the host's lock, so different hosts start and stop at the same time.
`up` and `reset` record the host's ssh keys from its own files, so the first ssh is verified.
A host made with `net=` joins that private network (privnet.py) on every boot, reset included;
the network goes with its last host (`down`), or with `down_net`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from toolkit.sandbox import hostfiles, network, privnet, processes, sshconfig
from toolkit.sandbox.common import (
    SandboxError, host_dir, locked, no_such_sandbox, preflight, remove_tree, require_root, rootfs, tail,
    validate_name,
)
from toolkit.sandbox.image import DEFAULT_RELEASE, Release, ensure_image, resolve_release
from toolkit.sandbox.record import Sandbox, SandboxRecord, get, list_sandboxes, records

BOOT_TIMEOUT = 90  # seconds until sshd must answer after the container starts


def up(name: str = "demo", release: str = DEFAULT_RELEASE, log=print, net: str | None = None) -> Sandbox:
    """Make sandbox `name` and boot it (or just return it if it is already up). Idempotent.

    `net`: the private network to put a new host on (e.g. "shop"); its address there is
    `Sandbox.private_address`. A host keeps the network it was made with; None means "as made".
    """
    validate_name(name)
    if net is not None:
        privnet.validate_net(net)
    rel = resolve_release(release)
    preflight()
    with locked(name):
        record = SandboxRecord.load(name)
        if record and record.release != rel.suite:
            raise SandboxError(
                f"sandbox {name} exists with release {record.release}, not {rel.suite}: remove it first "
                f"with `invoke sandbox.down --name {name}`"
            )
        if record and net is not None and record.net != net:
            where = f"on network {record.net}" if record.net else "on no private network"
            raise SandboxError(
                f"sandbox {name} exists {where}, not on {net}: a host joins its network when it is made; "
                f"remove it first with `invoke sandbox.down --name {name}`, then "
                f"`invoke sandbox.up --name {name} --net {net}`"
            )
        if record:
            sandbox = record.sandbox()
            if sandbox.running:
                _record_host_keys(name)
                sshconfig.write_ssh_config()
                _wait_for_ssh(sandbox, _boot_log(name))
                return sandbox
            # Recorded but not running (the machine rebooted, or it was killed): clear what is left.
            record = _stop(record)
        image = ensure_image(rel, log=log)
        key = sshconfig.ensure_key()
        if record is None:
            record = _new_record(name, rel, key, net)
        if not rootfs(name).exists():
            hostfiles.copy_image(image, name)
        _prepare_host(record, key)
        return _boot(record)


def reset(name: str = "demo", log=print) -> Sandbox:
    """Give sandbox `name` a fresh root filesystem (same address) and boot it again."""
    validate_name(name)
    preflight()
    with locked(name):
        record = SandboxRecord.load(name)
        if record is None:
            raise no_such_sandbox(name)
        record = _stop(record)
        image = ensure_image(resolve_release(record.release), log=log)
        key = sshconfig.ensure_key()
        record = dataclasses.replace(record, key_path=str(key))
        hostfiles.copy_image(image, name)
        _prepare_host(record, key)
        return _boot(record)


def down(name: str = "demo") -> bool:
    """Stop sandbox `name` and remove everything `up` made. Returns False if there was nothing.

    The last host of a private network takes the network with it.
    """
    validate_name(name)
    require_root()
    with locked(name):
        record = SandboxRecord.load(name)
        directory = host_dir(name)
        if record is None and not directory.exists():
            return False
        if record:
            _stop(record)
        processes.unmount_under(directory)
        remove_tree(directory)
        sshconfig.write_ssh_config()
    if record and record.net:
        _forget_net_if_empty(record.net)
    return True


def down_net(net: str) -> list[str]:
    """Remove every host on private network `net`, and the network; returns the hosts' names."""
    privnet.validate_net(net)
    require_root()
    names = [record.name for record in records() if record.net == net]
    if not names and privnet.NetRecord.load(net) is None and not privnet.switch_path(net).exists():
        raise SandboxError(f"no private network named {net!r}: `invoke sandbox.list` shows the hosts and "
                           "their networks")
    for name in names:
        down(name)
    _forget_net_if_empty(net)
    return names


def down_all() -> list[str]:
    """Remove every sandbox and every private network; returns the sandboxes' names."""
    names = [record.name for record in records()]
    for name in names:
        down(name)
    nets = {record.name for record in privnet.net_records()} | set(privnet.leftover_switches())
    for net in sorted(nets):
        _forget_net_if_empty(net)
    return names


def _forget_net_if_empty(net: str) -> None:
    # Under the allocation lock: a host being made on this network records itself under it too,
    # so the network is never removed between its number being given out and the host's record.
    with locked("addresses"):
        if not any(record.net == net for record in records()):
            privnet.forget_net(net)


def proxy_settings(name: str) -> dict[str, str]:
    """The proxy files for sandbox `name` (see hostfiles.proxy_files)."""
    sandbox = get(name)
    if sandbox is None:
        raise no_such_sandbox(name)
    return hostfiles.proxy_files(sandbox.proxy_url)


def _new_record(name: str, release: Release, key: Path, net: str | None) -> SandboxRecord:
    """Record a new sandbox with the lowest free address number (and its network's, if any)."""
    with locked("addresses"):
        used = {sandbox.index for sandbox in list_sandboxes()}
        index = network.allocate_index(used)
        private = None
        if net is not None:
            private = privnet.private_address(privnet.ensure_net(net).index, index)
        host_dir(name).mkdir(parents=True, exist_ok=True)
        return SandboxRecord(name=name, index=index, release=release.suite, key_path=str(key),
                             net=net, private_address=private).save()


def _private_network(record: SandboxRecord) -> tuple[SandboxRecord, privnet.NetRecord]:
    """The host's network record; remade if it went (e.g. removed by hand), the address updated."""
    with locked("addresses"):
        net = privnet.ensure_net(record.net)
        address = privnet.private_address(net.index, record.index)
        if address != record.private_address:
            record = dataclasses.replace(record, private_address=address).save()
        return record, net


def _prepare_host(record: SandboxRecord, key: Path) -> None:
    host, _ = network.addresses(record.index)
    proxy_url = f"http://{host}:{processes.PROXY_PORT}"
    hostfiles.prepare_host(record.name, Path(f"{key}.pub").read_text(), proxy_url)
    _record_host_keys(record.name)


def _record_host_keys(name: str) -> None:
    """Trust the host keys in the host's own files (this toolkit made them, on this machine), so
    ssh verifies the host from its first connection. A reset that made new keys replaces them."""
    keys = sshconfig.host_keys_from_rootfs(name)
    if not keys:
        raise SandboxError(f"sandbox {name}: no ssh host keys in {rootfs(name)}/etc/ssh; remake it with "
                           f"`invoke sandbox.down --name {name}` then `invoke sandbox.up --name {name}`")
    sshconfig.record_host_keys(name, keys)


def _boot_log(name: str) -> Path:
    return host_dir(name) / "nspawn.log"


def _boot(record: SandboxRecord) -> Sandbox:
    """Network, proxy, container; then wait for ssh. A host that does not come up is stopped again."""
    name = record.name
    network.setup(name, record.index)
    if record.net:
        record, net = _private_network(record)
        privnet.join(net, network.netns_name(name), record.index)
    proxy_pid, proxy_start = processes.start_proxy(name, record.index)
    record = dataclasses.replace(record, proxy_pid=proxy_pid, proxy_start=proxy_start).save()
    nspawn_pid, nspawn_start = processes.start_container(name)
    record = dataclasses.replace(record, nspawn_pid=nspawn_pid, nspawn_start=nspawn_start).save()
    sshconfig.write_ssh_config()
    sandbox = record.sandbox()
    try:
        _wait_for_ssh(sandbox, _boot_log(name))
    except SandboxError:
        _stop(record).save()
        raise
    # The container's PID 1 (nspawn's child), so _stop can kill the container even if nspawn is gone.
    init = processes.container_init(nspawn_pid)
    if init:
        dataclasses.replace(record, init_pid=init[0], init_start=init[1]).save()
    return sandbox


def _stop(record: SandboxRecord) -> SandboxRecord:
    """Power the container off, stop its proxy, remove its network; the record without processes."""
    processes.stop_container(record.nspawn, record.init)
    processes.stop_proxy(record.proxy_pid, record.proxy_start)
    network.teardown(record.name, record.index)
    return record.stopped()


def _wait_for_ssh(sandbox: Sandbox, log_path: Path, timeout: float = BOOT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if sandbox.pid and not processes.process_alive(sandbox.pid):
            raise SandboxError(
                f"sandbox {sandbox.name}: systemd-nspawn exited while booting. Last lines of "
                f"{log_path}:\n{tail(log_path)}"
            )
        if processes.port_open(sandbox.address, 22) and _ssh_answers(sandbox):
            return
        if time.monotonic() > deadline:
            raise SandboxError(
                f"sandbox {sandbox.name}: sshd on {sandbox.address} did not answer within "
                f"{timeout:.0f} s. Last lines of {log_path}:\n{tail(log_path)}\n"
                f"Try `invoke sandbox.down --name {sandbox.name}` then "
                f"`invoke sandbox.up --name {sandbox.name}`"
            )
        time.sleep(0.3)


def _ssh_answers(sandbox: Sandbox) -> bool:
    return sshconfig.run_in(sandbox, "true", timeout=15).returncode == 0
