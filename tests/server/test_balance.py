"""Connections spread over the workers of a shared socket (balance.py), not piled on one."""

import collections
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [REPO, os.path.join(REPO, "server")]

from pronghorn.balance import Board  # noqa: E402
from tests.server.harness import Reader, serve  # noqa: E402


def test_board_flags_a_worker_clearly_above_its_share():
    board = Board(8)
    a, b = board.claim(), board.claim()
    board.set_serving(2)
    board.record(b, 10)
    assert not board.above_share(a, 12)   # average 11: within the margin
    assert board.above_share(a, 30)       # average 20: 30 > 1.25 * 20 + 2
    board.set_serving(1)
    assert not board.above_share(a, 30)   # alone: every connection is its share
    board.release(a)
    assert board.view[a] == 0 and board.claim() == a


def test_keep_alive_connections_opened_one_by_one_spread_over_both_workers():
    with serve("tests.server.apps:pid", "-w", "2", "--keep-alive", "30") as srv:
        socks, owners = [], collections.Counter()
        try:
            for _ in range(40):
                s = srv.connect()
                socks.append(s)
                s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                owners[Reader(s).response()[2]] += 1
        finally:
            for s in socks:
                s.close()
    assert len(owners) == 2, owners
    assert max(owners.values()) <= 40 / 2 * 1.25 + 2 + 1, owners
