"""The PROXY protocol on a real server: --proxy-protocol and --proxy-allow-from, black-box.

A load balancer in front (simulated here from loopback) opens each connection with a PROXY header;
the client it names is what the app (REMOTE_ADDR/REMOTE_PORT) and the access log see. A header from
a peer outside --proxy-allow-from is a 403, a malformed one a 400, each followed by the close; with
the mode off a PROXY line is just a bad request (400). The parser itself is tested byte by byte in
test_proxy_protocol.py; here only the wiring in connection.py.
"""

import json
import re
import socket
import struct
import time

import pytest

from tests.server.harness import Reader, closed_by_server, serve

APP = "tests.server.apps_proxy:client"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_HEADER = b"PROXY TCP4 198.51.100.7 203.0.113.1 51234 443\r\n"
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def v2_header(client, client_port, proxy, proxy_port, tlvs=b""):
    """A PROXY v2 header (command PROXY, stream) for IPv4 or IPv6 addresses."""
    if ":" in client:
        family, fam_proto, fmt = socket.AF_INET6, 0x21, "!16s16sHH"
    else:
        family, fam_proto, fmt = socket.AF_INET, 0x11, "!4s4sHH"
    block = struct.pack(fmt, socket.inet_pton(family, client), socket.inet_pton(family, proxy),
                        client_port, proxy_port) + tlvs
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, fam_proto, len(block)) + block


def seen(reader):
    status, _, body = reader.response()
    assert status == 200, (status, body)
    return json.loads(body)


def exchange(srv, *chunks, pause=0.0):
    """Send the chunks on a new connection (pausing between them), read one response."""
    with srv.connect() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for chunk in chunks:
            sock.sendall(chunk)
            if pause:
                time.sleep(pause)
        return Reader(sock).response()


def refused(srv, raw):
    """(status, closed): the answer to `raw`, and whether the server closed the connection after it."""
    with srv.connect() as sock:
        sock.sendall(raw)
        reader = Reader(sock)
        status, _, _ = reader.response()
        assert not reader.buf, "nothing may follow the refusal: %r" % bytes(reader.buf)
        return status, closed_by_server(sock, timeout=5.0)


@pytest.fixture(scope="module")
def auto(tmp_path_factory):
    """--proxy-protocol auto, loopback allowed (the default --proxy-allow-from), an access log."""
    access = tmp_path_factory.mktemp("pp") / "access.log"
    with serve(APP, "--proxy-protocol=auto", "--access-logfile", str(access)) as srv:
        srv.access = access
        yield srv


def test_v1_header_sets_the_client_the_app_and_the_access_log_see(auto):
    status, _, body = exchange(auto, V1_HEADER + b"GET /v1-seen HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200, body
    client = json.loads(body)
    assert (client["REMOTE_ADDR"], client["REMOTE_PORT"]) == ("198.51.100.7", "51234")
    deadline = time.monotonic() + 5.0
    lines = []
    while time.monotonic() < deadline:  # the log line is written after the response
        lines = [line for line in auto.access.read_text().splitlines() if "/v1-seen" in line]
        if lines:
            break
        time.sleep(0.05)
    assert lines and re.match(r"198\.51\.100\.7 ", lines[-1]), lines


@pytest.mark.parametrize("client, port", [("192.0.2.44", 40001), ("2001:db8::7", 4242)])
def test_v2_header_sets_the_client(auto, client, port):
    header = v2_header(client, port, "203.0.113.1" if "." in client else "2001:db8::1", 443,
                       tlvs=b"\x04\x00\x02ab")  # a TLV (NOOP) is carried and ignored
    status, _, body = exchange(auto, header + GET)
    assert status == 200, body
    assert (json.loads(body)["REMOTE_ADDR"], json.loads(body)["REMOTE_PORT"]) == (client, str(port))


def test_without_a_header_the_connection_is_plain_http(auto):
    status, _, body = exchange(auto, GET)
    assert status == 200 and json.loads(body)["REMOTE_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize("header", [V1_HEADER, v2_header("192.0.2.44", 40001, "203.0.113.1", 443)],
                         ids=["v1", "v2"])
def test_a_header_split_over_several_writes(auto, header):
    raw = header + GET
    chunks = [raw[i:i + 1] for i in range(20)] + [raw[20:len(header) + 3], raw[len(header) + 3:]]
    status, _, body = exchange(auto, *chunks, pause=0.02)
    assert status == 200, body
    assert json.loads(body)["REMOTE_ADDR"] in ("198.51.100.7", "192.0.2.44")


def test_keep_alive_after_the_header_and_the_header_only_first(auto):
    with auto.connect() as sock:
        reader = Reader(sock)
        sock.sendall(V1_HEADER + GET)
        assert seen(reader)["REMOTE_ADDR"] == "198.51.100.7"
        sock.sendall(GET)  # the same connection, no second header: the same client
        assert seen(reader)["REMOTE_ADDR"] == "198.51.100.7"
        # A PROXY line later on is not a PROXY header any more: a bad request.
        sock.sendall(b"PROXY TCP4 192.0.2.1 203.0.113.1 1 2\r\n" + GET)
        assert reader.response()[0] == 400
        assert closed_by_server(sock, timeout=5.0)


@pytest.mark.parametrize("raw", [
    b"PROXY TCP4 not-an-address 203.0.113.1 51234 443\r\n" + GET,
    b"PROXY TCP4 198.51.100.7 203.0.113.1 51234\r\n" + GET,
    b"PROXY " + b"x" * 200 + b"\r\n" + GET,
    V2_SIGNATURE + b"\x31\x11\x00\x0c" + b"\x00" * 12 + GET,  # version 3
], ids=["bad-address", "missing-port", "too-long", "v2-version-3"])
def test_a_malformed_header_is_400_and_close(auto, raw):
    assert refused(auto, raw) == (400, True)


def test_the_worker_lives_on_after_refusals(auto):
    before = exchange(auto, V1_HEADER + GET)
    refused(auto, b"PROXY TCP9 x\r\n" + GET)
    assert exchange(auto, V1_HEADER + GET)[::2] == before[::2]


def test_v2_mode_refuses_a_v1_header():
    # A v1 line is not a v2 header: plain HTTP, whose parser refuses it as it always did.
    with serve(APP, "--proxy-protocol=v2") as srv:
        status, _, body = exchange(srv, v2_header("192.0.2.44", 40001, "203.0.113.1", 443) + GET)
        assert status == 200 and json.loads(body)["REMOTE_ADDR"] == "192.0.2.44"
        assert refused(srv, V1_HEADER + GET) == (400, True)


def test_a_peer_outside_proxy_allow_from_gets_403_and_close():
    with serve(APP, "--proxy-protocol=auto", "--proxy-allow-from", "10.0.0.0/8") as srv:
        assert refused(srv, V1_HEADER + GET) == (403, True)
        assert refused(srv, v2_header("192.0.2.44", 40001, "203.0.113.1", 443) + GET) == (403, True)
        # Plain HTTP from that peer is still served, with the socket's address.
        status, _, body = exchange(srv, GET)
        assert status == 200 and json.loads(body)["REMOTE_ADDR"] == "127.0.0.1"


def test_with_the_mode_off_a_proxy_line_is_400_as_before():
    with serve(APP) as srv:
        assert refused(srv, V1_HEADER + GET) == (400, True)
        status, _, body = exchange(srv, GET)
        assert status == 200 and json.loads(body)["REMOTE_ADDR"] == "127.0.0.1"
