"""The umask: the one pronghorn was started with is kept unless --umask is given.

The toolkit's unit sets UMask=0027 so uploads are 0640 (nginx reads them through the group);
a server that reset it to 0 would leave them world-writable. Black-box: a real server subprocess
started under a given umask, and an app that creates a file and a directory.
"""

import contextlib
import json
import os

import pytest

from tests.server.harness import request, serve


@contextlib.contextmanager
def started_with_umask(mask, *args, tmp):
    # The server subprocess inherits this process's umask at fork; restore ours at once after.
    old = os.umask(mask)
    try:
        cm = serve("tests.server.apps_proxy:make_file", *args, env={"UMASK_TEST_DIR": str(tmp)})
        srv = cm.__enter__()
    finally:
        os.umask(old)
    try:
        yield srv
    finally:
        cm.__exit__(None, None, None)


def _modes(srv):
    status, _, body = request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200, body
    return json.loads(body)


def test_inherited_umask_is_kept(tmp_path):
    with started_with_umask(0o027, tmp=tmp_path) as srv:
        assert _modes(srv) == {"file": "0o640", "dir": "0o750"}


def test_umask_flag_replaces_the_inherited_one(tmp_path):
    with started_with_umask(0o027, "--umask", "002", tmp=tmp_path) as srv:
        assert _modes(srv) == {"file": "0o664", "dir": "0o775"}


@pytest.mark.parametrize("threads", ["1", "4"])
def test_workers_see_the_same_umask_inline_and_threaded(tmp_path, threads):
    # Threaded mode runs the app in pool threads: the umask is per process, so the same.
    with started_with_umask(0o077, "--threads", threads, tmp=tmp_path) as srv:
        assert _modes(srv) == {"file": "0o600", "dir": "0o700"}
