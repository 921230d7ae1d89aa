"""Fuzzing the request parser: any input yields requests, waits for more, or raises HTTPError 4xx/5xx.

Two properties are checked on generated and mutated inputs:
* robustness: nothing but HTTPError ever escapes, and its status is 4xx/5xx;
* split invariance: feeding the bytes all at once, one byte at a time, or cut at random points gives
  the same requests (all fields and bodies; those completed before an error ride on it) and the same
  final state or the very same error.

Every loop is bounded by a count and by seconds (hypothesis: max_examples; no per-example deadline, since a loaded machine must not turn speed into a failure).
"""

import os
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pronghorn.http import parser as parser_module
from pronghorn.http.errors import HTTPError
from pronghorn.http.parser import Limits, RequestParser

SEEDS = [
    b"GET /plaintext HTTP/1.1\r\nHost: x\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n",
    b"GET /a%20b?q=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\na\r\n0123456789\r\n"
    b"0\r\n\r\n",
    b"PUT /u HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    b"GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
]

# Pieces that matter to an HTTP parser: line endings, separators, framing words, digits, odd bytes.
TOKENS = [b"\r\n", b"\r", b"\n", b" ", b"\t", b":", b";", b",", b"=", b'"', b"\x00", b"\x7f", b"\xff", b"%",
          b"0", b"5", b"f", b"ffffffffffffffffff", b"\r\n\r\n", b"chunked", b"Content-Length: 3",
          b"Transfer-Encoding: chunked", b"Host: y", b"HTTP/1.1", b"HTTP/2.0", b"/", b"?", b"*",
          b"0\r\n\r\n", b"Expect: 100-continue", b"Connection: close", b"Trailer: x"]

SMALL_LIMITS = Limits(request_line=40, fields=4, field_size=30, body=20, spool=8)


def summary(request):
    body = request.body.read()
    return (request.method, request.target, request.path, request.raw_path, request.query, request.version,
            tuple(request.headers), body, request.content_length, request.body_length, request.chunked,
            request.keep_alive, request.expect_continue, tuple(request.trailers), request.host, request.upgrade)


def outcome(chunks, limits):
    """(requests, end) where end is ('error', status, reason) or ('waiting', state)."""
    parser = RequestParser(limits)
    requests = []
    try:
        for chunk in chunks:
            requests.extend(summary(r) for r in parser.feed(chunk))
    except HTTPError as error:
        assert 400 <= error.status <= 599, error
        assert isinstance(error.reason, str) and error.reason
        requests.extend(summary(r) for r in error.requests)
        return requests, ("error", error.status, error.reason)
    return requests, ("waiting", parser.state)


def assert_split_invariant(data, limits, cuts=()):
    whole = outcome([data], limits)
    pieces = [data[a:b] for a, b in zip((0, *cuts), (*cuts, len(data)))]
    for other in (outcome([data[i:i + 1] for i in range(len(data))], limits), outcome(pieces, limits)):
        assert other[1] == whole[1], (data, other[1], whole[1])
        assert other[0] == whole[0], data
    return whole


def mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randint(0, len(data))
        action = rng.random()
        if action < 0.4:
            data[pos:pos] = rng.choice(TOKENS)
        elif action < 0.7 and data:
            del data[pos:pos + rng.randint(1, 3)]
        elif data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
    return bytes(data)


# PRONGHORN_FUZZ_EXAMPLES=5000 runs a deeper search (e.g. nightly); the default keeps `make test` quick.
EXAMPLES = int(os.environ.get("PRONGHORN_FUZZ_EXAMPLES", "300"))
fuzz_settings = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz_settings
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 400), st.sampled_from(TOKENS)), max_size=5),
       st.lists(st.integers(0, 400), max_size=4), st.booleans())
def test_token_insertions_keep_both_properties(seed, insertions, cuts, small):
    data = bytearray(seed)
    for pos, token in insertions:
        data[pos:pos] = token
    data = bytes(data)
    cuts = sorted({c % (len(data) + 1) for c in cuts})
    assert_split_invariant(data, SMALL_LIMITS if small else Limits(), cuts)


@fuzz_settings
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=4))
def test_arbitrary_bytes_keep_both_properties(data, cuts):
    cuts = sorted({c % (len(data) + 1) for c in cuts})
    assert_split_invariant(data, Limits(), cuts)


@fuzz_settings
@given(st.lists(st.sampled_from(SEEDS), min_size=1, max_size=4), st.integers(0, 10_000))
def test_pipelined_valid_requests_parse_the_same_however_cut(seeds, seed):
    data = b"".join(s.replace(b"Connection: close\r\n", b"") for s in seeds)
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(len(data) + 1), k=min(5, len(data))))
    requests, end = assert_split_invariant(data, Limits(), cuts)
    assert end == ("waiting", "IDLE")
    assert len(requests) == sum(s.count(b" HTTP/1.") for s in seeds)


def test_random_mutation_loop_bounded_by_count_and_time():
    rng = random.Random(1234)
    deadline = time.monotonic() + 15
    checked = 0
    while checked < 3000 and time.monotonic() < deadline:
        data = mutate(rng, rng.choice(SEEDS))
        cuts = sorted(rng.sample(range(len(data) + 1), k=min(3, len(data) + 1)))
        assert_split_invariant(data, rng.choice([Limits(), SMALL_LIMITS]), cuts)
        checked += 1
    assert checked >= 100  # the loop really ran


@pytest.mark.parametrize("seed", SEEDS)
def test_line_caches_never_change_a_result(seed):
    """The line, head and chunk-size caches are an optimisation only: cold and warm caches agree."""
    rng = random.Random(seed)
    limits = Limits()  # the head cache only serves heads checked under the same Limits object
    for _ in range(50):
        data = mutate(rng, seed)
        for cache in (parser_module._START_LINES, parser_module._FIELD_LINES, parser_module._HEADS,
                      parser_module._CHUNK_SIZES):
            cache.clear()
        cold = outcome([data], limits)
        warm = outcome([data], limits)  # request-line now cached: the head gets cached
        hot = outcome([data], limits)  # served from the head cache
        assert cold == warm == hot, data


def test_a_cached_head_gives_fresh_mutable_objects():
    limits = Limits()
    data = SEEDS[0]
    RequestParser(limits).feed(data)  # a head is cached the second time it is seen
    first = RequestParser(limits).feed(data)[0]
    assert data[:data.find(b"\r\n\r\n")] in parser_module._HEADS
    first.headers.append(("X-MUTATED", "1"))
    first.trailers.append(("X-MUTATED", "1"))
    second = RequestParser(limits).feed(data)[0]
    assert ("X-MUTATED", "1") not in second.headers and second.trailers == []
    assert second.body is not first.body


def test_fast_path_and_reference_path_agree_on_valid_heads():
    """Every head the fast path accepts is accepted, with the same fields, by the line-by-line reference path."""
    rng = random.Random(99)
    parser = RequestParser()
    compared = 0
    for _ in range(2000):
        data = mutate(rng, rng.choice(SEEDS))
        end = data.find(b"\r\n\r\n")
        if end <= 0 or data.startswith(b"\r\n"):
            continue
        head = data[:end]
        try:
            fast = parser._parse_head(head)
        except HTTPError:
            continue
        start, fields = parser._parse_head_by_lines(head)
        assert fields == fast.headers
        assert start[:3] == (fast.method, fast.target, fast.version[-1])
        compared += 1
    assert compared > 50
