"""Proxy headers are believed exactly: only from trusted peers, never when they contradict each
other, and the client's address taken from the header the proxy sets.

Unit tests build the environ from parsed requests (pronghorn.wsgi + proxy_trust, no sockets);
black-box tests run a real server on loopback TCP and on a unix socket (the toolkit's setup:
nginx in front, connecting over a unix socket).
"""

import json
import logging
import os
import re
import tempfile
import types

import pytest

from pronghorn import wsgi
from pronghorn.http.errors import HTTPError
from pronghorn.http.parser import RequestParser
from pronghorn.http.proxy_protocol import parse as parse_proxy
from pronghorn.proxy_trust import ProxyTrust
from tests.server.harness import Reader, serve

LOG = logging.getLogger("test")
DEFAULT_SCHEMES = {"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https", "X-FORWARDED-SSL": "on"}


def cfg(**settings):
    values = dict(forwarded_allow_ips=["127.0.0.1", "::1"], secure_scheme_headers=DEFAULT_SCHEMES,
                  forwarder_headers=["SCRIPT_NAME", "PATH_INFO"])
    values.update(settings)
    return types.SimpleNamespace(**values)


def environ(config, *fields, peer=("127.0.0.1", 40000), path=b"/app/page", proxy_header=None):
    head = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"
    [req] = RequestParser().feed(head)
    base = wsgi.base_environ(config, LOG, False, True)
    conn = wsgi.connection_environ(base, peer, ("127.0.0.1", 8000), proxy_header)
    return wsgi.request_environ(conn, req)


# --- the scheme ------------------------------------------------------------------------------


@pytest.mark.parametrize("fields", [
    (b"X-Forwarded-Proto: http", b"X-Forwarded-Ssl: on"),
    (b"X-Forwarded-Ssl: on", b"X-Forwarded-Proto: http"),
    (b"X-Forwarded-Proto: https", b"X-Forwarded-Protocol: tls"),
    (b"X-Forwarded-Proto: https", b"X-Forwarded-Proto: http"),   # the same header, twice
])
def test_conflicting_scheme_headers_from_a_trusted_peer_are_400(fields):
    with pytest.raises(HTTPError) as caught:
        environ(cfg(), *fields)
    assert caught.value.status == 400 and "scheme" in caught.value.reason


def test_agreeing_scheme_headers_are_https():
    env = environ(cfg(), b"X-Forwarded-Proto: https", b"X-Forwarded-Ssl: on")
    assert env["wsgi.url_scheme"] == "https"
    env = environ(cfg(), b"X-Forwarded-Proto: http", b"X-Forwarded-Ssl: off")
    assert env["wsgi.url_scheme"] == "http"


def test_scheme_value_is_compared_exactly_as_gunicorn():
    assert environ(cfg(), b"X-Forwarded-Proto: HTTPS")["wsgi.url_scheme"] == "http"


@pytest.mark.parametrize("peer", [("203.0.113.9", 5000), ("::ffff:10.0.0.1", 5000, 0, 0)])
def test_headers_from_an_untrusted_peer_change_nothing(peer):
    env = environ(cfg(forwarder_headers=["X-FORWARDED-FOR", "SCRIPT_NAME"]), b"X-Forwarded-Proto: http",
                  b"X-Forwarded-Ssl: on", b"X-Forwarded-For: 198.51.100.7", b"SCRIPT_NAME: /app", peer=peer)
    assert env["wsgi.url_scheme"] == "http"            # neither https nor a 400
    assert env["REMOTE_ADDR"] == peer[0] and env["REMOTE_PORT"] == "5000"
    assert env["SCRIPT_NAME"] == "" and env["PATH_INFO"] == "/app/page" and "HTTP_SCRIPT_NAME" not in env


def test_ipv6_proxies_are_trusted_as_written():
    # Addresses are compared as the peer reports them (lower-case hex), never upper-cased.
    config = cfg(forwarded_allow_ips=["2001:db8::a", "fd00:ab::/32"], forwarder_headers=["X-FORWARDED-FOR"])
    env = environ(config, b"X-Forwarded-Proto: https", peer=("2001:db8::a", 5000, 0, 0))
    assert env["wsgi.url_scheme"] == "https"
    env = environ(config, b"X-Forwarded-For: 2001:db8::7, fd00:ab::1", peer=("fd00:ab::2", 5000, 0, 0))
    assert env["REMOTE_ADDR"] == "2001:db8::7"
    assert ProxyTrust.from_cfg(cfg(proxy_allow_ips=["2001:db8::a"])).may_send_proxy_protocol(("2001:db8::a", 1))


def test_only_the_configured_scheme_header_counts():
    # The toolkit's config: nginx sets X-Forwarded-Proto; a client's X-Forwarded-Ssl is no scheme header.
    env = environ(cfg(secure_scheme_headers={"X-FORWARDED-PROTO": "https"}),
                  b"X-Forwarded-Ssl: on", b"X-Forwarded-Proto: http")
    assert env["wsgi.url_scheme"] == "http"


# --- trust of unix-socket peers ------------------------------------------------------------------


def test_unix_socket_peers_are_trusted_unless_no_one_is():
    assert environ(cfg(), b"X-Forwarded-Proto: https", peer="")["wsgi.url_scheme"] == "https"
    assert environ(cfg(forwarded_allow_ips=[]), b"X-Forwarded-Proto: https", peer="")["wsgi.url_scheme"] == "http"


# --- the client's address ------------------------------------------------------------------------


XFF = cfg(forwarder_headers=["X-FORWARDED-FOR"], forwarded_allow_ips=["127.0.0.1", "10.0.0.0/8"])


@pytest.mark.parametrize("value, client", [
    (b"198.51.100.7", "198.51.100.7"),
    (b"203.0.113.66, 198.51.100.7", "198.51.100.7"),          # the left one is the client's own claim
    (b"198.51.100.7, 10.0.0.2, 10.0.0.3", "198.51.100.7"),    # trusted hops on the right are skipped
    (b"10.0.0.5, 10.0.0.2", "10.0.0.5"),                      # all trusted: the left-most
    (b"2001:db8::7", "2001:db8::7"),
    (b"[2001:db8::7]:443", "2001:db8::7"),
    (b"198.51.100.7:51234", "198.51.100.7"),
])
def test_x_forwarded_for_gives_the_right_most_untrusted_address(value, client):
    env = environ(XFF, b"X-Forwarded-For: " + value)
    assert env["REMOTE_ADDR"] == client and "REMOTE_PORT" not in env  # the port was the proxy's
    assert env["HTTP_X_FORWARDED_FOR"] == value.decode()              # the header itself is kept


def test_x_forwarded_for_on_two_lines_is_one_list():
    env = environ(XFF, b"X-Forwarded-For: 203.0.113.66", b"X-Forwarded-For: 198.51.100.7, 10.0.0.2")
    assert env["REMOTE_ADDR"] == "198.51.100.7"


def test_a_value_that_is_no_address_leaves_the_peer():
    env = environ(XFF, b"X-Forwarded-For: unknown")
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["REMOTE_PORT"] == "40000"


def test_address_headers_only_when_named_and_the_first_named_wins():
    assert environ(cfg(), b"X-Forwarded-For: 198.51.100.7")["REMOTE_ADDR"] == "127.0.0.1"  # gunicorn's default
    both = cfg(forwarder_headers=["X-REAL-IP", "X-FORWARDED-FOR"])
    env = environ(both, b"X-Forwarded-For: 203.0.113.66", b"X-Real-IP: 198.51.100.7")
    assert env["REMOTE_ADDR"] == "198.51.100.7"


def test_behind_nginx_on_a_unix_socket_the_app_sees_the_client():
    env = environ(cfg(forwarder_headers=["X-REAL-IP"]), b"X-Real-IP: 198.51.100.7", peer="")
    assert env["REMOTE_ADDR"] == "198.51.100.7"


# --- underscore names (gunicorn's forwarder_headers) ---------------------------------------------


def test_underscore_headers_in_forwarder_headers_reach_the_app_from_a_trusted_peer():
    env = environ(cfg(forwarder_headers=["SCRIPT_NAME", "REMOTE_USER"]), b"SCRIPT_NAME: /app",
                  b"REMOTE_USER: ann", b"X_Other: 1")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/page")
    assert env["HTTP_REMOTE_USER"] == "ann" and "HTTP_X_OTHER" not in env


def test_script_name_that_is_not_a_prefix_of_the_path_is_400():
    with pytest.raises(HTTPError) as caught:
        environ(cfg(), b"SCRIPT_NAME: /other")
    assert caught.value.status == 400


# --- PROXY protocol environ ----------------------------------------------------------------------


def test_proxy_protocol_header_gives_the_client_address():
    header = parse_proxy(b"PROXY TCP4 198.51.100.7 203.0.113.1 51234 443\r\n")
    env = environ(cfg(), peer=("10.0.0.9", 6000), proxy_header=header)
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("198.51.100.7", "51234")
    assert (env["PROXY_PROTOCOL"], env["PROXY_ADDR"], env["PROXY_PORT"]) == ("TCP4", "203.0.113.1", "443")


def test_proxy_protocol_local_keeps_the_socket_peer():
    header = parse_proxy(b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")
    env = environ(cfg(), peer=("10.0.0.9", 6000), proxy_header=header)
    assert (env["REMOTE_ADDR"], env["PROXY_PROTOCOL"]) == ("10.0.0.9", "LOCAL")


def test_proxy_allow_from_decides_who_may_send_a_proxy_header():
    policy = ProxyTrust.from_cfg(cfg(proxy_allow_ips=["10.0.0.0/8"]))
    assert policy.may_send_proxy_protocol(("10.1.2.3", 1)) and policy.may_send_proxy_protocol("")
    assert not policy.may_send_proxy_protocol(("127.0.0.1", 1))


# --- black-box: a real server --------------------------------------------------------------------


def _client_seen(srv, *fields):
    raw = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"
    with srv.connect() as sock:
        sock.sendall(raw)
        status, _, body = Reader(sock).response("GET")
    return status, (json.loads(body) if status == 200 else body)


def test_untrusted_peer_cannot_pose_as_https_or_as_another_client():
    with serve("tests.server.apps_proxy:client", "--forwarded-allow-ips", "10.1.2.3",
               "--forwarder-headers", "X-Forwarded-For") as srv:
        status, seen = _client_seen(srv, b"X-Forwarded-Proto: http", b"X-Forwarded-Ssl: on",
                                    b"X-Forwarded-For: 198.51.100.7")
    assert status == 200
    assert (seen["wsgi.url_scheme"], seen["REMOTE_ADDR"]) == ("http", "127.0.0.1")


def test_conflicting_scheme_headers_are_answered_400_and_the_worker_lives_on():
    with serve("tests.server.apps_proxy:client") as srv:
        status, body = _client_seen(srv, b"X-Forwarded-Proto: http", b"X-Forwarded-Ssl: on")
        assert status == 400, body
        assert _client_seen(srv, b"X-Forwarded-Proto: https")[1]["wsgi.url_scheme"] == "https"


def test_behind_a_proxy_on_a_unix_socket_the_app_and_the_access_log_see_the_client(tmp_path):
    # The toolkit's setup: nginx connects over a unix socket and sets X-Forwarded-For/-Proto.
    sock_path = os.path.join(tempfile.mkdtemp(dir="/tmp"), "app.sock")  # short: sun_path is 108 bytes
    access = tmp_path / "access.log"
    with serve("tests.server.apps_proxy:client", "--forwarder-headers", "X-Forwarded-For",
               "--access-logfile", str(access), host="unix:" + sock_path) as srv:
        status, seen = _client_seen(srv, b"X-Forwarded-For: 198.51.100.7", b"X-Forwarded-Proto: https")
    assert status == 200
    assert (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]) == ("198.51.100.7", "https")
    lines = [line for line in access.read_text().splitlines() if '"GET / ' in line]
    assert lines and re.match(r"198\.51\.100\.7 ", lines[-1]), lines


def test_loopback_default_trust_sets_the_client_from_x_real_ip():
    with serve("tests.server.apps_proxy:client", "--forwarder-headers", "X-Real-IP") as srv:
        status, seen = _client_seen(srv, b"X-Real-IP: 2001:db8::7")
    assert status == 200 and seen["REMOTE_ADDR"] == "2001:db8::7" and seen["REMOTE_PORT"] is None
