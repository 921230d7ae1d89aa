"""Sandbox hosts: throw-away Debian/Ubuntu machines for tests, CI and `make demo`.

A sandbox host is a systemd-nspawn container that boots a real systemd (PID 1), journald and sshd,
inside its own network namespace. The deploy toolkit talks to it over ssh exactly as it would to a
cloud VM, so `invoke deploy --host sandbox-demo` exercises the real code paths. No hypervisor and no
Docker are needed, only root, debootstrap, systemd-nspawn, iproute2 and tinyproxy.

How one sandbox is made (see docs/sandbox.md for the long version):

1. An *image* (a root filesystem made by debootstrap) is built once per release and cached under
   /var/lib/pronghorn/sandbox/images/. It is built in a temporary directory and renamed into place, so
   an interrupted build never leaves a half image behind.
2. Each sandbox gets its own copy of the image (`cp -a --reflink=auto`, ~2 s), so resetting a host to
   fresh is "delete the copy, copy again".
3. Network: a namespace `pronghorn-NAME` and a veth pair; the host side is 10.77.N.1/30, the container
   side 10.77.N.2/30 (N is allocated per sandbox and recorded in its state file).
4. Packages: the container has no route to the internet. A tinyproxy per sandbox listens on 10.77.N.1
   and apt, pip and /etc/environment inside point at it. The machine's CA bundle is trusted inside, as
   the registries here present certificates from it.
5. ssh: a key per checkout (<repo>/.sandbox/id_ed25519) is root's authorized key in every sandbox, and
   <repo>/.sandbox/ssh_config (included from /root/.ssh/config) has a `Host sandbox-NAME` block for each,
   so `ssh sandbox-NAME` and Fabric's `--host sandbox-NAME` just work.

Everything here is plain functions; toolkit/tasks_sandbox.py is the thin invoke layer on top.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("PRONGHORN_SANDBOX_DIR", "/var/lib/pronghorn/sandbox"))

SUBNET_PREFIX = "10.77"  # sandbox N uses 10.77.N.0/30
MAX_SANDBOXES = 250
PROXY_PORT = 8888
BOOT_TIMEOUT = 90  # seconds until sshd must answer after the container starts
STOP_TIMEOUT = 30  # seconds for a clean poweroff before SIGKILL
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")

# Bumped whenever prepare_image() changes, so old cached images are rebuilt instead of reused.
IMAGE_VERSION = 1

PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "libpam-systemd", "openssh-server", "python3", "python3-venv",
    "ca-certificates", "sudo", "iproute2", "procps", "curl", "less",
]

# Units that make no sense in a container or that would grab the apt lock in the middle of a deploy.
MASKED_UNITS = [
    "console-getty.service", "getty-static.service", "apt-daily.timer", "apt-daily-upgrade.timer",
    "e2scrub_reap.service", "systemd-networkd-wait-online.service",
]

# The tools `up` needs, and the apt package that provides each.
REQUIRED_TOOLS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "ip": "iproute2",
    "tinyproxy": "tinyproxy",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}


class SandboxError(Exception):
    """Something a person has to fix; the message says what went wrong and what to type next."""


@dataclasses.dataclass(frozen=True)
class Release:
    """A distribution release a sandbox image can be built from."""

    suite: str  # what debootstrap calls it: bookworm, noble, jammy
    image: str  # directory name of the cached image: debian-12, ubuntu-24.04
    distro: str  # debian | ubuntu
    mirror_env: str  # environment variable that overrides the mirror
    default_mirror: str
    default_keyring: str
    apt_sources: tuple[str, ...]  # the sources.list lines, with {mirror} and {suite} placeholders

    @property
    def mirror(self) -> str:
        return os.environ.get(self.mirror_env, self.default_mirror).rstrip("/")

    @property
    def keyring_env(self) -> str:
        return self.mirror_env.replace("MIRROR", "KEYRING")

    @property
    def keyring(self) -> str:
        return os.environ.get(self.keyring_env, self.default_keyring)


_DEBIAN_SOURCES = (
    "deb {mirror} {suite} main",
    "deb {mirror} {suite}-updates main",
    "deb {security} {suite}-security main",
)
_UBUNTU_SOURCES = (
    "deb {mirror} {suite} main universe",
    "deb {mirror} {suite}-updates main universe",
    "deb {mirror} {suite}-security main universe",
)

RELEASES = {
    "bookworm": Release("bookworm", "debian-12", "debian", "PRONGHORN_DEBIAN_MIRROR",
                        "http://deb.debian.org/debian",
                        "/usr/share/keyrings/debian-archive-keyring.gpg", _DEBIAN_SOURCES),
    "noble": Release("noble", "ubuntu-24.04", "ubuntu", "PRONGHORN_UBUNTU_MIRROR",
                     "http://archive.ubuntu.com/ubuntu",
                     "/usr/share/keyrings/ubuntu-archive-keyring.gpg", _UBUNTU_SOURCES),
    "jammy": Release("jammy", "ubuntu-22.04", "ubuntu", "PRONGHORN_UBUNTU_MIRROR",
                     "http://archive.ubuntu.com/ubuntu",
                     "/usr/share/keyrings/ubuntu-archive-keyring.gpg", _UBUNTU_SOURCES),
}
DEFAULT_RELEASE = "bookworm"


@dataclasses.dataclass
class Sandbox:
    """One sandbox host as the toolkit and the tests see it."""

    name: str
    address: str  # the container: ssh root@address
    host_address: str  # this machine's end of the veth; the proxy listens here
    ssh_alias: str  # "sandbox-NAME", a Host block in ssh_config_path()
    key_path: str
    pid: int | None  # the systemd-nspawn process
    running: bool
    index: int = 0
    release: str = DEFAULT_RELEASE

    @property
    def proxy_url(self) -> str:
        return f"http://{self.host_address}:{PROXY_PORT}"


# --------------------------------------------------------------------------------------------------
# Names, addresses and paths (pure functions)
# --------------------------------------------------------------------------------------------------


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SandboxError(
            f"invalid sandbox name {name!r}: use 1-31 characters, lowercase letters, digits and '-', "
            "starting with a letter (e.g. --name demo)"
        )
    return name


def resolve_release(release: str) -> Release:
    try:
        return RELEASES[release]
    except KeyError:
        known = ", ".join(RELEASES)
        raise SandboxError(f"unknown release {release!r}: choose one of {known} (e.g. --release bookworm)")


def addresses(index: int) -> tuple[str, str]:
    """(host side, container side) of sandbox number `index`."""
    return f"{SUBNET_PREFIX}.{index}.1", f"{SUBNET_PREFIX}.{index}.2"


def allocate_index(used: set[int]) -> int:
    """The lowest free sandbox number; numbers are never shared while a sandbox exists."""
    for index in range(1, MAX_SANDBOXES + 1):
        if index not in used:
            return index
    raise SandboxError(
        f"all {MAX_SANDBOXES} sandbox addresses are in use: remove some with `invoke sandbox.down --all`"
    )


def netns_name(name: str) -> str:
    return f"pronghorn-{name}"


def veth_name(index: int) -> str:
    # Interface names are limited to 15 characters, so the host side is named by number, not name.
    return f"pgh{index}"


CONTAINER_IFACE = "host0"


def ssh_alias(name: str) -> str:
    return f"sandbox-{name}"


def host_dir(name: str) -> Path:
    return STATE_DIR / "hosts" / name


def image_dir(release: Release) -> Path:
    return STATE_DIR / "images" / release.image


def sandbox_dir() -> Path:
    """<repo>/.sandbox: the checkout's ssh key and ssh config (gitignored)."""
    return REPO / ".sandbox"


def key_path() -> Path:
    return sandbox_dir() / "id_ed25519"


def ssh_config_path() -> Path:
    return sandbox_dir() / "ssh_config"


# --------------------------------------------------------------------------------------------------
# Preflight: root and tools
# --------------------------------------------------------------------------------------------------


def preflight() -> None:
    """Raise SandboxError naming the fix if this machine cannot run sandboxes."""
    require_root()
    missing = missing_tools()
    if missing:
        packages = sorted({REQUIRED_TOOLS[tool] for tool in missing})
        raise SandboxError(
            f"missing tools for sandbox hosts: {', '.join(missing)}. Install them with "
            f"`apt-get install -y {' '.join(packages)}` (or run `make test`, whose scripts/bootstrap "
            "installs everything)"
        )


def require_root() -> None:
    if os.geteuid() != 0:
        raise SandboxError(
            "sandbox hosts need root (network namespaces, systemd-nspawn): run as root, e.g. "
            "`sudo make demo`, `sudo make test` or `sudo .venv/bin/invoke sandbox.up`"
        )


def missing_tools() -> list[str]:
    return [tool for tool in REQUIRED_TOOLS if _which(tool) is None]


def _which(tool: str) -> str | None:
    # sbin is not on a normal user's PATH, but debootstrap and ip live there.
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    return shutil.which(tool, path=path)


# --------------------------------------------------------------------------------------------------
# Settings written inside a host: proxy and extra CA (reused by the deploy toolkit)
# --------------------------------------------------------------------------------------------------

EXTRA_CA_DIR = "/usr/local/share/ca-certificates"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
_PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def proxy_files(proxy_url: str, no_proxy: str = "localhost,127.0.0.1,::1") -> dict[str, str]:
    """Files (path inside the host -> content) that send apt, pip and login shells through a proxy.

    apt's and pip's files come from the deploy toolkit's own templates (render.proxy_files), the
    ones it writes on hosts behind a corporate proxy: one source for both. Sandboxes use them to
    reach the package mirrors through their tinyproxy.
    """
    from toolkit.render import proxy_files as rendered_proxy_files

    if not re.match(r"^https?://[^\s/]+(:\d+)?/?$", proxy_url):
        raise SandboxError(f"invalid proxy URL {proxy_url!r}: expected http://HOST:PORT")
    environment = "".join(
        f'{var}="{value}"\n'
        for var, value in [
            ("http_proxy", proxy_url), ("https_proxy", proxy_url),
            ("HTTP_PROXY", proxy_url), ("HTTPS_PROXY", proxy_url),
            ("no_proxy", no_proxy), ("NO_PROXY", no_proxy),
        ]
    )
    return {
        # pip.conf also points pip at the system CA bundle, which holds the extra CAs.
        **rendered_proxy_files(proxy_url),
        "/etc/environment": (
            'PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"\n' + environment
        ),
    }


def proxy_settings(name: str) -> dict[str, str]:
    """The proxy files for sandbox `name` (see proxy_files)."""
    sandbox = get(name)
    if sandbox is None:
        raise SandboxError(f"no sandbox named {name!r}: make it with `invoke sandbox.up --name {name}`")
    return proxy_files(sandbox.proxy_url)


def split_pem(text: str) -> list[str]:
    """The certificates in a PEM bundle, each normalised to its BEGIN...END block."""
    return _PEM_RE.findall(text)


def extra_ca_files(local_bundle: str, host_bundle: str) -> dict[str, str]:
    """Certificates in `local_bundle` that `host_bundle` lacks, as files for update-ca-certificates.

    Returns {"/usr/local/share/ca-certificates/pronghorn-extra-01.crt": PEM, ...}; after writing them
    on the host, run `update-ca-certificates` there.
    """
    known = set(split_pem(host_bundle))
    extra = [cert for cert in split_pem(local_bundle) if cert not in known]
    return {
        f"{EXTRA_CA_DIR}/pronghorn-extra-{number:02d}.crt": cert + "\n"
        for number, cert in enumerate(extra, start=1)
    }


# --------------------------------------------------------------------------------------------------
# ssh: the checkout's key and config
# --------------------------------------------------------------------------------------------------


def ensure_key() -> Path:
    """Make <repo>/.sandbox/id_ed25519 once; every sandbox trusts it for root."""
    key = key_path()
    if not key.exists():
        key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"pronghorn-sandbox@{REPO}",
              "-f", str(key)])
    return key


def render_ssh_config(sandboxes: list[Sandbox]) -> str:
    lines = [
        "# Generated by toolkit/sandbox.py for the sandbox hosts of this checkout; do not edit.",
        "# Included from /root/.ssh/config, so `ssh sandbox-NAME` and `invoke deploy --host sandbox-NAME`",
        "# work. Host keys are not checked: sandboxes are local and remade often.",
        "",
    ]
    for sandbox in sorted(sandboxes, key=lambda s: s.name):
        lines += [
            f"Host {sandbox.ssh_alias}",
            f"    HostName {sandbox.address}",
            "    User root",
            f"    IdentityFile {sandbox.key_path}",
            "    IdentitiesOnly yes",
            "    StrictHostKeyChecking no",
            "    UserKnownHostsFile /dev/null",
            "    LogLevel ERROR",
            "",
        ]
    return "\n".join(lines)


def write_ssh_config() -> Path:
    """Rewrite <repo>/.sandbox/ssh_config from the recorded sandboxes and include it for root."""
    path = ssh_config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_atomically(path, render_ssh_config(list_sandboxes()), mode=0o600)
    ensure_include(root_ssh_config(), path)
    return path


def root_ssh_config() -> Path:
    return Path(pwd.getpwuid(0).pw_dir) / ".ssh" / "config"


def include_line(config: Path) -> str:
    return f"Include {config}"


def ensure_include(user_config: Path, included: Path) -> bool:
    """Put `Include <included>` at the top of `user_config` once. Returns True if it changed.

    It must be at the top: ssh reads an Include placed after a `Host` line as part of that block.
    """
    line = include_line(included)
    current = user_config.read_text() if user_config.exists() else ""
    if line in (existing.strip() for existing in current.splitlines()):
        return False
    user_config.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_atomically(user_config, f"{line}\n" + current, mode=0o600)
    return True


def ssh_command(sandbox: Sandbox, *command: str, connect_timeout: int = 5) -> list[str]:
    """argv for running `command` (or an interactive shell) in `sandbox` with the generated config."""
    argv = ["ssh", "-F", str(ssh_config_path()), "-o", f"ConnectTimeout={connect_timeout}"]
    if command:
        argv += ["-o", "BatchMode=yes"]
    return argv + [sandbox.ssh_alias, *command]


def run_in(sandbox: Sandbox, command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a shell command in the sandbox over ssh; returns the completed process (never raises)."""
    return subprocess.run(ssh_command(sandbox, command), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


# --------------------------------------------------------------------------------------------------
# State: one JSON file per sandbox under STATE_DIR/hosts/NAME/
# --------------------------------------------------------------------------------------------------


def _state_path(name: str) -> Path:
    return host_dir(name) / "state.json"


def _read_state(name: str) -> dict | None:
    try:
        return json.loads(_state_path(name).read_text())
    except FileNotFoundError:
        return None
    except ValueError as error:
        raise SandboxError(
            f"{_state_path(name)} is not valid JSON ({error}); remove the sandbox with "
            f"`invoke sandbox.down --name {name}`"
        )


def _write_state(name: str, state: dict) -> None:
    _write_atomically(_state_path(name), json.dumps(state, indent=2, sort_keys=True) + "\n")


def _sandbox_from_state(state: dict) -> Sandbox:
    host, container = addresses(state["index"])
    pid = state.get("nspawn_pid")
    running = bool(pid) and _same_process_alive(pid, state.get("nspawn_start"))
    return Sandbox(
        name=state["name"], address=container, host_address=host, ssh_alias=ssh_alias(state["name"]),
        key_path=state["key_path"], pid=pid if running else None, running=running,
        index=state["index"], release=state["release"],
    )


def get(name: str) -> Sandbox | None:
    """The sandbox called `name`, or None if there is none."""
    state = _read_state(validate_name(name))
    return _sandbox_from_state(state) if state else None


def list_sandboxes() -> list[Sandbox]:
    hosts = STATE_DIR / "hosts"
    if not hosts.is_dir():
        return []
    found = []
    for path in sorted(hosts.iterdir()):
        state = _read_state(path.name) if NAME_RE.match(path.name) else None
        if state:
            found.append(_sandbox_from_state(state))
    return found


@contextlib.contextmanager
def _locked(what: str):
    """An exclusive lock on `what` (a sandbox name, "addresses", "image-debian-12") across processes.

    One lock per sandbox lets different sandboxes start and stop at the same time; addresses and
    image builds have their own locks.
    """
    locks = STATE_DIR / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{what}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# --------------------------------------------------------------------------------------------------
# Images: built once per release, cached
# --------------------------------------------------------------------------------------------------


def ensure_image(release: Release, log=print) -> Path:
    """The cached root filesystem for `release`, built first if missing or outdated."""
    final = image_dir(release)
    if _image_version(final) == IMAGE_VERSION:
        return final
    with _locked(f"image-{release.image}"):
        # Another process may have built it while we waited for the lock.
        if _image_version(final) == IMAGE_VERSION:
            return final
        return _build_image(release, final, log)


def _build_image(release: Release, final: Path, log) -> Path:
    check_mirror(release)
    if not Path(release.keyring).exists():
        package = "ubuntu-keyring" if release.distro == "ubuntu" else "debian-archive-keyring"
        raise SandboxError(
            f"{release.keyring} is missing, so debootstrap cannot check the {release.distro} archive's "
            f"signatures: `apt-get update && apt-get install -y {package}`, or set "
            f"{release.keyring_env}=PATH to that keyring file"
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(final)
    build = Path(tempfile.mkdtemp(prefix=f".{final.name}.build-", dir=final.parent))
    try:
        log(f"building the {release.image} image with debootstrap (once; about a minute)...")
        _debootstrap(release, build / "rootfs")
        prepare_image(build / "rootfs", release)
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        (build / "rootfs").rename(final)
        _remove_tree(old)
    finally:
        _remove_tree(build)
    return final


def _image_version(path: Path) -> int | None:
    try:
        return json.loads((path / ".pronghorn-image").read_text())["version"]
    except (FileNotFoundError, ValueError, KeyError):
        return None


def _remove_stale_builds(final: Path) -> None:
    """Remove what an interrupted earlier build left next to the image (we hold the lock)."""
    for leftover in final.parent.glob(f".{final.name}.*"):
        _remove_tree(leftover)


def check_mirror(release: Release, timeout: float = 10) -> None:
    url = f"{release.mirror}/dists/{release.suite}/Release"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            pass
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise SandboxError(
            f"the {release.distro} mirror {release.mirror} is not reachable from this machine "
            f"({reason}), so the {release.suite} image cannot be built. Use `--release bookworm`, or "
            f"set {release.mirror_env}=URL to a mirror you can reach"
        ) from None


def _debootstrap(release: Release, target: Path) -> None:
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
            f"--keyring={release.keyring}", release.suite, str(target), release.mirror]
    # Debian 12's debootstrap predates noble; Ubuntu releases all share the "gutsy" script.
    if not Path(f"/usr/share/debootstrap/scripts/{release.suite}").exists():
        argv.append("/usr/share/debootstrap/scripts/gutsy")
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise SandboxError(f"debootstrap of {release.suite} failed (exit {result.returncode}):\n{tail}")


def prepare_image(root: Path, release: Release) -> None:
    """Make a fresh debootstrap tree bootable as a sandbox; per-host details come later."""
    security = "http://security.debian.org/debian-security"
    sources = "\n".join(release.apt_sources).format(mirror=release.mirror, suite=release.suite,
                                                    security=security)
    (root / "etc/apt/sources.list").write_text(sources + "\n")
    (root / "etc/apt/apt.conf.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/hostname").write_text("sandbox\n")
    # Each host gets its own machine id and ssh host keys (written by _prepare_host).
    (root / "etc/machine-id").write_text("")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/ssh/sshd_config.d/pronghorn-sandbox.conf").write_text(
        "# Sandbox hosts: root logs in with the checkout's key only.\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n"
    )
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").touch(mode=0o600)
    _enable_unit(root, "ssh.service", "multi-user.target")
    for unit in MASKED_UNITS:
        _mask_unit(root, unit)
    _trust_local_cas(root)
    (root / ".pronghorn-image").write_text(
        json.dumps({"version": IMAGE_VERSION, "release": release.suite, "built": time.time()}) + "\n"
    )


def _enable_unit(root: Path, unit: str, target: str) -> None:
    wants = root / "etc/systemd/system" / f"{target}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / unit
    if not link.is_symlink():
        link.symlink_to(f"/lib/systemd/system/{unit}")


def _mask_unit(root: Path, unit: str) -> None:
    link = root / "etc/systemd/system" / unit
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to("/dev/null")


def _trust_local_cas(root: Path) -> None:
    """Trust inside the image every CA this machine trusts that Debian's bundle lacks."""
    local = Path(SYSTEM_CA_BUNDLE)
    image_bundle = root / SYSTEM_CA_BUNDLE.lstrip("/")
    if not local.exists():
        return
    files = extra_ca_files(local.read_text(), image_bundle.read_text() if image_bundle.exists() else "")
    if not files:
        return
    for path, content in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    _run(["chroot", str(root), "update-ca-certificates"])


# --------------------------------------------------------------------------------------------------
# One host: root filesystem, network, proxy, container
# --------------------------------------------------------------------------------------------------


def _rootfs(name: str) -> Path:
    return host_dir(name) / "rootfs"


def _copy_image(image: Path, name: str) -> None:
    """Give the host a fresh copy of the image (a reflink where the filesystem can)."""
    target = _rootfs(name)
    partial = target.with_name("rootfs.partial")
    _remove_tree(partial)
    _run(["cp", "-a", "--reflink=auto", str(image), str(partial)])
    _remove_tree(target)
    partial.rename(target)


def _prepare_host(name: str, index: int, public_key: str) -> None:
    """Per-host files: name, identity, root's key, the proxy settings."""
    root = _rootfs(name)
    (root / "etc/hostname").write_text(f"{name}\n")
    (root / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
    machine_id = root / "etc/machine-id"
    if not machine_id.read_text().strip():  # kept across reboots, as on a real machine
        machine_id.write_text(uuid.uuid4().hex + "\n")
    if not list((root / "etc/ssh").glob("ssh_host_*_key")):
        _run(["ssh-keygen", "-A", "-f", str(root)])
    authorized = root / "root/.ssh/authorized_keys"
    authorized.write_text(public_key)
    authorized.chmod(0o600)
    host, _ = addresses(index)
    for path, content in proxy_files(f"http://{host}:{PROXY_PORT}").items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def _setup_network(name: str, index: int) -> None:
    host, container = addresses(index)
    ns, veth = netns_name(name), veth_name(index)
    _teardown_network(name, index)
    _run(["ip", "netns", "add", ns])
    _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", CONTAINER_IFACE, "netns", ns])
    _run(["ip", "addr", "add", f"{host}/30", "dev", veth])
    _run(["ip", "link", "set", veth, "up"])
    _run(["ip", "-n", ns, "link", "set", "lo", "up"])
    _run(["ip", "-n", ns, "addr", "add", f"{container}/30", "dev", CONTAINER_IFACE])
    _run(["ip", "-n", ns, "link", "set", CONTAINER_IFACE, "up"])
    _run(["ip", "-n", ns, "route", "add", "default", "via", host])


def _teardown_network(name: str, index: int) -> None:
    # Deleting the namespace destroys the container end of the veth, and with it the host end.
    if Path(f"/run/netns/{netns_name(name)}").exists():
        _run(["ip", "netns", "delete", netns_name(name)])
    # The kernel removes the host end asynchronously; delete it ourselves only if it lingers.
    link = Path(f"/sys/class/net/{veth_name(index)}")
    deadline = time.monotonic() + 5
    while link.exists() and time.monotonic() < deadline:
        subprocess.run(["ip", "link", "delete", veth_name(index)], capture_output=True)
        time.sleep(0.1)
    if link.exists():
        raise SandboxError(f"could not remove network interface {veth_name(index)}: try "
                           f"`ip link delete {veth_name(index)}`, then run the command again")


def render_tinyproxy_config(name: str, index: int, user: str, group: str) -> str:
    host, _ = addresses(index)
    directory = host_dir(name)
    return "\n".join([
        f"# tinyproxy for sandbox {name}: its only way to the package mirrors.",
        f"Port {PROXY_PORT}",
        f"Listen {host}",
        f"Allow {SUBNET_PREFIX}.{index}.0/30",
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


def _start_proxy(name: str, index: int) -> tuple[int, int]:
    directory = host_dir(name)
    user, group = _proxy_user()
    config = directory / "tinyproxy.conf"
    config.write_text(render_tinyproxy_config(name, index, user, group))
    log = directory / "tinyproxy.log"
    log.touch()
    # tinyproxy opens its log file after dropping privileges.
    shutil.chown(log, user=user, group=group)
    pid = _spawn(["tinyproxy", "-d", "-c", str(config)], directory / "tinyproxy.out")
    host, _ = addresses(index)
    deadline = time.monotonic() + 10
    while not _port_open(host, PROXY_PORT):
        if not _process_alive(pid) or time.monotonic() > deadline:
            raise SandboxError(
                f"tinyproxy for sandbox {name} did not start on {host}:{PROXY_PORT}:\n"
                + _tail(directory / "tinyproxy.out") + _tail(log)
            )
        time.sleep(0.1)
    return pid, _start_time(pid)


def _start_container(name: str) -> tuple[int, int]:
    argv = ["systemd-nspawn", "-D", str(_rootfs(name)), "-b", "--register=no", "--keep-unit",
            "--console=read-only", "-M", name,
            f"--network-namespace-path=/run/netns/{netns_name(name)}"]
    pid = _spawn(argv, host_dir(name) / "nspawn.log")
    return pid, _start_time(pid)


def _wait_for_ssh(sandbox: Sandbox, log_path: Path, timeout: float = BOOT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if sandbox.pid and not _process_alive(sandbox.pid):
            raise SandboxError(
                f"sandbox {sandbox.name}: systemd-nspawn exited while booting. Last lines of "
                f"{log_path}:\n{_tail(log_path)}"
            )
        if _port_open(sandbox.address, 22) and run_in(sandbox, "true", timeout=15).returncode == 0:
            return
        if time.monotonic() > deadline:
            raise SandboxError(
                f"sandbox {sandbox.name}: sshd on {sandbox.address} did not answer within {timeout:.0f} s. "
                f"Last lines of {log_path}:\n{_tail(log_path)}\n"
                f"Try `invoke sandbox.down --name {sandbox.name}` then `invoke sandbox.up --name {sandbox.name}`"
            )
        time.sleep(0.3)


# --------------------------------------------------------------------------------------------------
# The public operations
# --------------------------------------------------------------------------------------------------


def up(name: str = "demo", release: str = DEFAULT_RELEASE, log=print) -> Sandbox:
    """Make sandbox `name` and boot it (or just return it if it is already up). Idempotent."""
    validate_name(name)
    rel = resolve_release(release)
    preflight()
    with _locked(name):
        state = _read_state(name)
        if state and state["release"] != rel.suite:
            raise SandboxError(
                f"sandbox {name} exists with release {state['release']}, not {rel.suite}: remove it first "
                f"with `invoke sandbox.down --name {name}`"
            )
        if state:
            sandbox = _sandbox_from_state(state)
            if sandbox.running:
                write_ssh_config()
                _wait_for_ssh(sandbox, host_dir(name) / "nspawn.log")
                return sandbox
            # Recorded but not running (the machine rebooted, or it was killed): clear what is left.
            _stop(name, state)
        image = ensure_image(rel, log=log)
        key = ensure_key()
        if state is None:
            state = _new_state(name, rel, key)
        if not _rootfs(name).exists():
            _copy_image(image, name)
        _prepare_host(name, state["index"], Path(f"{key}.pub").read_text())
        return _boot(name, state)


def _new_state(name: str, release: Release, key: Path) -> dict:
    """Record a new sandbox with the lowest free address number."""
    with _locked("addresses"):
        used = {s.index for s in list_sandboxes()}
        state = {"name": name, "index": allocate_index(used), "release": release.suite,
                 "key_path": str(key)}
        host_dir(name).mkdir(parents=True, exist_ok=True)
        _write_state(name, state)
    return state


def reset(name: str = "demo", log=print) -> Sandbox:
    """Give sandbox `name` a fresh root filesystem (same address) and boot it again."""
    validate_name(name)
    preflight()
    with _locked(name):
        state = _read_state(name)
        if state is None:
            raise SandboxError(f"no sandbox named {name!r}: make it with `invoke sandbox.up --name {name}`")
        _stop(name, state)
        image = ensure_image(resolve_release(state["release"]), log=log)
        key = ensure_key()
        state["key_path"] = str(key)
        _copy_image(image, name)
        _prepare_host(name, state["index"], Path(f"{key}.pub").read_text())
        return _boot(name, state)


def down(name: str = "demo") -> bool:
    """Stop sandbox `name` and remove everything `up` made. Returns False if there was nothing."""
    validate_name(name)
    require_root()
    with _locked(name):
        state = _read_state(name)
        directory = host_dir(name)
        if state is None and not directory.exists():
            return False
        if state:
            _stop(name, state)
        _unmount_under(directory)
        _remove_tree(directory)
        write_ssh_config()
        return True


def down_all() -> list[str]:
    """Remove every sandbox; returns their names."""
    names = [sandbox.name for sandbox in list_sandboxes()]
    for name in names:
        down(name)
    return names


def _boot(name: str, state: dict) -> Sandbox:
    _setup_network(name, state["index"])
    state["proxy_pid"], state["proxy_start"] = _start_proxy(name, state["index"])
    _write_state(name, state)
    state["nspawn_pid"], state["nspawn_start"] = _start_container(name)
    _write_state(name, state)
    write_ssh_config()
    sandbox = _sandbox_from_state(state)
    try:
        _wait_for_ssh(sandbox, host_dir(name) / "nspawn.log")
    except SandboxError:
        _stop(name, state)
        _write_state(name, state)
        raise
    # The container's PID 1 (nspawn's child), so _stop can kill the container even if nspawn is gone.
    inits = _children(state["nspawn_pid"])
    if inits:
        state["init_pid"], state["init_start"] = inits[0], _start_time(inits[0])
        _write_state(name, state)
    return sandbox


def _stop(name: str, state: dict) -> None:
    """Power the container off (SIGKILL after STOP_TIMEOUT), stop its proxy, remove its network."""
    pid, start = state.get("nspawn_pid"), state.get("nspawn_start")
    if pid and _same_process_alive(pid, start):
        inits = _children(pid)  # the container's PID 1, for the SIGKILL fallback
        # nspawn turns SIGTERM into SIGRTMIN+3 for the container's systemd: an orderly poweroff.
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, STOP_TIMEOUT):
            for init in inits:
                _kill(init, signal.SIGKILL)  # killing a PID namespace's init kills all of it
            _kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10)
    init, init_start = state.get("init_pid"), state.get("init_start")
    if init and _same_process_alive(init, init_start):
        # nspawn died without taking the container with it: end the container's PID namespace.
        _kill(init, signal.SIGKILL)
        _wait_gone(init, 10)
    proxy, proxy_start = state.get("proxy_pid"), state.get("proxy_start")
    if proxy and _same_process_alive(proxy, proxy_start):
        os.kill(proxy, signal.SIGTERM)
        if not _wait_gone(proxy, 5):
            _kill(proxy, signal.SIGKILL)
            _wait_gone(proxy, 5)
    _teardown_network(name, state["index"])
    for key in ("nspawn_pid", "nspawn_start", "init_pid", "init_start", "proxy_pid", "proxy_start"):
        state.pop(key, None)


# --------------------------------------------------------------------------------------------------
# Processes, mounts and files
# --------------------------------------------------------------------------------------------------

_spawned: dict[int, subprocess.Popen] = {}  # our children, kept so they can be reaped


def _spawn(argv: list[str], output: Path) -> int:
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


def _process_alive(pid: int) -> bool:
    _reap(pid)
    fields = _proc_stat(pid)
    return fields is not None and fields[0] != "Z"


def _start_time(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def _same_process_alive(pid: int, start: int | None) -> bool:
    """Alive and still the process we started (PIDs are reused after a reboot)."""
    return _process_alive(pid) and (start is None or _start_time(pid) == start)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _port_open(address: str, port: int, timeout: float = 1.0) -> bool:
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


def _unmount_under(path: Path) -> None:
    for point in mounts_under(path):
        subprocess.run(["umount", "--lazy", point], capture_output=True)


def _remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        # --one-file-system: never follow a mount that is still there into the machine's own files.
        _run(["rm", "-rf", "--one-file-system", str(path)])


def _write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text)
    temporary.chmod(mode)
    temporary.replace(path)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)\n"
    # nspawn's boot log is coloured; escape codes make the tail unreadable in an error message.
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return "\n".join(text.splitlines()[-lines:]) + "\n"


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise SandboxError(
            f"`{' '.join(argv)}` failed (exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
        )
