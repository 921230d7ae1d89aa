"""The PROXY protocol parser (pronghorn.http.proxy_protocol), byte by byte: v1, v2, limits, errors.

Pure unit tests: the parser never touches a socket. Each result must not depend on how the bytes
were cut, so most cases are also fed one growing prefix at a time.
"""

import socket
import struct

import pytest

from pronghorn.http.proxy_protocol import (
    MAX_V1_LENGTH, MAX_V2_PAYLOAD, NEED_MORE, NOT_PROXY, V2_SIGNATURE, ProxyHeader, ProxyPrelude,
    ProxyProtocolError, parse,
)

HTTP = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def v2(command=1, family=0x1, proto=0x1, payload=b"", version=2):
    return V2_SIGNATURE + bytes([(version << 4) | command, (family << 4) | proto]) \
        + struct.pack("!H", len(payload)) + payload


def inet4(src="198.51.100.7", dst="203.0.113.1", sport=51234, dport=443):
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)


def inet6(src="2001:db8::7", dst="2001:db8::1", sport=51234, dport=443):
    return (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
            + struct.pack("!HH", sport, dport))


def tlv(kind, value):
    return struct.pack("!BH", kind, len(value)) + value


def every_prefix(data, mode="auto"):
    """parse() of each proper prefix of `data` (all must be NEED_MORE), then of the whole."""
    for n in range(1, len(data)):
        assert parse(data[:n], mode) is NEED_MORE, f"prefix of {n} bytes"
    return parse(data, mode)


# --- version 1 -------------------------------------------------------------------------------


def test_v1_tcp4_gives_client_and_proxy_and_leaves_the_http_bytes():
    line = b"PROXY TCP4 198.51.100.7 203.0.113.1 51234 443\r\n"
    header = every_prefix(line)
    assert header == ProxyHeader(1, "PROXY", "TCP4", ("198.51.100.7", 51234), ("203.0.113.1", 443), (),
                                 len(line))
    assert parse(line + HTTP).length == len(line)  # the caller hands the rest to the HTTP parser


def test_v1_tcp6_address_is_given_in_its_canonical_form():
    line = b"PROXY TCP6 2001:0db8:0000::7 2001:db8::1 65535 0\r\n"
    header = parse(line + HTTP, "v1")
    assert header.protocol == "TCP6"
    assert header.client == ("2001:db8::7", 65535) and header.proxy == ("2001:db8::1", 0)


@pytest.mark.parametrize("line", [b"PROXY UNKNOWN\r\n",
                                  b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"])
def test_v1_unknown_has_no_addresses_and_the_rest_of_its_line_is_ignored(line):
    header = parse(line + HTTP)
    assert (header.protocol, header.client, header.proxy, header.length) == ("UNKNOWN", None, None, len(line))


def test_v1_longest_line_is_accepted_and_one_byte_more_is_refused():
    longest = b"PROXY UNKNOWN " + b"f" * (MAX_V1_LENGTH - len(b"PROXY UNKNOWN \r\n")) + b"\r\n"
    assert len(longest) == MAX_V1_LENGTH and parse(longest).length == MAX_V1_LENGTH
    with pytest.raises(ProxyProtocolError, match="107"):
        parse(longest[:-2] + b"f\r\n")
    with pytest.raises(ProxyProtocolError):
        parse(b"PROXY TCP4 " + b"1" * 200)  # no CRLF coming: refused at the bound, not waited on


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 198.51.100.7 203.0.113.1 51234\r\n",            # a field missing
    b"PROXY TCP4 198.51.100.7 203.0.113.1 51234 443 extra\r\n",  # one too many
    b"PROXY TCP4  198.51.100.7 203.0.113.1 51234 443\r\n",       # two spaces
    b"PROXY TCP5 198.51.100.7 203.0.113.1 51234 443\r\n",        # unknown protocol
    b"PROXY tcp4 198.51.100.7 203.0.113.1 51234 443\r\n",        # the spec's names are upper case
    b"PROXY TCP4 2001:db8::7 203.0.113.1 51234 443\r\n",         # IPv6 under TCP4
    b"PROXY TCP6 198.51.100.7 2001:db8::1 51234 443\r\n",        # IPv4 under TCP6
    b"PROXY TCP4 198.51.100.256 203.0.113.1 51234 443\r\n",      # not an address
    b"PROXY TCP4 198.51.100.7 203.0.113.1 65536 443\r\n",        # port out of range
    b"PROXY TCP4 198.51.100.7 203.0.113.1 -1 443\r\n",
    b"PROXY TCP4 198.51.100.7 203.0.113.1 +80 443\r\n",
    b"PROXY TCP4 198.51.100.7 203.0.113.1 080 443\r\n",          # leading zero
    b"PROXY TCP4 198.51.100.7 203.0.113.1 51234 443\n",          # bare LF
    b"PROXY TCP4 198.51.100.7 203.0.113.1 5\xb9234 443\r\n",     # not ASCII
    b"PROXY \r\n",
])
def test_v1_malformed_lines_are_errors(line):
    with pytest.raises(ProxyProtocolError):
        parse(line + HTTP)


# --- version 2 -------------------------------------------------------------------------------


def test_v2_tcp4_with_tlvs():
    tlvs = tlv(0x01, b"h2") + tlv(0x05, b"") + tlv(0xEA, b"vpce-0123")  # ALPN, NOOP, AWS VPC endpoint
    data = v2(payload=inet4() + tlvs)
    header = every_prefix(data)
    assert header == ProxyHeader(2, "PROXY", "TCP4", ("198.51.100.7", 51234), ("203.0.113.1", 443),
                                 ((0x01, b"h2"), (0x05, b""), (0xEA, b"vpce-0123")), len(data))
    assert parse(data + HTTP).length == len(data)


def test_v2_tcp6():
    header = parse(v2(family=0x2, payload=inet6()) + HTTP, "v2")
    assert header.protocol == "TCP6"
    assert header.client == ("2001:db8::7", 51234) and header.proxy == ("2001:db8::1", 443)


def test_v2_unix_addresses_are_paths():
    block = b"/run/client.sock".ljust(108, b"\0") + b"/run/app.sock".ljust(108, b"\0")
    header = parse(v2(family=0x3, payload=block))
    assert header.protocol == "UNIX"
    assert header.client == ("/run/client.sock", None) and header.proxy == ("/run/app.sock", None)


def test_v2_local_command_is_the_proxys_own_connection():
    # A health check from the balancer itself: any address block is ignored.
    header = parse(v2(command=0, payload=inet4()) + HTTP)
    assert (header.command, header.client, header.length) == ("LOCAL", None, 16 + 12)


def test_v2_unspecified_family_gives_no_addresses():
    header = parse(v2(family=0x0, proto=0x0, payload=b""))
    assert (header.command, header.protocol, header.client) == ("PROXY", "UNKNOWN", None)


def test_v2_longest_payload_is_accepted_and_one_byte_more_is_refused():
    padding = MAX_V2_PAYLOAD - 12 - 3
    data = v2(payload=inet4() + tlv(0x05, b"\0" * padding))
    assert parse(data).length == 16 + MAX_V2_PAYLOAD
    with pytest.raises(ProxyProtocolError, match=str(MAX_V2_PAYLOAD)):
        parse(v2(payload=inet4() + tlv(0x05, b"\0" * (padding + 1)))[:16])  # refused from the length alone


@pytest.mark.parametrize("data, why", [
    (v2(version=1, payload=inet4()), "version"),
    (v2(command=2, payload=inet4()), "command"),
    (v2(family=0x4, payload=inet4()), "family"),
    (v2(proto=0x2, payload=inet4()), "datagram"),              # UDP cannot carry HTTP
    (v2(payload=inet4()[:11]), "addresses"),                   # truncated address block
    (v2(family=0x2, payload=inet4()), "addresses"),            # TCP6 with a TCP4-sized block
    (v2(payload=inet4() + b"\x01\x00"), "TLV"),                # TLV header cut short
    (v2(payload=inet4() + tlv(0x01, b"h2")[:-1]), "TLV"),      # TLV value runs past the end
])
def test_v2_malformed_headers_are_errors(data, why):
    with pytest.raises(ProxyProtocolError, match=why):
        parse(data + HTTP)


# --- deciding between PROXY and plain HTTP -----------------------------------------------------


@pytest.mark.parametrize("data", [HTTP, b"POST / HTTP/1.1\r\n", b"PUT", b"\r\nGET / HTTP/1.1\r\n",
                                  b"\r\n\r\nGET", b"PROXZ", b"\x16\x03\x01"])
def test_plain_http_is_not_proxy_as_soon_as_a_byte_says_so(data):
    assert parse(data) is NOT_PROXY


def test_a_prefix_of_either_signature_waits_for_more():
    for data in (b"P", b"PROX", b"PROXY", b"\r", b"\r\n\r\n\x00", V2_SIGNATURE[:11], b"\r\n"):
        assert parse(data) is NEED_MORE, data


def test_modes_accept_only_their_version():
    line = b"PROXY TCP4 198.51.100.7 203.0.113.1 51234 443\r\n" + HTTP
    binary = v2(payload=inet4()) + HTTP
    assert parse(line, "v2") is NOT_PROXY and parse(binary, "v1") is NOT_PROXY
    assert parse(line, "v1").version == 1 and parse(binary, "v2").version == 2
    with pytest.raises(ValueError):
        parse(line, "on")


def test_garbage_after_the_v2_signature_is_an_error_never_a_hang():
    # Any 16 bytes after the signature decide: an error or a length to wait for, never more.
    for version_byte in range(256):
        data = V2_SIGNATURE + bytes([version_byte, 0x11, 0, 12]) + inet4()
        try:
            result = parse(data)
        except ProxyProtocolError:
            continue
        assert isinstance(result, ProxyHeader)


# --- the connection's side: ProxyPrelude ---------------------------------------------------------


def test_prelude_hands_over_the_http_bytes_however_the_input_was_cut():
    line = b"PROXY TCP4 198.51.100.7 203.0.113.1 51234 443\r\n"
    for cut in range(1, len(line) + 5):
        prelude = ProxyPrelude("auto")
        first = prelude.feed((line + HTTP)[:cut])
        if cut < len(line):
            assert first is NEED_MORE
            header, rest = prelude.feed((line + HTTP)[cut:])
        else:
            header, rest = first
            rest += (line + HTTP)[cut:]
        assert header.client == ("198.51.100.7", 51234) and rest == HTTP


def test_prelude_without_a_proxy_header_passes_every_byte_on():
    prelude = ProxyPrelude("auto")
    assert prelude.feed(b"\r\n") is NEED_MORE          # could still be v2's signature
    assert prelude.feed(b"GET / HTTP/1.1\r\n") == (None, b"\r\nGET / HTTP/1.1\r\n")


def test_prelude_refuses_a_proxy_header_from_a_peer_not_allowed_with_403():
    with pytest.raises(ProxyProtocolError) as caught:
        ProxyPrelude("v1", allowed=False).feed(b"PROXY UNKNOWN\r\n" + HTTP)
    assert caught.value.status == 403
    assert ProxyPrelude("v1", allowed=False).feed(HTTP) == (None, HTTP)  # plain HTTP is still served


def test_prelude_errors_are_400():
    with pytest.raises(ProxyProtocolError) as caught:
        ProxyPrelude().feed(b"PROXY TCP4 nonsense\r\n")
    assert caught.value.status == 400 and caught.value.reason
