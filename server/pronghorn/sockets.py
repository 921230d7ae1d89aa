"""The listening sockets: made once by the arbiter, shared by every worker it forks.

Where sockets come from, in order of precedence:

1. ``PRONGHORN_FD=3,4`` - a new master started by USR2 (zero-downtime upgrade) inherits the
   old master's listening sockets as these file descriptors. ``PRONGHORN_FD_BOUND`` lists the
   ones the old master bound itself: once the old master is gone they are the new one's to
   close for good (stop filter, unix file removed); the others stay someone else's (systemd's).
2. systemd socket activation - ``LISTEN_PID`` equal to our pid and ``LISTEN_FDS=N`` mean the
   sockets are fds 3 .. 3+N-1 (``sd_listen_fds(3)``). The variables are removed from the
   environment afterwards so that nothing we start later takes them for its own.
3. ``cfg.bind`` - each entry is one of
     ``HOST:PORT``     IPv4 address or hostname (a name is bound on *every* address it resolves to)
     ``[V6]:PORT``     IPv6 address
     ``HOST``          port 8000, as gunicorn
     ``unix:PATH``     a unix socket (a stale socket file is removed first; mode 0777 minus --umask, never the inherited umask)
     ``fd://N``        an already-open listening socket inherited as file descriptor N

Sockets are returned non-blocking (every worker runs an event loop on them) and
close-on-exec; the arbiter makes them inheritable only for the USR2 re-exec.

One socket, shared by all workers (not one SO_REUSEPORT socket per worker): measured on the
2-core dev machine with 2 workers and wrk -c50, per-worker sockets gave no gain for keep-alive
traffic (~50-62k req/s either way, within the noise) and were slower for a new connection per
request (~12-16k vs ~13-21k req/s). A shared socket also keeps the connections waiting in the
backlog when a worker dies or is replaced by HUP; a per-worker socket's backlog dies with it.
``--reuse-port`` therefore only sets SO_REUSEPORT on the shared socket, so that another server
(a blue/green twin) can bind the same port. TCP_NODELAY is set on the listener (accepted
sockets inherit it on Linux); turning it off measured no better (noisy: 46-57k vs 64-66k req/s).
"""

import ctypes
import errno
import os
import pwd
import socket
import stat
import struct
from dataclasses import dataclass

__all__ = [
    "BindError", "Address", "parse_address", "create_listeners", "create_listener_groups",
    "open_bind", "inherited_fds", "service_ids", "describe", "close_listeners", "refuse_new_connections", "SD_LISTEN_FDS_START",
]

SD_LISTEN_FDS_START = 3
DEFAULT_PORT = 8000
REEXEC_FD_VAR = "PRONGHORN_FD"
REEXEC_BOUND_VAR = "PRONGHORN_FD_BOUND"


class BindError(Exception):
    """A socket could not be made; the message says which and what to do."""


@dataclass(frozen=True)
class Address:
    kind: str            # "tcp", "unix" or "fd"
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1
    text: str = ""       # as the user wrote it, for error messages


def parse_address(bind):
    """Parse one ``-b`` value into an Address, or raise BindError explaining the expected forms."""
    text = bind.strip()
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if path.startswith("//"):          # unix://PATH, as some tools write it
            path = path[2:]
        if not path:
            raise BindError(f"--bind {bind!r}: empty unix socket path (expected e.g. unix:/run/app.sock)")
        return Address("unix", path=path, text=text)
    if text.startswith("fd://"):
        number = text[len("fd://"):]
        if not number.isdigit():
            raise BindError(f"--bind {bind!r}: {number!r} is not a file descriptor number "
                            f"(expected e.g. fd://3)")
        return Address("fd", fd=int(number), text=text)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise BindError(f"--bind {bind!r}: missing ']' after the IPv6 address (expected e.g. [::1]:8000)")
        port = _parse_port(bind, rest[1:]) if rest.startswith(":") else DEFAULT_PORT
        if rest and not rest.startswith(":"):
            raise BindError(f"--bind {bind!r}: unexpected {rest!r} after ']' (expected e.g. [::1]:8000)")
        return Address("tcp", host=host, port=port, text=text)
    if text.count(":") > 1:
        raise BindError(f"--bind {bind!r}: an IPv6 address needs brackets (expected e.g. [{text}]:8000 "
                        f"or [::1]:8000)")
    host, sep, port_text = text.partition(":")
    port = _parse_port(bind, port_text) if sep else DEFAULT_PORT
    return Address("tcp", host=host or "0.0.0.0", port=port, text=text)


def _parse_port(bind, port_text):
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise BindError(f"--bind {bind!r}: {port_text!r} is not a port number 0-65535 "
                        f"(expected e.g. 127.0.0.1:8000)")
    return int(port_text)


def inherited_fds(environ):
    """File descriptors handed to us by an old master (USR2) or by systemd, else None.

    Consumes the variables: they are removed from ``environ`` so that workers and any later
    re-exec do not mistake them for their own.
    """
    if environ.get(REEXEC_FD_VAR):
        text = environ.pop(REEXEC_FD_VAR)
        try:
            return [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise BindError(f"{REEXEC_FD_VAR}={text!r}: expected comma-separated file descriptor "
                            f"numbers (this variable is set by pronghorn itself on USR2; unset it)")
    listen_pid = environ.get("LISTEN_PID")
    listen_fds = environ.get("LISTEN_FDS")
    if listen_fds is None or listen_pid is None:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        environ.pop(name, None)
    if listen_pid != str(os.getpid()):
        return None              # meant for another process (e.g. our parent): not ours
    try:
        count = int(listen_fds)
    except ValueError:
        raise BindError(f"LISTEN_FDS={listen_fds!r} is not a number (set by systemd socket activation; "
                        f"check the .socket unit)")
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))


def create_listeners(cfg, log, environ=None):
    """The listening sockets for ``cfg`` (see the module docstring for where they come from)."""
    groups = create_listener_groups(cfg, log, environ)
    return [sock for group in groups.values() for sock in group]


def create_listener_groups(cfg, log, environ=None):
    """Like create_listeners, grouped by the ``--bind`` value each socket came from.

    Inherited sockets are keyed ``fd://N``. The arbiter needs the grouping to rebind only what
    changed on HUP, and to remove only the unix socket files it created itself.
    """
    environ = os.environ if environ is None else environ
    bound_by_old_master = _bound_by_old_master(environ)
    fds = inherited_fds(environ)
    if fds is not None:
        groups = {}
        for fd in fds:
            sock = _adopt_fd(fd, cfg, f"inherited fd {fd}")
            log.info("Listening at: %s (inherited fd://%d)", describe(sock), fd)
            groups[_inherited_key(sock, fd, bound_by_old_master)] = [sock]
        return groups

    groups = {}
    try:
        for bind in cfg.bind:
            if bind in groups:
                continue
            groups[bind] = open_bind(bind, cfg, log)
            for sock in groups[bind]:
                log.info("Listening at: %s (%d)", describe(sock), os.getpid())
    except BaseException:
        for group in groups.values():
            close_listeners(group, unlink=True)
        raise
    if not groups:
        raise BindError("no address to listen on: give at least one --bind (e.g. -b 127.0.0.1:8000)")
    return groups


def _bound_by_old_master(environ):
    """The inherited fds an old master (USR2) had bound itself; consumes the variable."""
    text = environ.pop(REEXEC_BOUND_VAR, None)
    if not text or not environ.get(REEXEC_FD_VAR):  # (a stray variable without the fds means nothing)
        return set()
    try:
        return {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise BindError(f"{REEXEC_BOUND_VAR}={text!r}: expected comma-separated file descriptor "
                        f"numbers (this variable is set by pronghorn itself on USR2; unset it)")


def _inherited_key(sock, fd, bound_by_old_master):
    """The --bind key of an inherited socket. One the old master (USR2) bound itself is ours to
    close for good on exit, like one we bound: keyed ``unix:PATH`` or ``HOST:PORT``. systemd's
    sockets (and any ``fd://`` the old master was given) belong to whoever gave them: ``fd://N``."""
    if fd in bound_by_old_master:
        name = describe(sock)  # http://HOST:PORT, http://[V6]:PORT or unix:PATH
        if name.startswith("http://"):
            return name[len("http://"):]
        if name.startswith("unix:") and name[len("unix:"):][:1] not in ("", "\0"):
            return name
    return f"fd://{fd}"  # (also an unnamed or abstract unix socket: no file to remove)


def open_bind(bind, cfg, log):
    """The socket(s) for one ``--bind`` value (a hostname may give several)."""
    address = parse_address(bind)
    if address.kind == "fd":
        return [_adopt_fd(address.fd, cfg, f"--bind {address.text}")]
    if address.kind == "unix":
        return [_bind_unix(address, cfg, log)]
    socks = []
    try:
        for family, sockaddr in _resolve(address):
            socks.append(_bind_tcp(family, sockaddr, address, cfg))
    except BaseException:
        close_listeners(socks, unlink=False)
        raise
    return socks


def _resolve(address):
    """Every (family, sockaddr) a host resolves to, without duplicates, v4 first as given."""
    try:
        infos = socket.getaddrinfo(address.host, address.port, socket.AF_UNSPEC,
                                   socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"--bind {address.text!r}: cannot resolve {address.host!r}: {exc.strerror} "
                        f"(use an IP address, or check the name in /etc/hosts)")
    seen, result = set(), []
    for family, _type, _proto, _canon, sockaddr in infos:
        key = (family, sockaddr[:2])
        if family in (socket.AF_INET, socket.AF_INET6) and key not in seen:
            seen.add(key)
            result.append((family, sockaddr))
    return result


def _bind_tcp(family, sockaddr, address, cfg):
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if getattr(cfg, "reuse_port", False):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # a name that resolves to both 127.0.0.1 and ::1 gets two sockets: keep them apart
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        # accepted connections inherit TCP_NODELAY on Linux; small responses go out at once
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            raise BindError(_bind_error_text(exc, address, sockaddr)) from None
        sock.listen(_backlog(cfg))
        sock.setblocking(False)
        return sock
    except BaseException:
        sock.close()
        raise


def _bind_error_text(exc, address, sockaddr):
    host, port = sockaddr[0], sockaddr[1]
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"address already in use: {shown} - another server is running there? "
                f"(find it: ss -ltnp 'sport = :{port}')")
    if exc.errno == errno.EACCES:
        return (f"permission denied binding {shown}: ports below 1024 need root or "
                f"CAP_NET_BIND_SERVICE (use a port >= 1024, or systemd socket activation)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"cannot bind {shown}: this machine has no such address "
                f"(check --bind {address.text!r}; `ip addr` lists the addresses)")
    return f"cannot bind {shown}: {exc.strerror} (check --bind {address.text!r})"


def _bind_unix(address, cfg, log):
    path = address.path
    _remove_stale_unix_socket(path, log)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The socket file's mode is set here, not left to the inherited umask (the server keeps that
    # one for the app when --umask is unset): 0777 minus --umask, 0777 when unset, as gunicorn.
    old_umask = os.umask(_umask(cfg))
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot bind unix:{path}: {exc.strerror} (check that the directory "
                        f"{os.path.dirname(path) or '.'!r} exists and is writable)") from None
    finally:
        os.umask(old_umask)
    try:
        _chown_to_service_user(path, cfg)
        sock.listen(_backlog(cfg))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _remove_stale_unix_socket(path, log):
    """A socket file left by a crashed server is removed; one still answering is an error."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise BindError(f"cannot bind unix:{path}: the path exists and is not a socket "
                        f"(remove it or choose another path)")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        log.info("Removing stale unix socket %s", path)
        os.unlink(path)
        return
    finally:
        probe.close()
    raise BindError(f"address already in use: unix:{path} - another server is running there? "
                    f"(find it: ss -lxp | grep {path})")


def service_ids(cfg):
    """(uid, gid) the workers run as, None for "unchanged".

    The config defaults --user/--group to the current ids (as gunicorn). A --user given without
    --group means that user's own primary group: keeping root's group would be a needless hole.
    """
    sources = getattr(cfg, "sources", {}) or {}
    uid = getattr(cfg, "user", None)
    gid = getattr(cfg, "group", None)
    if sources.get("user") == "default" or uid == os.geteuid():
        uid = None
    if sources.get("group") == "default":
        gid = None
    if gid is None and uid is not None:
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            gid = None
    if gid == os.getegid() and uid is None:
        gid = None
    return uid, gid


def _chown_to_service_user(path, cfg):
    uid, gid = service_ids(cfg)
    if uid is None and gid is None:
        return
    os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)


def _adopt_fd(fd, cfg, what):
    """Wrap an inherited file descriptor; it must be a stream socket."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(f"{what}: file descriptor {fd} is not an open socket ({exc.strerror}); "
                        f"check what passes it to pronghorn") from None
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise BindError(f"{what}: file descriptor {fd} is not a stream (TCP or unix) socket "
                        f"(for systemd, use ListenStream= in the .socket unit)")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.listen(_backlog(cfg))
    sock.set_inheritable(False)
    sock.setblocking(False)
    return sock


def _backlog(cfg):
    return int(getattr(cfg, "backlog", 2048) or 2048)


def _umask(cfg):
    umask = getattr(cfg, "umask", 0)
    return 0 if umask is None else int(umask)


def describe(sock):
    """A human (and log) friendly name: ``http://127.0.0.1:8000``, ``http://[::1]:8000``, ``unix:/p``."""
    try:
        name = sock.getsockname()
    except OSError:
        return "<closed socket>"
    if sock.family == socket.AF_UNIX:
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return f"unix:{name}"
    host, port = name[0], name[1]
    if sock.family == socket.AF_INET6:
        return f"http://[{host}]:{port}"
    return f"http://{host}:{port}"


# A classic BPF program of one instruction, "return 0": drop every packet (struct sock_filter:
# u16 code = BPF_RET|BPF_K, u8 jt, u8 jf, u32 k = 0).
_DROP_ALL_FILTER = struct.pack("HBBI", 0x06, 0, 0, 0)
_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)


def refuse_new_connections(sock):
    """Make a TCP listener drop new handshakes while keeping the connections already queued.

    Closing the last copy of a listening socket resets every connection still waiting in its
    backlog, and while any worker holds a copy the kernel keeps completing handshakes: on a full
    stop, clients that connected just before the end would be reset after the kernel accepted
    them (nginx answers 502). With this filter on the socket (shared by every process holding it)
    SYNs are dropped, so the backlog can only shrink: the workers drain it, and a client that comes
    later sees its connect fail (refused once nobody listens), never a reset after accept.
    Returns False when the filter cannot be set (not Linux, not TCP); nothing else changes then.
    """
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False  # unix sockets: removing the socket file stops new clients instead
    program = ctypes.create_string_buffer(_DROP_ALL_FILTER)
    fprog = struct.pack("HL", 1, ctypes.addressof(program))  # struct sock_fprog {len, *filter}
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True


def close_listeners(listeners, unlink=True):
    """Close every listener; remove unix socket files when ``unlink`` (not on a USR2 hand-over)."""
    for sock in listeners:
        path = None
        if unlink and sock.family == socket.AF_UNIX:
            try:
                path = sock.getsockname()
            except OSError:
                path = None
        try:
            sock.close()
        except OSError:
            pass
        if path and isinstance(path, str) and not path.startswith("\0"):
            try:
                os.unlink(path)
            except OSError:
                pass
