"""`--host` parsing and connecting: turns what a person types into a Fabric Connection.

Accepted forms (several at once with a comma, or by repeating --host):

    203.0.113.10            user from ~/.ssh/config, else your local user name (as ssh does)
    deploy@203.0.113.10     an explicit user
    deploy@example.com:2222 an explicit port
    [2001:db8::1]:2222      IPv6 with a port (brackets needed only with a port)
    web1                    a name from ~/.ssh/config
    sandbox-NAME            a sandbox host made by `invoke sandbox.up --name NAME`

Connecting checks the host at once and turns the usual failures (unknown name, no route,
refused key) into a `HostError` whose message says what to type next. Every connection verifies the
host's ssh key against known_hosts first (toolkit/hostkeys.py): an unknown host or a changed key
stops it before anything is sent, and the message shows the fingerprints and the command to run.
"""

from __future__ import annotations

import shlex
import socket
from dataclasses import dataclass
from pathlib import Path

SANDBOX_PREFIX = "sandbox-"
DEFAULT_CONNECT_TIMEOUT = 10


from toolkit import hostkeys
from toolkit.errors import HostError, next_task


@dataclass(frozen=True)
class HostSpec:
    """One parsed --host value."""

    raw: str
    host: str
    user: str | None = None
    port: int | None = None

    @property
    def sandbox_name(self) -> str | None:
        """NAME for `sandbox-NAME`, else None."""
        if self.host.startswith(SANDBOX_PREFIX) and len(self.host) > len(SANDBOX_PREFIX):
            return self.host[len(SANDBOX_PREFIX):]
        return None

    def __str__(self) -> str:
        return self.raw


def split_hosts(values) -> list[str]:
    """--host values (a string, or a list from a repeated option) -> one string per host."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    hosts = []
    for value in values:
        hosts.extend(part.strip() for part in str(value).split(",") if part.strip())
    return hosts


def parse_host(text: str) -> HostSpec:
    """Parse `[user@]host[:port]` (IPv6 in brackets when a port follows)."""
    raw = text.strip()
    if not raw:
        raise HostError("an empty --host was given", "give a host, e.g. --host root@203.0.113.10")
    if "://" in raw:
        raise HostError(f"--host {raw!r} is a URL; give the host only",
                        "e.g. --host root@203.0.113.10 or --host example.com:2222")
    user = None
    rest = raw
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
        if not user:
            raise HostError(f"--host {raw!r}: nothing before '@'", "write it as USER@HOST")
    port = None
    if rest.startswith("["):
        end = rest.find("]")
        if end == -1:
            raise HostError(f"--host {raw!r}: '[' without ']'", "write IPv6 as [2001:db8::1]:22")
        host, after = rest[1:end], rest[end + 1:]
        if after:
            if not after.startswith(":"):
                raise HostError(f"--host {raw!r}: unexpected {after!r} after ']'",
                                "write IPv6 as [2001:db8::1]:22")
            port = _parse_port(raw, after[1:])
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
        port = _parse_port(raw, port_text)
    else:
        host = rest  # a name, an IPv4 address, or a bare IPv6 address (several colons)
    if not host or any(ch.isspace() for ch in host) or "/" in host:
        raise HostError(f"--host {raw!r}: {host!r} is not a host name or address",
                        "give a host, e.g. --host root@203.0.113.10 or --host sandbox-dev1")
    return HostSpec(raw=raw, host=host, user=user, port=port)


def _parse_port(raw: str, text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise HostError(f"--host {raw!r}: port {text!r} is not a number from 1 to 65535",
                        "write it as HOST:PORT, e.g. example.com:2222")
    return int(text)


def parse_hosts(values) -> list[HostSpec]:
    return [parse_host(h) for h in split_hosts(values)]


# -- connecting ---------------------------------------------------------------------------------

def sandbox_ssh_config() -> Path | None:
    """The ssh config generated for sandbox hosts (toolkit/sandbox/sshconfig.py owns it), if there is one."""
    try:
        from toolkit import sandbox
    except ImportError:
        return None
    for attr in ("ssh_config_path", "SSH_CONFIG", "SSH_CONFIG_PATH"):
        value = getattr(sandbox, attr, None)
        if callable(value):
            value = value()
        if value:
            return Path(value)
    return None


def make_connection(spec: HostSpec, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT):
    """A Fabric Connection for `spec` (not yet opened). Sandbox names use the sandbox ssh config."""
    from fabric import Config, Connection

    ssh_config = sandbox_ssh_config() if spec.sandbox_name else None
    if ssh_config is not None and ssh_config.exists():
        config = Config(runtime_ssh_path=str(ssh_config))
    else:
        config = Config()
    kwargs = {"config": config, "connect_timeout": connect_timeout}
    if spec.user:
        kwargs["user"] = spec.user
    if spec.port:
        kwargs["port"] = spec.port
    conn = Connection(spec.host, **kwargs)
    conn.spec = spec  # kept for messages ("what to type next")
    return hostkeys.secure(conn)  # replaces Fabric's AutoAddPolicy: the host key is verified


KEEPALIVE_SECONDS = 15


def connect(spec: HostSpec, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT):
    """Open a connection to `spec` now, or raise HostError saying what to do next."""
    conn = make_connection(spec, connect_timeout)
    try:
        conn.open()
    except Exception as exc:  # paramiko and socket raise many types; each is explained below
        conn.client.close()  # a refused host key leaves paramiko's transport running
        raise explain_connect_error(spec, conn, exc) from exc
    # A dropped link is noticed within a minute (NAT boxes drop idle ssh sessions in a long pip).
    conn.transport.set_keepalive(KEEPALIVE_SECONDS)
    return conn


def explain_connect_error(spec: HostSpec, conn, exc: Exception) -> HostError:
    """Turn a connection failure into a message with a next step a beginner can type."""
    import paramiko

    where = f"{conn.user}@{conn.host}" + (f":{conn.port}" if conn.port != 22 else "")
    if isinstance(exc, hostkeys.HostKeyProblem) or _no_known_key_type(exc):
        return explain_host_key(spec, where, exc)
    if spec.sandbox_name:
        fix = f"invoke sandbox.up --name {spec.sandbox_name}"
        if isinstance(exc, paramiko.AuthenticationException):
            return HostError(f"sandbox host {spec.host} refused the toolkit's ssh key", fix)
        return HostError(f"cannot reach sandbox host {spec.host} ({_reason(exc)}); "
                         "is it running?", fix)
    if isinstance(exc, paramiko.AuthenticationException):
        return HostError(f"{where} refused the login ({_reason(exc)})",
                         f"copy your key there first: ssh-copy-id {where}")
    if isinstance(exc, socket.gaierror):
        return HostError(f"cannot find a host named {conn.host!r} ({_reason(exc)})",
                         "check the spelling, or add it to ~/.ssh/config")
    return HostError(f"cannot reach {where} ({_reason(exc)})",
                     f"check the address and that sshd runs there: ssh {where}")


def _no_known_key_type(exc: Exception) -> bool:
    # We offer only the key types known_hosts has for the host: a host with none of them fails here.
    return "no acceptable host key" in str(exc)


def _sandbox_fix(spec: HostSpec) -> str:
    return f"invoke sandbox.up --name {spec.sandbox_name}"


def explain_host_key(spec: HostSpec, where: str, exc: Exception) -> HostError:
    """The message for a host whose key is not trusted: unknown, changed, revoked, or of another type."""
    if isinstance(exc, hostkeys.UnknownHostKey):
        key_type = exc.key.get_name()
        check = ("it is a sandbox host, whose keys are recorded from its own files by" if spec.sandbox_name else
                 "compare it with the fingerprint your provider shows (or run `ssh-keygen -lf "
                 f"/etc/ssh/ssh_host_{_short_type(key_type)}_key.pub` on the host's console), then trust it")
        return HostError(
            f"{where} is not a known host, so nothing was sent to it. It presents an {key_type} key "
            f"with fingerprint {exc.fingerprint}; {check}",
            _sandbox_fix(spec) if spec.sandbox_name else next_task("hosts.trust"))
    if isinstance(exc, hostkeys.RevokedHostKey):
        return HostError(f"{where} presents a REVOKED host key ({exc.key.get_name()} {exc.fingerprint}, marked "
                         "@revoked in known_hosts); nothing was sent. Do not use this host until you know why",
                         "ask whoever runs the host which key it should have")
    known = getattr(exc, "known", None) or []
    old = "; ".join(f"{entry.key_type} {entry.fingerprint} ({entry.where})" for entry in known)
    if isinstance(exc, hostkeys.ChangedHostKey):
        new = f"now it presents {exc.key.get_name()} {exc.fingerprint}"
        name, files = exc.name, sorted({str(entry.path) for entry in known})
    else:
        new, name, files = "now it presents none of the key types known_hosts has for it", spec.host, []
    message = (f"the host key of {where} CHANGED: known_hosts has {old or 'other keys'}; {new}. THIS MAY BE "
               "AN ATTACK: someone between you and the host could read the secrets and commands a deploy "
               "sends. Nothing was sent. If you know the host was reinstalled or its keys replaced, remove "
               "the old entry and trust the new key")
    if spec.sandbox_name:
        return HostError(message.replace("remove the old entry and trust the new key",
                                         "record its keys again from the sandbox's own files"), _sandbox_fix(spec))
    removes = " && ".join(f"ssh-keygen -R {shlex.quote(name)} -f {shlex.quote(path)}" for path in files)
    return HostError(message, (removes + " && " if removes else "") + next_task("hosts.trust"))


def _short_type(key_type: str) -> str:
    return {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa"}.get(key_type, "ecdsa")


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def display_address(conn) -> str:
    """The address the host is reached at (after ssh config), for URLs in the summary."""
    host = conn.host
    return f"[{host}]" if ":" in host else host
