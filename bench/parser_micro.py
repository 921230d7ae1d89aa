"""Micro-benchmark of pronghorn's HTTP request parser (run by hand; no assertions, no timing in tests).

    .venv/bin/python bench/parser_micro.py [--number N]

Prints microseconds per request for the scenarios the parser is designed for: a small keep-alive GET
(the hot path), the same GET pipelined 16 at a time, a 64 KiB Content-Length POST and a 10-chunk
chunked POST, each arriving in one feed(); plus the GET fed in 2 pieces (head split across reads).
Each figure is the best of 20 short timeit runs (the minimum filters out noise from other load), with
a fresh parser per request (as for a new connection) except where noted. The parser caches lines and
heads it has already validated; the "caches cleared" rows show the cost the first time a head is seen.
"""

import argparse
import os
import sys
import timeit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))

from pronghorn.http import parser as parser_module  # noqa: E402
from pronghorn.http.parser import Limits, RequestParser  # noqa: E402

CACHES = (parser_module._START_LINES, parser_module._FIELD_LINES, parser_module._HEADS,
          parser_module._CHUNK_SIZES)

GET = b"GET /plaintext HTTP/1.1\r\nHost: x\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
BROWSER_GET = (
    b"GET /articles/2024/hello-world?page=2&sort=new HTTP/1.1\r\nHost: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\nCookie: sessionid=abcdef0123456789; csrftoken=zyxwvut\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n\r\n"
)
BODY_64K = os.urandom(32 * 1024).hex().encode()
POST_64K = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % len(BODY_64K)) + BODY_64K
CHUNKED_10 = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              + b"".join(b"%x\r\n%s\r\n" % (100, b"x" * 100) for _ in range(10)) + b"0\r\n\r\n")


def per_request(stmt, number, requests_per_run=1):
    number = max(1, number // 4)
    best = min(timeit.repeat(stmt, number=number, repeat=20))
    return best / number / requests_per_run * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="requests per timing run")
    args = parser.parse_args()
    n = args.number
    limits = Limits()

    def fresh(data):
        return lambda: RequestParser(limits).feed(data)

    keepalive = RequestParser(limits)
    pipelined = GET * 16
    half = len(GET) // 2

    def split_get():
        p = RequestParser(limits)
        p.feed(GET[:half])
        return p.feed(GET[half:])

    def cold(data):
        def run():
            for cache in CACHES:
                cache.clear()
            return RequestParser(limits).feed(data)
        return run

    unique_gets = iter([GET.replace(b"/plaintext", b"/items/%d" % i) for i in range(n * 6)])
    unique_parser = RequestParser(limits)

    rows = [
        ("small GET, one feed, new parser", per_request(fresh(GET), n)),
        ("small GET, one feed, same parser (keep-alive)", per_request(lambda: keepalive.feed(GET), n)),
        ("small GET x16 pipelined in one feed", per_request(lambda: keepalive.feed(pipelined), n // 16, 16)),
        ("small GET split in 2 feeds", per_request(split_get, n)),
        ("small GET, caches cleared (first sight of a head)", per_request(cold(GET), n)),
        ("small GET, new URL each time (fields cached)", per_request(lambda: unique_parser.feed(next(unique_gets)), n)),
        ("browser-like GET (10 fields)", per_request(fresh(BROWSER_GET), n)),
        ("browser-like GET, caches cleared", per_request(cold(BROWSER_GET), n)),
        ("64 KiB Content-Length POST, one feed", per_request(fresh(POST_64K), n // 10)),
        ("10-chunk chunked POST (1000 B), one feed", per_request(fresh(CHUNKED_10), n // 4)),
        ("10-chunk chunked POST, caches cleared", per_request(cold(CHUNKED_10), n // 4)),
        ("parser construction alone", per_request(lambda: RequestParser(limits), n)),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"pronghorn parser micro-benchmark (python {sys.version.split()[0]})")
    for name, micros in rows:
        print(f"  {name:<{width}}  {micros:8.2f} µs/request")


if __name__ == "__main__":
    main()
