"""TLS on the worker's event loop (`--certfile --keyfile --ca-certs --cert-reqs --ciphers
--ssl-version`, and gunicorn's `ssl_context(config, default_ssl_context_factory)` hook).

Each worker's SSLContext is built by the master just before the worker is forked (so a key
readable by root only works, and a renewed certificate is read by every new worker); the worker
hands it to the event loop's create_server, which does the handshake as a connection opens, so
the connection code sees plaintext as always. sendfile is turned off under TLS
(config.worker_settings), since the kernel would send the file unencrypted. `ssl` is imported only when TLS is on: a plain-HTTP
worker does not load OpenSSL at all.
"""

from __future__ import annotations

from typing import Any


def default_context(cfg: Any) -> Any:
    """The ssl.SSLContext the TLS settings describe."""
    import ssl

    # gunicorn's --ssl-version names a protocol method; every method but the generic ones is
    # deprecated in Python, so a specific version becomes a minimum on a TLS_SERVER context.
    minimums = {
        getattr(ssl, "PROTOCOL_TLSv1", -1): ssl.TLSVersion.TLSv1,
        getattr(ssl, "PROTOCOL_TLSv1_1", -1): ssl.TLSVersion.TLSv1_1,
        getattr(ssl, "PROTOCOL_TLSv1_2", -1): ssl.TLSVersion.TLSv1_2,
    }
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    minimum = minimums.get(int(cfg.ssl_version))
    if minimum is not None:
        context.minimum_version = minimum
    context.load_cert_chain(cfg.certfile, cfg.keyfile)
    context.verify_mode = ssl.VerifyMode(int(cfg.cert_reqs))
    if cfg.ca_certs:
        context.load_verify_locations(cafile=cfg.ca_certs)
    if cfg.ciphers:
        context.set_ciphers(cfg.ciphers)
    return context


def server_args(cfg: Any, handshake_timeout: float) -> dict[str, Any]:
    """create_server's TLS arguments: {} when TLS is off. The handshake must end within
    handshake_timeout (--header-timeout): before it the HTTP layer has no connection to time out,
    so a client that opens and sends nothing would hold a socket for the loop's 60 s default."""
    context = server_context(cfg)
    if context is None:
        return {}
    return {"ssl": context, "ssl_handshake_timeout": handshake_timeout or None}


def server_context(cfg: Any) -> Any:
    """None when TLS is off; else the ssl_context hook's answer (when the config file defines
    one), or default_context(cfg)."""
    if not getattr(cfg, "certfile", None):
        return None
    import ssl

    from pronghorn.config import _noop

    hook = getattr(cfg, "ssl_context", None)
    if hook is not None and hook is not _noop:
        context = hook(cfg, lambda: default_context(cfg))
        if not isinstance(context, ssl.SSLContext):
            raise TypeError(f"the ssl_context hook returned {type(context).__name__}, not an ssl.SSLContext")
        return context
    return default_context(cfg)
