"""Request smuggling vectors: every ambiguous framing is refused, so a front proxy and pronghorn can never
disagree on where one request ends and the next begins.

Each vector is a complete byte stream. The parser must either refuse it (the status is checked) or read it
with exactly the framing written in the table (no hidden second request).
"""

import pytest

from pronghorn.http.errors import HTTPError
from pronghorn.http.parser import Limits, RequestParser

SMUGGLED = b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"


def post(*fields: bytes, body: bytes = b"") -> bytes:
    return b"POST /submit HTTP/1.1\r\nHost: x\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


REFUSED = {
    # CL.TE and TE.CL: both framings in one request, whatever their order
    "CL.TE": (post(b"Content-Length: 6", b"Transfer-Encoding: chunked", body=b"0\r\n\r\nX" + SMUGGLED), 400),
    "TE.CL": (post(b"Transfer-Encoding: chunked", b"Content-Length: 3", body=b"8\r\nSMUGGLED\r\n0\r\n\r\n"), 400),
    "CL.TE with a zero length": (post(b"Content-Length: 0", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
                                 400),
    # TE.TE: obfuscated Transfer-Encoding that one side might not recognise
    "space before colon": (post(b"Transfer-Encoding : chunked", body=b"0\r\n\r\n"), 400),
    "tab before colon": (post(b"Transfer-Encoding\t: chunked", body=b"0\r\n\r\n"), 400),
    "xchunked": (post(b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n"), 400),
    "chunked then identity": (post(b"Transfer-Encoding: chunked, identity", body=b"0\r\n\r\n"), 400),
    "chunked then junk line": (post(b"Transfer-Encoding: chunked", b"Transfer-encoding: cow", body=b"0\r\n\r\n"),
                               400),
    "chunked twice on two lines": (post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked",
                                        body=b"0\r\n\r\n"), 400),
    "chunked twice in one list": (post(b"Transfer-Encoding: chunked,chunked", body=b"0\r\n\r\n"), 400),
    "quoted chunked": (post(b'Transfer-Encoding: "chunked"', body=b"0\r\n\r\n"), 400),
    "chunked with a trailing comma": (post(b"Transfer-Encoding: chunked ,", body=b"0\r\n\r\n"), 400),
    "chunked with parameters": (post(b"Transfer-Encoding: chunked;x=1", body=b"0\r\n\r\n"), 400),
    "vertical tab before chunked": (post(b"Transfer-Encoding: \x0bchunked", body=b"0\r\n\r\n"), 400),
    "NUL in the name": (post(b"Transfer-Encoding\x00: chunked", body=b"0\r\n\r\n"), 400),
    "NUL in the value": (post(b"Transfer-Encoding: chunked\x00", body=b"0\r\n\r\n"), 400),
    "obs-fold value": (post(b"Transfer-Encoding:", b" chunked", body=b"0\r\n\r\n"), 400),
    "obs-fold as CRLF SP CRLF": (b"POST / HTTP/1.1\r\nHost: x\r\n \r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                                 400),
    "line folded into previous by leading space": (post(b" Transfer-Encoding: chunked", body=b"0\r\n\r\n"), 400),
    "TE hidden behind a bare LF": (post(b"X-A: 1\nTransfer-Encoding: chunked", body=b"0\r\n\r\n"), 400),
    "TE hidden behind a bare CR": (post(b"X-A: 1\rTransfer-Encoding: chunked", body=b"0\r\n\r\n"), 400),
    "gzip only (chunked not final)": (post(b"Transfer-Encoding: gzip", body=b"0\r\n\r\n"), 400),
    "unknown coding before chunked": (post(b"Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"), 501),
    "TE in HTTP/1.0": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    # Content-Length obfuscations
    "CL with a plus sign": (post(b"Content-Length: +5", body=b"hello"), 400),
    "CL in hex": (post(b"Content-Length: 0x5", body=b"hello"), 400),
    "CL with a space inside": (post(b"Content-Length: 1 0", body=b"helloworld"), 400),
    "CL as a list of equal values": (post(b"Content-Length: 5, 5", body=b"hello"), 400),
    "CL twice, equal": (post(b"Content-Length: 5", b"Content-Length: 5", body=b"hello"), 400),
    "CL twice, different": (post(b"Content-Length: 5", b"Content-Length: 6", body=b"hello!"), 400),
    "CL with NUL": (post(b"Content-Length: 5\x00", body=b"hello"), 400),
    "CL with space before colon": (post(b"Content-Length : 5", body=b"hello"), 400),
    "CL negative": (post(b"Content-Length: -1", body=b""), 400),
    "CL overflowing 64 bits": (post(b"Content-Length: 18446744073709551621", body=b"hello"), 413),
    # chunk-size obfuscations
    "chunk size with leading spaces": (post(b"Transfer-Encoding: chunked", body=b"  5\r\nhello\r\n0\r\n\r\n"), 400),
    "chunk size with space before ext": (post(b"Transfer-Encoding: chunked", body=b"5 ;ext\r\nhello\r\n0\r\n\r\n"),
                                         400),
    "chunk size with trailing tab": (post(b"Transfer-Encoding: chunked", body=b"5\t\r\nhello\r\n0\r\n\r\n"), 400),
    "chunk size 0x": (post(b"Transfer-Encoding: chunked", body=b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
    "chunk size overflowing 64 bits": (post(b"Transfer-Encoding: chunked",
                                            body=b"10000000000000005\r\nhello\r\n0\r\n\r\n"), 400),
    "chunk size ended by bare LF": (post(b"Transfer-Encoding: chunked", body=b"5\nhello\r\n0\r\n\r\n"), 400),
    "chunk data ended by bare LF": (post(b"Transfer-Encoding: chunked", body=b"5\r\nhello\n0\r\n\r\n"), 400),
    "chunk shorter than declared": (post(b"Transfer-Encoding: chunked", body=b"5\r\n0\r\n\r\n" + SMUGGLED), 400),
    "last chunk ended by bare LF": (post(b"Transfer-Encoding: chunked", body=b"0\n\n" + SMUGGLED), 400),
    "LF inside a quoted chunk extension": (post(b"Transfer-Encoding: chunked",
                                                body=b'5;a="x\ny"\r\nhello\r\n0\r\n\r\n'), 400),
    # request-line and Host tricks
    "two Host headers": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "Host with a space": (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    "Host with a path": (b"GET / HTTP/1.1\r\nHost: a/../b\r\n\r\n", 400),
    "request-line ended by CR CR LF": (b"GET / HTTP/1.1\r\r\nHost: x\r\n\r\n", 400),
    "request-line ended by bare LF": (b"GET / HTTP/1.1\nHost: x\r\n\r\n", 400),
    "space inside the target": (b"GET /a HTTP/1.1/b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_ambiguous_framing_is_refused(name):
    data, status = REFUSED[name]
    parser = RequestParser(Limits())
    with pytest.raises(HTTPError) as caught:
        parser.feed(data)
    assert caught.value.status == status, caught.value.reason
    assert caught.value.reason  # a reason the client (and the log) can act on


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_ambiguous_framing_is_refused_when_fed_byte_by_byte(name):
    data, status = REFUSED[name]
    parser = RequestParser(Limits())
    with pytest.raises(HTTPError) as caught:
        for i in range(len(data)):
            parser.feed(data[i:i + 1])
    assert caught.value.status == status


# Streams that are valid: the parser must frame them exactly as written, never finding a hidden request.
ACCEPTED = {
    "tab after the colon is OWS": (post(b"Transfer-Encoding:\tchunked", body=b"5\r\nhello\r\n0\r\n\r\n"),
                                   [("POST", b"hello")]),
    "chunked in upper case": (post(b"Transfer-Encoding: CHUNKED", body=b"5\r\nhello\r\n0\r\n\r\n"),
                              [("POST", b"hello")]),
    "chunk data that looks like a last chunk": (post(b"Transfer-Encoding: chunked",
                                                     body=b"5\r\n0\r\n\r\n\r\n0\r\n\r\n"), [("POST", b"0\r\n\r\n")]),
    "CL body that looks like a request": (post(b"Content-Length: %d" % len(SMUGGLED), body=SMUGGLED),
                                          [("POST", SMUGGLED)]),
    # A forbidden trailer field is dropped: the body already ended at the last chunk, so it cannot
    # reframe anything, and the bytes after the trailer section are the next request.
    "Content-Length in the trailer": (post(b"Transfer-Encoding: chunked", body=b"0\r\nContent-Length: 9\r\n\r\n")
                                      + SMUGGLED, [("POST", b""), ("GET", b"")]),
    "Transfer-Encoding in the trailer": (post(b"Transfer-Encoding: chunked",
                                              body=b"0\r\nTransfer-Encoding: chunked\r\n\r\n") + SMUGGLED,
                                         [("POST", b""), ("GET", b"")]),
    "CL zero then a real second request": (post(b"Content-Length: 0") + SMUGGLED, [("POST", b""), ("GET", b"")]),
    "CL with OWS around the digits": (post(b"Content-Length:  5\t", body=b"hello"), [("POST", b"hello")]),
    "underscore name is not Transfer-Encoding": (post(b"Transfer_Encoding: chunked", b"Content-Length: 5",
                                                      body=b"hello"), [("POST", b"hello")]),
    "GET with a Content-Length body": (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + SMUGGLED,
                                       [("GET", b"hello"), ("GET", b"")]),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_valid_streams_are_framed_exactly_as_written(name):
    data, expected = ACCEPTED[name]
    requests = RequestParser().feed(data)
    assert [(r.method, r.body.read()) for r in requests] == expected


def test_underscore_header_name_is_kept_distinct_from_the_dash_name():
    """The WSGI adapter must not let 'Transfer_Encoding' pose as 'Transfer-Encoding' (both map to HTTP_...)."""
    (request,) = RequestParser().feed(post(b"Transfer_Encoding: chunked", b"Content-Length: 0"))
    assert ("TRANSFER_ENCODING", "chunked") in request.headers
    assert request.chunked is False
