"""Which proxy headers a connection may use, and what they change in the environ.

A proxy in front (nginx, a load balancer) tells the app what it alone knows: the scheme the client
used (`secure_scheme_headers`), the client's address (`--forwarder-headers` X-Forwarded-For or
X-Real-IP) and, as gunicorn, environ keys spelled with underscores (`SCRIPT_NAME`, `REMOTE_USER`).
Those headers are believed only from a trusted peer (`--forwarded-allow-ips`); from any other peer
they are ordinary headers that change nothing. The rules, as gunicorn 23+ unless said otherwise:

* a unix-socket peer is trusted (only local processes can connect; the socket's permissions say
  which), unless forwarded_allow_ips is empty (pronghorn's way to trust no one);
* scheme: the first secure-scheme header decides ("https" when its value is exactly the configured
  one, else "http"); a later one that says otherwise is a 400 (a client header passed through next
  to the proxy's own, e.g. ``X-Forwarded-Proto: http`` + ``X-Forwarded-Ssl: on``);
* client address (pronghorn; gunicorn leaves REMOTE_ADDR at the peer): from the first header in
  forwarder_headers that carries one. X-Forwarded-For is a list each proxy appends to: the client is
  the right-most address that is not itself a trusted proxy (the left-most if all are); any other
  dash-named header (X-Real-IP) holds one address. A value that is not an IP address is ignored.
  REMOTE_PORT is then dropped: it was the proxy's port, and the client's is not known;
* a header named with ``_`` (dropped for everyone else, see wsgi.py) is passed to the app when it
  is in forwarder_headers; ``SCRIPT_NAME`` sets SCRIPT_NAME and is taken off PATH_INFO.

The PROXY protocol (http/proxy_protocol.py) is trusted separately, by `--proxy-allow-from`.
"""

from __future__ import annotations

import ipaddress

from pronghorn.http.errors import HTTPError

__all__ = ["ProxyTrust", "PeerTrust", "ADDRESS_LIST_HEADER", "apply_proxy_header"]

ADDRESS_LIST_HEADER = "X-FORWARDED-FOR"
_SCHEME, _ADDRESS, _PASS = 0, 1, 2


def _trust_test(entries):
    from pronghorn.config import proxy_trust  # config imports heavy modules: only when building
    return proxy_trust(list(entries))


def _items(value) -> list[str]:
    """'a, b' or ['a', 'b'] -> ['a', 'b']."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [str(item).strip() for item in value if str(item).strip()]


def _names(value) -> list[str]:
    return [name.upper() for name in _items(value)]  # header names, as the parser reports them


class ProxyTrust:
    """The worker's policy, built once from the settings; `for_peer` gives each connection its part."""

    def __init__(self, forwarded_allow_ips=("127.0.0.1", "::1"), secure_scheme_headers=None,
                 forwarder_headers=(), proxy_allow_ips=("127.0.0.1", "::1")):
        allow = _items(forwarded_allow_ips)  # addresses keep their case: '2001:db8::1' is looked up as is
        self.trust_unix = bool(allow)
        self.is_trusted = _trust_test(allow)
        self.proxy_unix = bool(_items(proxy_allow_ips))
        self.proxy_allowed = _trust_test(_items(proxy_allow_ips))
        # name -> (kind, detail): one dict lookup per header on the request path.
        wanted = {}
        for name, value in (secure_scheme_headers or {}).items():
            wanted[str(name).strip().upper()] = (_SCHEME, str(value))
        for name in _names(forwarder_headers):
            if "_" in name:
                wanted.setdefault(name, (_PASS, name))
            else:
                wanted.setdefault(name, (_ADDRESS, name == ADDRESS_LIST_HEADER))
        # Address headers in the order given: the first one present wins.
        self.address_order = [n for n in _names(forwarder_headers) if wanted.get(n, (None,))[0] == _ADDRESS]
        self.peer = PeerTrust(self, wanted) if wanted else None

    @classmethod
    def from_cfg(cls, cfg):
        get = getattr
        return cls(get(cfg, "forwarded_allow_ips", ["127.0.0.1", "::1"]) or [],
                   get(cfg, "secure_scheme_headers", None) or {},
                   get(cfg, "forwarder_headers", None) or [],
                   get(cfg, "proxy_allow_ips", ["127.0.0.1", "::1"]) or [])

    def for_peer(self, peername):
        """The PeerTrust to apply to this connection's requests, or None (nothing is trusted)."""
        if self.peer is None:
            return None
        if isinstance(peername, tuple):
            return self.peer if self.is_trusted(peername[0]) else None
        return self.peer if self.trust_unix else None

    def may_send_proxy_protocol(self, peername) -> bool:
        """--proxy-allow-from: may this peer open with a PROXY header? (unix peers: as gunicorn, yes)"""
        if isinstance(peername, tuple):
            return self.proxy_allowed(peername[0])
        return self.proxy_unix


class PeerTrust:
    """What a trusted peer's headers change in one request's environ (shared by its connections)."""

    __slots__ = ("policy", "wanted")

    def __init__(self, policy, wanted):
        self.policy = policy
        self.wanted = wanted

    def apply(self, env, req) -> None:
        """Set wsgi.url_scheme, REMOTE_ADDR and the passed keys in `env` from the trusted headers of
        `req` (a parsed Request); HTTPError(400) on a conflict."""
        wanted = self.wanted
        scheme = None
        found = None  # address header name -> its values, in order
        for name, value in req.headers:
            entry = wanted.get(name)
            if entry is None:
                continue
            kind, detail = entry
            if kind == _SCHEME:
                said = "https" if value == detail else "http"
                if scheme is None:
                    scheme = said
                elif said != scheme:
                    raise HTTPError(400, "conflicting proxy scheme headers: one says https, another "
                                         "http (the proxy must set one and remove the client's)")
            elif kind == _ADDRESS:
                if found is None:
                    found = {}
                found.setdefault(name, []).append(value)
            else:
                _pass_header(env, req, name, value)
        if scheme is not None:
            env["wsgi.url_scheme"] = scheme
        if found is not None:
            self._set_client(env, found)

    def _set_client(self, env, found) -> None:
        for name in self.policy.address_order:
            values = found.get(name)
            if values is None:
                continue
            if name == ADDRESS_LIST_HEADER:
                client = self._right_most_untrusted(",".join(values).split(","))
            else:
                client = _address(values[-1])
            if client is not None:
                env["REMOTE_ADDR"] = client
                env.pop("REMOTE_PORT", None)
            return

    def _right_most_untrusted(self, entries):
        is_trusted = self.policy.is_trusted
        client = None
        for entry in reversed(entries):
            client = _address(entry)
            if client is None or not is_trusted(client):
                return client
        return client  # every hop was a trusted proxy: the left-most is the client


def _address(text: str):
    """The IP address in an X-Forwarded-For entry or X-Real-IP value (canonical form), else None."""
    text = text.strip()
    if text.startswith("[") and "]" in text:   # "[2001:db8::1]:443" (RFC 7239 style)
        text = text[1:text.index("]")]
    elif text.count(":") == 1:                   # "198.51.100.7:51234"
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _pass_header(env, req, name, value) -> None:
    if name == "SCRIPT_NAME":
        path = req.path  # the whole path: the proxy's mount point replaces $SCRIPT_NAME's
        if not path.startswith(value):
            raise HTTPError(400, f"the proxy's SCRIPT_NAME {value!r} is not a prefix of the path {path!r}")
        env["SCRIPT_NAME"] = value
        env["PATH_INFO"] = path[len(value):]
        return
    key = "HTTP_" + name
    env[key] = env[key] + ", " + value if key in env else value


def apply_proxy_header(env, header) -> None:
    """A connection's environ after its PROXY protocol header (http/proxy_protocol.ProxyHeader):
    gunicorn's keys, PROXY_PROTOCOL, and the client as REMOTE_ADDR/PORT with PROXY_ADDR/PORT the
    address it connected to. LOCAL and UNKNOWN headers keep the socket's peer."""
    env["PROXY_PROTOCOL"] = header.protocol if header.command == "PROXY" else "LOCAL"
    if header.client is not None and header.protocol in ("TCP4", "TCP6"):
        env["REMOTE_ADDR"] = header.client[0]
        env["REMOTE_PORT"] = str(header.client[1])
        env["PROXY_ADDR"] = header.proxy[0]
        env["PROXY_PORT"] = str(header.proxy[1])
