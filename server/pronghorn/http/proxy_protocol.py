"""Sans-I/O parser of the PROXY protocol header, versions 1 (text) and 2 (binary).

A TCP load balancer (HAProxy, AWS NLB, a cloud TCP proxy, stunnel) that cannot add HTTP headers
sends one PROXY header at the very start of the connection, naming the client it accepted; then the
client's bytes follow unchanged. `--proxy-protocol` (off / v1 / v2 / auto, gunicorn 24.1's names)
turns this on and `--proxy-allow-from` says which peers may send it. Spec:
https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt

A connection uses `ProxyPrelude`, which keeps the first bytes until they decide (see its doc).
Underneath (the connection keeps its first bytes until this returns something other than NEED_MORE)::

    result = parse(buffer, mode)     # mode: "v1", "v2" or "auto"
    if result is NEED_MORE: ...      # keep reading (the caller bounds the wait with its head timeout)
    elif result is NOT_PROXY: ...    # no PROXY header: every byte is HTTP (as gunicorn serves it)
    else: ...                        # a ProxyHeader: buffer[result.length:] is HTTP
    # raises ProxyProtocolError for a malformed header: answer 400 and close.

Strategy: decide from the fewest bytes possible. A buffer that is still a prefix of the v2 signature
or of ``PROXY `` needs more; one that has left both prefixes is not a PROXY header, so a plain HTTP
client is never kept waiting. Everything is bounded: a v1 line is at most 107 bytes (the spec's own
limit), a v2 header at most 16 + MAX_V2_PAYLOAD bytes.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

__all__ = ["parse", "ProxyPrelude", "ProxyHeader", "ProxyProtocolError", "NEED_MORE", "NOT_PROXY", "MODES",
           "V2_SIGNATURE", "MAX_V1_LENGTH", "MAX_V2_PAYLOAD"]

MODES = ("v1", "v2", "auto")
V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
MAX_V1_LENGTH = 107       # the spec's worst case, "PROXY UNKNOWN" + two IPv6 + two ports + CRLF
MAX_V2_PAYLOAD = 4096     # addresses (216 bytes at most, for AF_UNIX) plus TLVs; real proxies send < 1 KiB

NEED_MORE = "NEED_MORE"
NOT_PROXY = "NOT_PROXY"

# v2 address families (high nibble) and their address block lengths.
_V2_FAMILIES = {0x0: ("UNKNOWN", 0), 0x1: ("TCP4", 12), 0x2: ("TCP6", 36), 0x3: ("UNIX", 216)}
_V2_STREAM = 0x1


class ProxyProtocolError(ValueError):
    """The connection started with a malformed PROXY header, or one it may not send: answer
    `status` (400, or 403 as gunicorn for a peer outside --proxy-allow-from) and close."""

    def __init__(self, reason, status=400):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ProxyHeader:
    """One PROXY header.

    version: 1 or 2. command: "PROXY", or "LOCAL" (v2: the proxy's own health check; use the
    socket's addresses). protocol: "TCP4", "TCP6", "UNIX" or "UNKNOWN" (no addresses given).
    client / proxy: (address, port) of the client and of the address it connected to, or None
    (LOCAL, UNKNOWN; for UNIX the port is None). tlvs: v2 type-length-values as (type, bytes).
    length: how many bytes of the buffer the header took.
    """

    version: int
    command: str
    protocol: str
    client: tuple[str, int | None] | None
    proxy: tuple[str, int | None] | None
    tlvs: tuple[tuple[int, bytes], ...]
    length: int


class ProxyPrelude:
    """The start of one connection while --proxy-protocol is on: the bytes go through `feed`
    until it has decided, then straight to the HTTP parser. `allowed`: the peer is in
    --proxy-allow-from (a PROXY header from any other peer is refused, as gunicorn).

        result = prelude.feed(data)
        if result is NEED_MORE: wait for more (the head timeout bounds the wait)
        else: header, http_bytes = result   # header None: no PROXY header, all bytes are HTTP
        # raises ProxyProtocolError: answer exc.status, exc.reason and close
    """

    __slots__ = ("mode", "allowed", "_buffer")

    def __init__(self, mode: str = "auto", allowed: bool = True):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.allowed = allowed
        self._buffer = b""

    def feed(self, data: bytes):
        buffer = self._buffer + data if self._buffer else bytes(data)
        result = parse(buffer, self.mode)  # bounded: decides (or raises) within 16 + MAX_V2_PAYLOAD bytes
        if result is NEED_MORE:
            self._buffer = buffer
            return NEED_MORE
        self._buffer = b""
        if result is NOT_PROXY:
            return None, buffer
        if not self.allowed:
            raise ProxyProtocolError("a PROXY header from a peer not in --proxy-allow-from", 403)
        return result, buffer[result.length:]


def parse(buffer: bytes | bytearray | memoryview, mode: str = "auto"):
    """A ProxyHeader, NEED_MORE or NOT_PROXY for the first bytes of a connection (see the module doc)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    data = bytes(buffer[:16 + MAX_V2_PAYLOAD])
    if mode != "v1" and _starts(data, V2_SIGNATURE):
        return NEED_MORE if len(data) < len(V2_SIGNATURE) else _parse_v2(data)
    if mode != "v2" and _starts(data, V1_PREFIX):
        return NEED_MORE if len(data) < len(V1_PREFIX) else _parse_v1(data)
    return NOT_PROXY


def _starts(data: bytes, prefix: bytes) -> bool:
    """data begins with prefix, or is (so far) a beginning of it."""
    n = min(len(data), len(prefix))
    return n > 0 and data[:n] == prefix[:n]


# --- version 1: "PROXY TCP4 198.51.100.7 203.0.113.1 51234 443\r\n" ------------------------------


def _parse_v1(data: bytes):
    end = data.find(b"\r\n", 0, MAX_V1_LENGTH)
    if end < 0:
        if len(data) >= MAX_V1_LENGTH or b"\n" in data[:MAX_V1_LENGTH]:
            raise ProxyProtocolError(f"PROXY v1 line not ended by CRLF within {MAX_V1_LENGTH} bytes")
        return NEED_MORE
    try:
        line = data[:end].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyProtocolError("PROXY v1 line is not ASCII") from None
    parts = line.split(" ")
    if parts[1:2] == ["UNKNOWN"]:
        # The proxy could not tell (or the client is not TCP): the rest of the line is ignored.
        return ProxyHeader(1, "PROXY", "UNKNOWN", None, None, (), end + 2)
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyProtocolError(f"PROXY v1 line {line!r}: expected "
                                 "'PROXY TCP4|TCP6 SRC DST SRCPORT DSTPORT' or 'PROXY UNKNOWN'")
    _, protocol, src, dst, sport, dport = parts
    family = socket.AF_INET if protocol == "TCP4" else socket.AF_INET6
    client = (_v1_address(family, src, line), _v1_port(sport, line))
    proxy = (_v1_address(family, dst, line), _v1_port(dport, line))
    return ProxyHeader(1, "PROXY", protocol, client, proxy, (), end + 2)


def _v1_address(family: int, text: str, line: str) -> str:
    try:
        # Round trip: the canonical spelling (the access log and REMOTE_ADDR see one form).
        return socket.inet_ntop(family, socket.inet_pton(family, text))
    except (OSError, ValueError):
        raise ProxyProtocolError(f"PROXY v1 line {line!r}: {text!r} is not an address of "
                                 f"{'IPv4' if family == socket.AF_INET else 'IPv6'}") from None


def _v1_port(text: str, line: str) -> int:
    # Digits only, no sign, no leading zero (the spec's form): there is one way to write a port.
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or (len(text) > 1 and text[0] == "0") \
            or int(text) > 65535:
        raise ProxyProtocolError(f"PROXY v1 line {line!r}: {text!r} is not a port (0..65535)")
    return int(text)


# --- version 2: signature, version/command, family/protocol, length, addresses, TLVs ----------


def _parse_v2(data: bytes):
    if len(data) < 16:
        return NEED_MORE
    ver_cmd, fam_proto, length = struct.unpack("!BBH", data[12:16])
    if ver_cmd >> 4 != 2:
        raise ProxyProtocolError(f"PROXY v2 header with version {ver_cmd >> 4} (only 2 exists)")
    command = ver_cmd & 0x0F
    if command not in (0, 1):
        raise ProxyProtocolError(f"PROXY v2 header with unknown command {command}")
    if length > MAX_V2_PAYLOAD:
        raise ProxyProtocolError(f"PROXY v2 header of {length} bytes (at most {MAX_V2_PAYLOAD} accepted)")
    if len(data) < 16 + length:
        return NEED_MORE
    payload = data[16:16 + length]
    total = 16 + length
    if command == 0:
        # LOCAL: the proxy's own connection (a health check); addresses, if any, are ignored.
        return ProxyHeader(2, "LOCAL", "UNKNOWN", None, None, (), total)
    family = fam_proto >> 4
    if family not in _V2_FAMILIES:
        raise ProxyProtocolError(f"PROXY v2 header with unknown address family {family}")
    protocol, size = _V2_FAMILIES[family]
    if family and fam_proto & 0x0F != _V2_STREAM:
        raise ProxyProtocolError("PROXY v2 header for a datagram (or unspecified) transport: "
                                 "only a stream (TCP) connection can carry HTTP")
    if length < size:
        raise ProxyProtocolError(f"PROXY v2 {protocol} header needs {size} bytes of addresses, got {length}")
    client, proxy = _v2_addresses(family, payload[:size])
    return ProxyHeader(2, "PROXY", protocol, client, proxy, _v2_tlvs(payload[size:]), total)


def _v2_addresses(family: int, block: bytes):
    if family == 0x1:
        src, dst, sport, dport = struct.unpack("!4s4sHH", block)
        return ((socket.inet_ntop(socket.AF_INET, src), sport),
                (socket.inet_ntop(socket.AF_INET, dst), dport))
    if family == 0x2:
        src, dst, sport, dport = struct.unpack("!16s16sHH", block)
        return ((socket.inet_ntop(socket.AF_INET6, src), sport),
                (socket.inet_ntop(socket.AF_INET6, dst), dport))
    if family == 0x3:
        return ((_unix_path(block[:108]), None), (_unix_path(block[108:216]), None))
    return None, None  # UNSPEC: the proxy does not say; the socket's addresses stand


def _unix_path(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1")


def _v2_tlvs(rest: bytes) -> tuple[tuple[int, bytes], ...]:
    tlvs = []
    pos = 0
    while pos < len(rest):
        if len(rest) - pos < 3:
            raise ProxyProtocolError("PROXY v2 header ends inside a TLV's type and length")
        kind, size = struct.unpack("!BH", rest[pos:pos + 3])
        if pos + 3 + size > len(rest):
            raise ProxyProtocolError(f"PROXY v2 TLV 0x{kind:02x} of {size} bytes runs past the header")
        tlvs.append((kind, rest[pos + 3:pos + 3 + size]))
        pos += 3 + size
    return tuple(tlvs)
