"""The WSGI environ (PEP 3333): the keys a worker shares, those of one connection, one request's.

Built in three layers so the per-request cost is one dict copy plus the request's own keys:
`base_environ` once per worker, `connection_environ` once per connection (addresses, and what the
peer is trusted with as a proxy: proxy_trust.py), `request_environ` per request. wsgi.py re-exports
these names; the response side lives there.
"""

import os

from pronghorn import SERVER_SOFTWARE
from pronghorn.filewrapper import FileWrapper
from pronghorn.http.errors import HTTPError
from pronghorn.proxy_trust import ProxyTrust, apply_proxy_header

_KEYS_MAX = 2048  # distinct header names remembered (a client inventing names cannot grow it)


class ErrorStream:
    """`wsgi.errors`: text written by the app goes to the server's error log, line by line."""

    def __init__(self, log):
        self._log = log
        self._partial = ""

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("wsgi.errors.write() takes a str, got %s" % type(text).__name__)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._log.error("%s", line)
        return len(text)

    def writelines(self, seq):
        for text in seq:
            self.write(text)

    def flush(self):
        if self._partial:
            self._log.error("%s", self._partial)
            self._partial = ""


class _WorkerEnviron(dict):
    """The keys every request of a worker shares, and the worker's proxy policy (`proxy`)."""

    __slots__ = ("proxy",)


class _ConnectionEnviron(dict):
    """The keys one connection's requests share, and what its peer is trusted with (`trust`, a
    proxy_trust.PeerTrust or None). Copied per request into a plain dict (dict.copy of a subclass
    is a dict, as fast), so the app never sees the attribute."""

    __slots__ = ("trust",)


def base_environ(cfg, log, multithread, multiprocess):
    """The keys every request of this worker shares (copied per request, then completed)."""
    env = _WorkerEnviron({
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        # As gunicorn: the mount point comes from the configuration (--root-path) or the process
        # environment, never from an untrusted client.
        "SCRIPT_NAME": getattr(cfg, "root_path", "") or os.environ.get("SCRIPT_NAME", ""),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if getattr(cfg, "certfile", None) else "http",
        "wsgi.errors": ErrorStream(log),
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    })
    env.proxy = ProxyTrust.from_cfg(cfg)
    global _header_map
    _header_map = getattr(cfg, "header_map", "drop") or "drop"
    return env


def connection_environ(base, peername, sockname, proxy_header=None):
    """`base` plus the keys fixed for one connection: addresses, and the proxy trust of its peer.

    `proxy_header`: the connection's PROXY protocol header (http/proxy_protocol.ProxyHeader), if it
    sent one that --proxy-allow-from accepted: its client address replaces the peer's.
    """
    env = _ConnectionEnviron(base)
    policy = getattr(base, "proxy", None)
    env.trust = policy.for_peer(peername) if policy is not None else None
    if isinstance(peername, tuple):
        env["REMOTE_ADDR"] = peername[0]
        env["REMOTE_PORT"] = str(peername[1])
    else:
        # Unix socket: the peer has no address; as gunicorn, REMOTE_ADDR is the (usually empty) name.
        env["REMOTE_ADDR"] = peername.decode("latin-1") if isinstance(peername, bytes) else (peername or "")
    if isinstance(sockname, tuple):
        env["SERVER_NAME"] = sockname[0]
        env["SERVER_PORT"] = str(sockname[1])
    else:
        env["SERVER_NAME"] = "localhost"
        env["SERVER_PORT"] = ""
    if proxy_header is not None:
        apply_proxy_header(env, proxy_header)
    return env


# --header-map of this process (a worker has one configuration), set by base_environ: kept out of
# the per-connection environ so it costs nothing until a header name with '_' arrives.
_header_map = "drop"

# "USER-AGENT" -> "HTTP_USER_AGENT", computed once per distinct name.
_environ_keys = {"CONTENT-TYPE": "CONTENT_TYPE", "CONTENT-LENGTH": "CONTENT_LENGTH"}


def _environ_key(name):
    key = _environ_keys.get(name)
    if key is None:
        if "_" in name:
            # "X_FOO" and "X-FOO" would both become HTTP_X_FOO: a proxy that strips one spelling
            # could be bypassed with the other. Drop the underscore spelling (gunicorn does too).
            return None
        key = "HTTP_" + name.replace("-", "_")
        if len(_environ_keys) < _KEYS_MAX:
            _environ_keys[name] = key
    return key


def request_environ(conn_env, req, _unused=None):
    """The environ of one request: a copy of the connection's environ plus the request's keys.

    Proxy headers count only when the connection's peer is trusted (conn_env.trust, set by
    connection_environ): then they set wsgi.url_scheme, REMOTE_ADDR... (proxy_trust.py), and
    conflicting scheme headers raise HTTPError(400): the caller answers it as a parse error.
    The third argument is ignored (it was the scheme headers; the trust now travels with conn_env).
    """
    env = conn_env.copy()
    env["REQUEST_METHOD"] = req.method
    script_name = env["SCRIPT_NAME"]
    path = req.path
    if script_name and path.startswith(script_name):
        path = path[len(script_name):]
    env["PATH_INFO"] = path
    env["QUERY_STRING"] = req.query
    env["RAW_URI"] = req.target
    env["SERVER_PROTOCOL"] = req.version
    env["wsgi.input"] = req.body
    for name, value in req.headers:
        key = _environ_key(name)
        if key is None:
            key = _underscore_header(conn_env, name)
            if key is None:
                continue
        if key in env:
            if key == "CONTENT_LENGTH" or key == "CONTENT_TYPE":
                continue  # the parser refuses duplicate Content-Length; keep the first of either
            env[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
        else:
            env[key] = value
    if req.chunked:
        # The body is already de-chunked in full: say how long it is, so frameworks that read
        # CONTENT_LENGTH bytes (Django) see it all.
        env["CONTENT_LENGTH"] = str(getattr(req, "body_length", None) or _body_size(req.body))
    trust = getattr(conn_env, "trust", None)
    if trust is not None:
        trust.apply(env, req)
    return env


def _underscore_header(conn_env, name):
    """--header-map for a name with '_': None to drop it (the default), a 400 to refuse the
    request, or (dangerous) its HTTP_ key, shared with the '-' spelling."""
    mode = _header_map
    if mode == "drop" or "_" not in name:
        return None
    trust = getattr(conn_env, "trust", None)
    if trust is not None and name in trust.wanted:
        return None  # a trusted proxy's forwarder header (SCRIPT_NAME...): PeerTrust.apply passes it
    if mode == "refuse":
        raise HTTPError(400, f"header name with '_' refused (--header-map refuse): {name[:64]}")
    return "HTTP_" + name.replace("-", "_")


def _body_size(body):
    try:
        pos = body.tell()
        end = body.seek(0, 2)
        body.seek(pos)
        return end - pos
    except (OSError, AttributeError, ValueError):
        return 0
