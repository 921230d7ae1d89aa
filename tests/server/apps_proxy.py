"""WSGI apps for the umask and proxy-trust tests (``tests.server.apps_proxy:NAME``).

Each answers with JSON so a test can assert on exactly what the app saw.
"""

import json
import os
import tempfile


def _json(start_response, data):
    body = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def make_file(environ, start_response):
    """Creates a file and a directory (as an upload would) in $UMASK_TEST_DIR; answers their modes."""
    where = tempfile.mkdtemp(dir=os.environ["UMASK_TEST_DIR"])
    path = os.path.join(where, "upload.bin")
    with open(path, "wb") as f:   # default mode 0666, minus the process umask
        f.write(b"x")
    folder = os.path.join(where, "media")
    os.mkdir(folder)              # default mode 0777, minus the process umask
    return _json(start_response, {
        "file": oct(os.stat(path).st_mode & 0o777),
        "dir": oct(os.stat(folder).st_mode & 0o777),
    })


def client(environ, start_response):
    """What the app is told about the client: scheme, address, and the forwarded keys."""
    keys = ("wsgi.url_scheme", "REMOTE_ADDR", "REMOTE_PORT", "SCRIPT_NAME", "PATH_INFO",
            "REMOTE_USER", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO")
    return _json(start_response, {k: environ.get(k) for k in keys})
