"""The health check, run on the host itself through nginx with the site's real Host header:

    python3 health_check.py HOST PATH EXPECT TIMEOUT SAME_LIMIT [ADDRESS [PORT [SCHEME [VERIFY]]]]

GETs SCHEME://ADDRESS:PORT/PATH (default http://127.0.0.1:80) with `Host: HOST` until it answers EXPECT
(prints `OK STATUS`, exit 0) or TIMEOUT seconds pass (prints `FAIL STATUS` and the last answer's
body, exit 1). 502/503/504 are nginx waiting for the app, so they are retried; any other wrong
answer given SAME_LIMIT times in a row is the app's own answer, and the check gives up early.
With SCHEME https the TLS handshake names HOST (SNI), as a browser's would; VERIFY "1" checks the
certificate against the host's trust store and HOST (a CA's certificate), "0" does not (a
self-signed one). SCHEME "https-if:PATH" is https when PATH (the site's certificate) exists on
the host, else plain http on port 80 (a letsencrypt site whose certificate is not issued yet).
SCHEME "forwarded-https" is plain http with `X-Forwarded-Proto: https`, as the load balancer that
ends TLS in front of an app host asks (the app host's nginx believes it from this host too).
"""

import http.client
import os
import ssl
import sys
import time

USER_AGENT = "pronghorn-deploy-healthcheck"
GATEWAY = (502, 503, 504)


class ServerNameConnection(http.client.HTTPSConnection):
    """HTTPS to an address, with the site's name in the handshake (SNI) and the certificate check."""

    def __init__(self, address, port, server_name, context, timeout):
        super().__init__(address, port, timeout=timeout, context=context)
        self.server_name = server_name

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.server_name)


def tls_context(verify):
    if verify:
        return ssl.create_default_context()
    return ssl._create_unverified_context()  # a self-signed certificate: the check is of the app


def connection(address, port, host, timeout, scheme, verify):
    if scheme == "https":
        return ServerNameConnection(address, port, host.split(":")[0], tls_context(verify), timeout)
    return http.client.HTTPConnection(address, port, timeout=timeout)


def ask(address, port, host, path, timeout, scheme="http", verify=True):
    """(status, first 600 characters of the body); status 0 with the error when no answer."""
    try:
        conn = connection(address, port, host, max(1.0, min(10.0, timeout)), scheme, verify)
        headers = {"Host": host, "User-Agent": USER_AGENT}
        if scheme == "forwarded-https":
            headers["X-Forwarded-Proto"] = "https"
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read(4096).decode("utf-8", "replace")
        conn.close()
        return resp.status, body[:600]
    except Exception as exc:
        return 0, f"{type(exc).__name__}: {exc}"


def check(host, path, expect, timeout, same_limit, address="127.0.0.1", port=80, scheme="http", verify=True):
    """(ok, status, body) of the last answer."""
    deadline = time.monotonic() + timeout
    last, same = None, 0
    while True:
        answer = ask(address, port, host, path, timeout, scheme, verify)
        if answer[0] == expect:
            return True, answer[0], answer[1]
        if answer[0]:
            same = same + 1 if answer == last and answer[0] not in GATEWAY else 1
            if same >= same_limit:
                return False, answer[0], answer[1]
        last = answer
        if time.monotonic() >= deadline:
            return False, last[0], last[1]
        time.sleep(0.1)  # the restart returned at READY=1: the answer is usually there at once


def main(argv):
    host, path, expect, timeout, same_limit = argv[1], argv[2], int(argv[3]), float(argv[4]), int(argv[5])
    address = argv[6] if len(argv) > 6 else "127.0.0.1"
    port = int(argv[7]) if len(argv) > 7 else 80
    scheme = argv[8] if len(argv) > 8 else "http"
    if scheme.startswith("https-if:"):
        scheme, port = ("https", port) if os.path.exists(scheme[len("https-if:"):]) else ("http", 80)
    verify = argv[9] != "0" if len(argv) > 9 else True
    ok, status, body = check(host, path, expect, timeout, same_limit, address, port, scheme, verify)
    print(("OK " if ok else "FAIL ") + str(status))
    if not ok:
        print(body)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main(sys.argv)
