"""The processes behind a host: systemd-nspawn (the container) and its own tinyproxy, started in the
background and stopped in order; plus the /proc helpers that tell whether a recorded PID is still the
process we started, and which mounts are left under a directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from toolkit.sandbox.common import SandboxError, host_dir, rootfs, tail
from toolkit.sandbox.network import addresses, netns_path, subnet

PROXY_PORT = 8888
STOP_TIMEOUT = 30  # seconds for a clean poweroff before SIGKILL

_spawned: dict[int, subprocess.Popen] = {}  # our children, kept so they can be reaped


# --- the container --------------------------------------------------------------------------------


def start_container(name: str) -> tuple[int, int | None]:
    """Boot the host's root filesystem with systemd-nspawn in its namespace; (pid, start time)."""
    argv = ["systemd-nspawn", "-D", str(rootfs(name)), "-b", "--register=no", "--keep-unit",
            "--console=read-only", "-M", name, f"--network-namespace-path={netns_path(name)}",
            # netfilter inside the host's own network namespace, as on a VM: ufw and fail2ban's
            # bans really apply there (it cannot touch this machine's namespace).
            "--capability=CAP_NET_ADMIN"]
    pid = spawn(argv, host_dir(name) / "nspawn.log")
    return pid, start_time(pid)


def container_init(nspawn_pid: int) -> tuple[int, int | None] | None:
    """The container's PID 1 (nspawn's child) and its start time, if it is there."""
    inits = children(nspawn_pid)
    return (inits[0], start_time(inits[0])) if inits else None


def stop_container(nspawn: tuple[int | None, int | None], init: tuple[int | None, int | None]) -> None:
    """Power the container off; SIGKILL its PID 1 and nspawn after STOP_TIMEOUT s."""
    pid, start = nspawn
    if pid and same_process_alive(pid, start):
        inits = children(pid)  # the container's PID 1, for the SIGKILL fallback
        # nspawn turns SIGTERM into SIGRTMIN+3 for the container's systemd: an orderly poweroff.
        os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, STOP_TIMEOUT):
            for pid_1 in inits:
                kill(pid_1, signal.SIGKILL)  # killing a PID namespace's init kills all of it
            kill(pid, signal.SIGKILL)
            wait_gone(pid, 10)
    pid_1, start_1 = init
    if pid_1 and same_process_alive(pid_1, start_1):
        # nspawn died without taking the container with it: end the container's PID namespace.
        kill(pid_1, signal.SIGKILL)
        wait_gone(pid_1, 10)


# --- the proxy ------------------------------------------------------------------------------------


def render_tinyproxy_config(name: str, index: int, user: str, group: str) -> str:
    host, _ = addresses(index)
    directory = host_dir(name)
    return "\n".join([
        f"# tinyproxy for sandbox {name}: its only way to the package mirrors.",
        f"Port {PROXY_PORT}",
        f"Listen {host}",
        f"Allow {subnet(index)}",
        "Timeout 600",
        "MaxClients 100",
        f"User {user}",
        f"Group {group}",
        f'PidFile "{directory}/tinyproxy.pid"',
        f'LogFile "{directory}/tinyproxy.log"',
        "LogLevel Connect",  # one line per request: shows what the sandbox fetched
        # CONNECT (https) only to the https port, as a plain proxy should.
        "ConnectPort 443",
        "",
    ])


def _proxy_user() -> tuple[str, str]:
    """tinyproxy drops root; its package's user if present, else nobody."""
    try:
        pwd.getpwnam("tinyproxy")
        return "tinyproxy", "tinyproxy"
    except KeyError:
        return "nobody", "nogroup"


def start_proxy(name: str, index: int) -> tuple[int, int | None]:
    """Start the host's tinyproxy on 10.77.N.1 and wait until it listens; (pid, start time)."""
    directory = host_dir(name)
    user, group = _proxy_user()
    config = directory / "tinyproxy.conf"
    config.write_text(render_tinyproxy_config(name, index, user, group))
    log = directory / "tinyproxy.log"
    log.touch()
    # tinyproxy opens its log file after dropping privileges.
    shutil.chown(log, user=user, group=group)
    pid = spawn(["tinyproxy", "-d", "-c", str(config)], directory / "tinyproxy.out")
    host, _ = addresses(index)
    deadline = time.monotonic() + 10
    while not port_open(host, PROXY_PORT):
        if not process_alive(pid) or time.monotonic() > deadline:
            raise SandboxError(
                f"tinyproxy for sandbox {name} did not start on {host}:{PROXY_PORT}:\n"
                + tail(directory / "tinyproxy.out") + tail(log)
            )
        time.sleep(0.1)
    return pid, start_time(pid)


def stop_proxy(pid: int | None, start: int | None) -> None:
    if pid and same_process_alive(pid, start):
        os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, 5):
            kill(pid, signal.SIGKILL)
            wait_gone(pid, 5)


# --- processes and /proc --------------------------------------------------------------------------


def spawn(argv: list[str], output: Path) -> int:
    """Start a long-running process in its own session, its output appended to `output`."""
    with open(output, "ab") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    _spawned[process.pid] = process
    return process.pid


def _reap(pid: int) -> None:
    process = _spawned.get(pid)
    if process is not None and process.poll() is not None:
        del _spawned[pid]


def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces; everything after its ")" is space-separated.
    return text[text.rindex(")") + 2:].split()


def process_alive(pid: int) -> bool:
    _reap(pid)
    fields = _proc_stat(pid)
    return fields is not None and fields[0] != "Z"


def start_time(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def same_process_alive(pid: int, start: int | None) -> bool:
    """Alive and still the process we started (PIDs are reused after a reboot)."""
    return process_alive(pid) and (start is None or start_time(pid) == start)


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def port_open(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` in this mount namespace, deepest first."""
    prefix = str(path).rstrip("/")
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_under(path: Path) -> None:
    for point in mounts_under(path):
        subprocess.run(["umount", "--lazy", point], capture_output=True)
