"""ssh host key verification for every connection the toolkit opens, done the way OpenSSH does it.

Fabric 3 gives paramiko `AutoAddPolicy` and never reads known_hosts, and testinfra's paramiko
backend warns and goes on: whoever sits between this machine and the host would receive the
app's secrets and root's commands. `secure(conn)` replaces that with `VerifyPolicy`, which accepts
a host only when a known_hosts file holds the key it presents, and otherwise stops the connection
after the key exchange, before any credential or command is sent.

Which files are read is what `ssh` itself reads for the host: the ssh config's
`UserKnownHostsFile` (default ~/.ssh/known_hosts and known_hosts2) and `GlobalKnownHostsFile`
(default /etc/ssh/ssh_known_hosts and ssh_known_hosts2). Entries are matched as OpenSSH matches
them: hashed names (`|1|...`), patterns with `*`, `?` and `!`, `[host]:port` for other ports,
`HostKeyAlias`, and `@revoked` keys, which are refused even when also listed as good. A config's
`StrictHostKeyChecking no` is deliberately not honoured, and `UserKnownHostsFile /dev/null` (or
`none`, as `vagrant ssh-config` writes) means the default files: there is no lax mode.

The outcomes are exceptions that carry what a message needs (toolkit/hosts.py words them):
`UnknownHostKey` (no entry: show the fingerprint, `invoke hosts.trust`), `ChangedHostKey` (entries,
none matching: possibly an attack) and `RevokedHostKey`.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import paramiko

DEFAULT_USER_FILES = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_FILES = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
MARKERS = ("@revoked", "@cert-authority")

OK, UNKNOWN, CHANGED, REVOKED = "ok", "unknown", "changed", "revoked"


@dataclass(frozen=True)
class KnownKey:
    """One known_hosts line: where it is, its marker ('' for a plain key), host patterns and key."""

    path: Path
    line: int
    marker: str
    patterns: tuple[str, ...]
    key_type: str
    blob: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.blob)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


class HostKeyProblem(paramiko.SSHException):
    """The host's key is not one we trust. `name` is the known_hosts name looked up."""

    def __init__(self, name: str, key, known: list[KnownKey], files: list[Path]):
        super().__init__(f"host key of {name}: {type(self).__name__}")
        self.name, self.key, self.known, self.files = name, key, known, files

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.key.asbytes())


class UnknownHostKey(HostKeyProblem):
    """No known_hosts file lists this host."""


class ChangedHostKey(HostKeyProblem):
    """known_hosts lists this host with other keys than the one it presents."""


class RevokedHostKey(HostKeyProblem):
    """The key the host presents is marked @revoked."""


class KeyCaptured(paramiko.SSHException):
    """Raised by CapturePolicy once it has the host's key, to stop before authenticating."""

    def __init__(self, key):
        super().__init__("host key captured")
        self.key = key


# -- reading known_hosts ------------------------------------------------------------------------

def fingerprint_of(blob: bytes) -> str:
    """`SHA256:...` as `ssh-keygen -lf` and ssh's own prompts print it."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def lookup_name(host: str, port: int | None) -> str:
    """The name ssh looks up in known_hosts: `host`, or `[host]:port` for another port than 22."""
    return host if not port or int(port) == 22 else f"[{host}]:{port}"


def parse_line(text: str, path: Path, number: int) -> KnownKey | None:
    """One known_hosts line, or None for comments, blank lines and lines ssh would skip too."""
    fields = text.split()
    if not fields or fields[0].startswith("#"):
        return None
    marker = ""
    if fields[0].startswith("@"):
        marker, fields = fields[0], fields[1:]
        if marker not in MARKERS:
            return None
    if len(fields) < 3:
        return None
    try:
        blob = base64.b64decode(fields[2], validate=True)
    except ValueError:
        return None
    return KnownKey(path, number, marker, tuple(fields[0].split(",")), fields[1], blob)


def read_known_hosts(path: Path) -> list[KnownKey]:
    """Every entry of one file; a missing or unreadable file has none (as for ssh)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return []
    lines = (parse_line(line, Path(path), n) for n, line in enumerate(text.splitlines(), 1))
    return [entry for entry in lines if entry is not None]


def _glob(pattern: str, name: str) -> bool:
    # Only `*` and `?` are special in ssh patterns; `[` is literal (`[host]:2222`).
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, name, re.IGNORECASE | re.DOTALL) is not None


def host_matches(name: str, patterns: tuple[str, ...]) -> bool:
    """OpenSSH's rule: some pattern matches and no negated (`!`) pattern does."""
    matched = False
    for pattern in patterns:
        if pattern.startswith("|1|"):
            if paramiko.HostKeys.hash_host(name, pattern) == pattern:
                matched = True
            continue
        negated = pattern.startswith("!")
        if _glob(pattern[1:] if negated else pattern, name):
            if negated:
                return False
            matched = True
    return matched


def entries_for(name: str, files: list[Path]) -> list[KnownKey]:
    """Every entry for `name` in `files`, in order."""
    return [entry for path in files for entry in read_known_hosts(path) if host_matches(name, entry.patterns)]


def verdict(key_blob: bytes, entries: list[KnownKey]) -> str:
    """OK if a plain entry holds this key, REVOKED if one is @revoked, CHANGED if the host is
    known with other keys only, UNKNOWN if it is not known at all."""
    if any(entry.marker == "@revoked" and entry.blob == key_blob for entry in entries):
        return REVOKED
    plain = [entry for entry in entries if not entry.marker]
    if any(entry.blob == key_blob for entry in plain):
        return OK
    return CHANGED if plain else UNKNOWN


# -- which files, for which name -----------------------------------------------------------------

def _expand(path: str, host: str) -> Path:
    home = os.path.expanduser("~")
    text = path.replace("%%", "\0").replace("%d", home).replace("%u", getpass.getuser())
    text = text.replace("%h", host).replace("\0", "%")
    return Path(os.path.expanduser(text))


def _file_list(value, defaults: tuple[str, ...], host: str) -> list[Path]:
    words = value.split() if isinstance(value, str) else list(value or [])
    # /dev/null and `none` are how configs switch checking off; they fall back to the defaults.
    words = [word for word in words if word.lower() != "none" and word != os.devnull] or list(defaults)
    return [_expand(word, host) for word in words]


def known_hosts_files(ssh_config, host: str) -> tuple[list[Path], list[Path]]:
    """(user files, global files) ssh reads for this host, from its resolved ssh config."""
    user = _file_list(ssh_config.get("userknownhostsfile"), DEFAULT_USER_FILES, host)
    system = _file_list(ssh_config.get("globalknownhostsfile"), DEFAULT_GLOBAL_FILES, host)
    return user, system


def name_for(conn) -> str:
    """The known_hosts name of a Fabric connection (its `HostKeyAlias`, if the config sets one)."""
    alias = conn.ssh_config.get("hostkeyalias")
    return alias or lookup_name(conn.host, conn.port)


def record_file(conn) -> Path:
    """Where `hosts.trust` records a key for this host: the first user file, as ssh does."""
    user, _ = known_hosts_files(conn.ssh_config, conn.host)
    return user[0]


# -- the policies ------------------------------------------------------------------------------

class VerifyPolicy(paramiko.MissingHostKeyPolicy):
    """Accept the host only if a known_hosts file has its key. paramiko asks the policy because the
    client itself holds no keys; raising here ends the connection before authentication."""

    def __init__(self, name: str, files: list[Path]):
        self.name, self.files = name, files

    def missing_host_key(self, client, hostname, key):
        entries = entries_for(self.name, self.files)
        outcome = verdict(key.asbytes(), entries)
        if outcome == OK:
            return
        problem = {UNKNOWN: UnknownHostKey, CHANGED: ChangedHostKey, REVOKED: RevokedHostKey}[outcome]
        raise problem(self.name, key, [e for e in entries if not e.marker], self.files)


class CapturePolicy(paramiko.MissingHostKeyPolicy):
    """Take the host's key and stop: how `hosts.trust` reads a key without logging in."""

    def missing_host_key(self, client, hostname, key):
        raise KeyCaptured(key)


def _key_family(algorithm: str) -> str:
    return "ssh-rsa" if algorithm.startswith("rsa-sha2-") else algorithm


def disabled_host_key_algorithms(entries: list[KnownKey]) -> list[str]:
    """Host key algorithms to switch off so the host presents a key of a type we know (OpenSSH
    orders its HostKeyAlgorithms the same way); nothing when no usable type is known."""
    known = {entry.key_type for entry in entries if not entry.marker}
    offered = list(paramiko.Transport._preferred_keys)
    if not known & {_key_family(alg) for alg in offered}:
        return []
    return [alg for alg in offered if _key_family(alg) not in known]


def secure(conn, capture: bool = False):
    """Make the Fabric connection `conn` (and any ProxyJump hops) verify host keys; returns it.

    With `capture`, the connection only fetches the host's key (raising KeyCaptured)."""
    from fabric import Connection

    user, system = known_hosts_files(conn.ssh_config, conn.host)
    files = user + system
    name = name_for(conn)
    conn.known_hosts_files = files
    if capture:
        conn.client.set_missing_host_key_policy(CapturePolicy())
    else:
        conn.client.set_missing_host_key_policy(VerifyPolicy(name, files))
        disabled = disabled_host_key_algorithms(entries_for(name, files))
        if disabled:
            algorithms = dict(conn.connect_kwargs.get("disabled_algorithms") or {})
            algorithms["keys"] = sorted(set(algorithms.get("keys", [])) | set(disabled))
            conn.connect_kwargs["disabled_algorithms"] = algorithms
    if isinstance(conn.gateway, Connection):
        secure(conn.gateway)  # a jump host is verified like any host, never captured blindly
    return conn


def known_hosts_line(name: str, key) -> str:
    return f"{name} {key.get_name()} {key.get_base64()}\n"


def append_known_host(path: Path, name: str, key) -> None:
    """Add `name`'s key to a known_hosts file (made 0600 in a 0700 folder if new)."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    existing = path.read_text() if path.exists() else ""
    separator = "" if not existing or existing.endswith("\n") else "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(separator + known_hosts_line(name, key))
