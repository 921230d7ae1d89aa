"""What every part of the sandbox package shares: where its state lives, its error, its locks, the
checks that this machine can run sandboxes, and small helpers for commands and files.

STATE_DIR is read through this module (`common.STATE_DIR`) everywhere, so tests can move it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
from pathlib import Path

from toolkit.names import NAME_RE

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("PRONGHORN_SANDBOX_DIR", "/var/lib/pronghorn/sandbox"))

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


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SandboxError(
            f"invalid sandbox name {name!r}: use 1-31 characters, lowercase letters, digits and '-', "
            "starting with a letter (e.g. --name demo)"
        )
    return name


def no_such_sandbox(name: str) -> SandboxError:
    return SandboxError(f"no sandbox named {name!r}: make it with `invoke sandbox.up --name {name}`")


def host_dir(name: str) -> Path:
    return STATE_DIR / "hosts" / name


def rootfs(name: str) -> Path:
    return host_dir(name) / "rootfs"


@contextlib.contextmanager
def locked(what: str):
    """An exclusive lock on `what` (a sandbox name, "addresses", "image-debian-12") across processes.

    One lock per sandbox lets different sandboxes start and stop at the same time; addresses and
    image builds have their own locks.
    """
    locks = STATE_DIR / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{what}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# --- preflight: root and tools --------------------------------------------------------------------


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
    return [tool for tool in REQUIRED_TOOLS if which(tool) is None]


def which(tool: str) -> str | None:
    # sbin is not on a normal user's PATH, but debootstrap and ip live there.
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    return shutil.which(tool, path=path)


# --- commands and files ---------------------------------------------------------------------------


def run(argv: list[str]) -> None:
    """Run a command; a failure becomes a SandboxError with its output."""
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        output = result.stderr.strip() or result.stdout.strip()
        raise SandboxError(f"`{' '.join(argv)}` failed (exit {result.returncode}): {output}")


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text)
    temporary.chmod(mode)
    temporary.replace(path)


def remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        # --one-file-system: never follow a mount that is still there into the machine's own files.
        run(["rm", "-rf", "--one-file-system", str(path)])


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)\n"
    # nspawn's boot log is coloured; escape codes make the tail unreadable in an error message.
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return "\n".join(text.splitlines()[-lines:]) + "\n"
