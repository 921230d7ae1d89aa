"""Listening sockets: every --bind form, inherited fds, and the error messages people will read."""

import errno
import os
import socket
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server"))

from pronghorn import sockets  # noqa: E402
from pronghorn.config import Config  # noqa: E402
from pronghorn.sockets import BindError, parse_address  # noqa: E402


class RecordingLog:
    def __init__(self):
        self.lines = []

    def info(self, msg, *args):
        self.lines.append(msg % args)

    warning = error = debug = info


def listeners_for(*binds, **settings):
    cfg = Config(bind=list(binds), **settings)
    return sockets.create_listeners(cfg, RecordingLog(), environ={})


def ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:8000", dict(kind="tcp", host="127.0.0.1", port=8000)),
    ("localhost", dict(kind="tcp", host="localhost", port=8000)),
    (":9000", dict(kind="tcp", host="0.0.0.0", port=9000)),
    ("[::1]:8080", dict(kind="tcp", host="::1", port=8080)),
    ("[::]", dict(kind="tcp", host="::", port=8000)),
    ("unix:/run/app.sock", dict(kind="unix", path="/run/app.sock")),
    ("unix:///run/app.sock", dict(kind="unix", path="/run/app.sock")),
    ("fd://3", dict(kind="fd", fd=3)),
])
def test_parse_address_accepts_gunicorns_forms(text, expected):
    address = parse_address(text)
    for key, value in expected.items():
        assert getattr(address, key) == value


@pytest.mark.parametrize("text, hint", [
    ("127.0.0.1:http", "not a port number"),
    ("127.0.0.1:70000", "not a port number"),
    ("::1:8000", "needs brackets"),
    ("[::1:8000", "missing ']'"),
    ("fd://three", "not a file descriptor number"),
    ("unix:", "empty unix socket path"),
])
def test_parse_address_errors_say_what_was_expected(text, hint):
    with pytest.raises(BindError, match="expected e.g.") as err:
        parse_address(text)
    assert hint in str(err.value)
    assert repr(text) in str(err.value)


def test_ipv4_listener_is_bound_listening_non_blocking_with_nodelay():
    [sock] = listeners_for("127.0.0.1:0")
    try:
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port > 0
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert sock.getblocking() is False
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert not sock.get_inheritable()
        assert sockets.describe(sock) == f"http://127.0.0.1:{port}"
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        sockets.close_listeners([sock])


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback here")
def test_ipv6_listener():
    [sock] = listeners_for("[::1]:0")
    try:
        assert sock.family == socket.AF_INET6
        port = sock.getsockname()[1]
        assert sockets.describe(sock) == f"http://[::1]:{port}"
        with socket.create_connection(("::1", port), timeout=5):
            pass
    finally:
        sockets.close_listeners([sock])


def test_a_hostname_is_bound_on_every_address_it_resolves_to():
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    expected = {(info[0], info[4][0]) for info in
                socket.getaddrinfo("localhost", port, 0, socket.SOCK_STREAM)}
    try:
        socks = listeners_for(f"localhost:{port}")
    except BindError as exc:   # ::1 may be taken by something else on this port: rare, not our bug
        pytest.skip(str(exc))
    try:
        assert {(s.family, s.getsockname()[0]) for s in socks} == expected
    finally:
        sockets.close_listeners(socks)


def test_address_in_use_names_the_address_and_how_to_find_the_culprit():
    [first] = listeners_for("127.0.0.1:0")
    port = first.getsockname()[1]
    try:
        with pytest.raises(BindError) as err:
            listeners_for(f"127.0.0.1:{port}")
        assert str(err.value) == (f"address already in use: 127.0.0.1:{port} - another server is "
                                  f"running there? (find it: ss -ltnp 'sport = :{port}')")
    finally:
        sockets.close_listeners([first])


def test_reuse_port_lets_two_servers_share_a_port():
    [first] = listeners_for("127.0.0.1:0", reuse_port=True)
    port = first.getsockname()[1]
    try:
        [second] = listeners_for(f"127.0.0.1:{port}", reuse_port=True)
        sockets.close_listeners([second])
    finally:
        sockets.close_listeners([first])


def test_unix_socket_mode_follows_umask_and_is_removed_on_close(tmp_path):
    path = tmp_path / "app.sock"
    [sock] = listeners_for(f"unix:{path}", umask=0o007)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert mode == 0o770
    assert sockets.describe(sock) == f"unix:{path}"
    sockets.close_listeners([sock], unlink=True)
    assert not path.exists()


def test_stale_unix_socket_file_is_replaced(tmp_path):
    path = tmp_path / "app.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()             # the file stays, nobody listens: a crashed server's leftover
    [sock] = listeners_for(f"unix:{path}")
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
    finally:
        sockets.close_listeners([sock])


def test_unix_socket_in_use_is_refused(tmp_path):
    path = tmp_path / "app.sock"
    [live] = listeners_for(f"unix:{path}")
    try:
        with pytest.raises(BindError, match="address already in use: unix:"):
            listeners_for(f"unix:{path}")
        assert path.exists()      # the running server's socket was left alone
    finally:
        sockets.close_listeners([live])


def test_unix_path_that_is_a_regular_file_is_not_deleted(tmp_path):
    path = tmp_path / "app.sock"
    path.write_text("precious")
    with pytest.raises(BindError, match="not a socket"):
        listeners_for(f"unix:{path}")
    assert path.read_text() == "precious"


def test_fd_bind_adopts_an_open_socket_and_listens_if_needed():
    raw = socket.socket()
    raw.bind(("127.0.0.1", 0))           # bound, not yet listening
    port = raw.getsockname()[1]
    fd = os.dup(raw.fileno())
    raw.close()
    [sock] = listeners_for(f"fd://{fd}")
    try:
        assert sock.fileno() == fd
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        sockets.close_listeners([sock])


def test_fd_bind_of_something_that_is_not_a_socket(tmp_path):
    with open(tmp_path / "file", "w") as f:
        with pytest.raises(BindError, match="is not an open socket"):
            listeners_for(f"fd://{f.fileno()}")


def test_fd_bind_of_a_datagram_socket(tmp_path):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(BindError, match="not a stream"):
            listeners_for(f"fd://{udp.fileno()}")
        assert udp.fileno() >= 0  # not closed behind the caller's back
    finally:
        udp.close()


def test_systemd_fds_for_another_process_are_ignored_and_cleared():
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"}
    assert sockets.inherited_fds(env) is None
    assert env == {}


def test_systemd_fds_for_us_start_at_3_and_are_cleared():
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "2", "OTHER": "x"}
    assert sockets.inherited_fds(env) == [3, 4]
    assert env == {"OTHER": "x"}


def test_reexec_fds_take_precedence_and_are_cleared():
    env = {"PRONGHORN_FD": "5,6"}
    assert sockets.inherited_fds(env) == [5, 6]
    assert env == {}


def test_usr2_sockets_the_old_master_bound_are_keyed_as_its_binds_and_systemds_stay_fd(tmp_path):
    # The keys decide what the new master may close for good once the old one is gone: the
    # stop filter on TCP sockets and removing unix socket files are for sockets we (or the old
    # master) bound, never for systemd's, which systemd keeps for the next start.
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    own_unix = socket.socket(socket.AF_UNIX)
    own_unix.bind(str(tmp_path / "own.sock"))
    own_unix.listen(8)
    systemds = socket.socket(socket.AF_UNIX)
    systemds.bind(str(tmp_path / "systemd.sock"))
    systemds.listen(8)
    fds = [tcp.fileno(), own_unix.fileno(), systemds.fileno()]
    env = {"PRONGHORN_FD": ",".join(map(str, fds)),
           "PRONGHORN_FD_BOUND": "%d,%d" % (fds[0], fds[1])}
    try:
        groups = sockets.create_listener_groups(Config(), RecordingLog(), environ=env)
        assert sorted(groups) == sorted([
            "127.0.0.1:%d" % tcp.getsockname()[1],
            "unix:%s" % (tmp_path / "own.sock"),
            "fd://%d" % fds[2],
        ])
        assert env == {}      # consumed: workers and a later USR2 do not see them
    finally:
        for sock in (tcp, own_unix, systemds):
            sock.close()


def test_a_malformed_bound_list_is_named():
    env = {"PRONGHORN_FD": "5", "PRONGHORN_FD_BOUND": "five"}
    with pytest.raises(BindError, match="PRONGHORN_FD_BOUND='five'"):
        sockets.create_listener_groups(Config(), RecordingLog(), environ=env)


def test_no_inherited_fds():
    assert sockets.inherited_fds({}) is None


def test_resolution_failure_is_clear():
    with pytest.raises(BindError, match="cannot resolve 'no-such-host.invalid'"):
        listeners_for("no-such-host.invalid:8000")


def test_failure_on_a_later_bind_closes_the_earlier_sockets(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    path = tmp_path / "first.sock"
    with pytest.raises(BindError):
        listeners_for(f"unix:{path}", f"unix:{blocker}")
    assert not path.exists()


def test_permission_error_text_mentions_low_ports():
    if os.geteuid() == 0:
        text = sockets._bind_error_text(OSError(errno.EACCES, "Permission denied"),
                                        parse_address("0.0.0.0:80"), ("0.0.0.0", 80))
    else:
        with pytest.raises(BindError) as err:
            listeners_for("127.0.0.1:80")
        text = str(err.value)
    assert "ports below 1024" in text
