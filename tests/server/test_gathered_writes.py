"""Worker.flush_soon: the responses of one pass of the loop go out at its end, connection by
connection. Logic only (the black-box side is in test_worker_http.py: pipelining, 100-continue
after a gathered response, half-close): here, what one broken connection does to the others."""

import logging
import types

from pronghorn.worker import Worker


class FakeLoop:
    def __init__(self):
        self.callbacks = []

    def call_soon(self, fn, *args):
        self.callbacks.append((fn, args))

    def run_pending(self):
        callbacks, self.callbacks = self.callbacks, []
        for fn, args in callbacks:
            fn(*args)


class FakeConnection:
    def __init__(self, fail=False):
        self.batch = [b"response"]
        self.sent = []
        self.aborted = False
        self.fail = fail

    def flush(self):
        batch, self.batch = self.batch, None
        if self.fail:
            raise RuntimeError("unable to perform operation on a closed transport")
        self.sent.extend(batch)

    def abort(self):
        self.aborted = True


def make_worker():
    worker = Worker(0, 0, [], None, types.SimpleNamespace(), logging.getLogger("test"), None)
    worker.loop = FakeLoop()
    return worker


def test_one_flush_per_pass_for_every_connection_that_gathered():
    worker = make_worker()
    first, second = FakeConnection(), FakeConnection()
    worker.flush_soon(first)
    worker.flush_soon(second)
    assert len(worker.loop.callbacks) == 1  # one callback however many connections
    worker.loop.run_pending()
    assert first.sent == [b"response"] and second.sent == [b"response"]
    assert worker._to_flush == []


def test_a_connection_that_cannot_be_written_does_not_hold_back_the_others():
    worker = make_worker()
    broken, fine = FakeConnection(fail=True), FakeConnection()
    worker.flush_soon(broken)
    worker.flush_soon(fine)
    worker.loop.run_pending()
    assert fine.sent == [b"response"]
    assert broken.aborted
