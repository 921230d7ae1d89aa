"""The image cache: a root filesystem per release, made once by debootstrap and prepared so that
every host copied from it boots with systemd and sshd. Releases, mirrors and keyrings live here.

Images are built in a temporary directory and renamed into place, so an interrupted build never
leaves half an image; a version stamp (`.pronghorn-image`) makes older images rebuild.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from toolkit.names import did_you_mean
from toolkit.sandbox import common
from toolkit.sandbox.common import SandboxError, locked, remove_tree, run
from toolkit.sandbox.hostfiles import SYSTEM_CA_BUNDLE, extra_ca_files, write_files

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

DEBIAN_SECURITY = "http://security.debian.org/debian-security"


@dataclasses.dataclass(frozen=True)
class Release:
    """A distribution release a sandbox image can be built from."""

    suite: str  # what debootstrap calls it: bookworm, trixie, noble, jammy
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

    def sources_list(self) -> str:
        lines = "\n".join(self.apt_sources)
        return lines.format(mirror=self.mirror, suite=self.suite, security=DEBIAN_SECURITY) + "\n"


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


def _debian(suite: str, image: str) -> Release:
    return Release(suite, image, "debian", "PRONGHORN_DEBIAN_MIRROR", "http://deb.debian.org/debian",
                   "/usr/share/keyrings/debian-archive-keyring.gpg", _DEBIAN_SOURCES)


def _ubuntu(suite: str, image: str) -> Release:
    return Release(suite, image, "ubuntu", "PRONGHORN_UBUNTU_MIRROR", "http://archive.ubuntu.com/ubuntu",
                   "/usr/share/keyrings/ubuntu-archive-keyring.gpg", _UBUNTU_SOURCES)


RELEASES = {
    "bookworm": _debian("bookworm", "debian-12"),
    "trixie": _debian("trixie", "debian-13"),
    "noble": _ubuntu("noble", "ubuntu-24.04"),
    "jammy": _ubuntu("jammy", "ubuntu-22.04"),
}
DEFAULT_RELEASE = "bookworm"


def resolve_release(release: str) -> Release:
    try:
        return RELEASES[release]
    except KeyError:
        known = ", ".join(RELEASES)
        raise SandboxError(f"unknown release {release!r}{did_you_mean(release, RELEASES)}: choose one of "
                           f"{known} (e.g. --release bookworm)") from None


def image_dir(release: Release) -> Path:
    return common.STATE_DIR / "images" / release.image


def ensure_image(release: Release, log=print) -> Path:
    """The cached root filesystem for `release`, built first if missing or outdated."""
    final = image_dir(release)
    if image_version(final) == IMAGE_VERSION:
        return final
    with locked(f"image-{release.image}"):
        # Another process may have built it while we waited for the lock.
        if image_version(final) == IMAGE_VERSION:
            return final
        return _build_image(release, final, log)


def _build_image(release: Release, final: Path, log) -> Path:
    check_mirror(release)
    check_keyring(release)
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
        remove_tree(old)
    finally:
        remove_tree(build)
    return final


def image_version(path: Path) -> int | None:
    try:
        return json.loads((path / ".pronghorn-image").read_text())["version"]
    except (FileNotFoundError, ValueError, KeyError):
        return None


def _remove_stale_builds(final: Path) -> None:
    """Remove what an interrupted earlier build left next to the image (we hold the lock)."""
    for leftover in final.parent.glob(f".{final.name}.*"):
        remove_tree(leftover)


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


def check_keyring(release: Release) -> None:
    if not Path(release.keyring).exists():
        package = "ubuntu-keyring" if release.distro == "ubuntu" else "debian-archive-keyring"
        raise SandboxError(
            f"{release.keyring} is missing, so debootstrap cannot check the {release.distro} archive's "
            f"signatures: `apt-get update && apt-get install -y {package}`, or set "
            f"{release.keyring_env}=PATH to that keyring file"
        )


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
    (root / "etc/apt/sources.list").write_text(release.sources_list())
    (root / "etc/apt/apt.conf.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/hostname").write_text("sandbox\n")
    # Each host gets its own machine id and ssh host keys (written by hostfiles.prepare_host).
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
    write_files(root, files)
    run(["chroot", str(root), "update-ca-certificates"])
