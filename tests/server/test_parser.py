"""Unit tests of the sans-I/O HTTP/1.1 request parser: what it accepts, what it refuses and with which status."""

import io

import pytest

from pronghorn.http.errors import HTTPError
from pronghorn.http.parser import BODY, HEAD, IDLE, Limits, Request, RequestParser

GET = b"GET /plaintext HTTP/1.1\r\nHost: x\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"


def parse(data, **limits):
    return RequestParser(Limits(**limits)).feed(data)


def parse_one(data, **limits):
    requests = parse(data, **limits)
    assert len(requests) == 1, requests
    return requests[0]


def refused(data, **limits) -> HTTPError:
    parser = RequestParser(Limits(**limits))
    with pytest.raises(HTTPError) as caught:
        parser.feed(data)
    return caught.value


def head(*lines, version=b"HTTP/1.1", target=b"/", method=b"GET"):
    """A head with the given field lines (bytes, without CRLF)."""
    return method + b" " + target + b" " + version + b"\r\n" + b"".join(l + b"\r\n" for l in lines) + b"\r\n"


# ---------------------------------------------------------------- the hot path and the Request fields


def test_small_get_gives_every_field_of_the_contract():
    request = parse_one(GET)
    assert isinstance(request, Request)
    assert (request.method, request.target, request.path, request.raw_path, request.query) == (
        "GET", "/plaintext", "/plaintext", "/plaintext", "")
    assert request.version == "HTTP/1.1"
    assert request.headers == [("HOST", "x"), ("USER-AGENT", "wrk"), ("ACCEPT", "*/*")]
    assert request.host == "x"
    assert request.keep_alive is True
    assert request.content_length is None and request.chunked is False
    assert request.body.read() == b"" and request.body_length == 0
    assert request.trailers == [] and request.expect_continue is False and request.upgrade is None


def test_request_has_slots_so_no_per_request_dict():
    assert not hasattr(parse_one(GET), "__dict__")


def test_bodies_of_two_requests_are_distinct_objects():
    first, second = parse(GET + GET)
    assert first.body is not second.body


def test_path_is_percent_decoded_as_latin1_and_query_is_not_decoded():
    request = parse_one(head(b"Host: x", target=b"/caf%C3%A9/a%2Fb?q=%41+b&c"))
    assert request.raw_path == "/caf%C3%A9/a%2Fb"
    assert request.path == "/caf\xc3\xa9/a/b"  # the UTF-8 bytes, each as one latin-1 character (PEP 3333)
    assert request.query == "q=%41+b&c"
    assert request.target == "/caf%C3%A9/a%2Fb?q=%41+b&c"


def test_query_keeps_a_second_question_mark():
    request = parse_one(head(b"Host: x", target=b"/p?a=1?b=2"))
    assert (request.path, request.query) == ("/p", "a=1?b=2")


def test_field_values_lose_surrounding_whitespace_but_keep_inner_whitespace():
    request = parse_one(head(b"Host: x", b"X-A: \t one  two \t", b"X-B:", b"X-C:   "))
    assert request.headers[1:] == [("X-A", "one  two"), ("X-B", ""), ("X-C", "")]


def test_names_are_upper_cased_duplicates_and_order_kept():
    request = parse_one(head(b"host: x", b"x-dup: 1", b"Content-type: text/plain", b"X-Dup: 2"))
    assert request.headers == [("HOST", "x"), ("X-DUP", "1"), ("CONTENT-TYPE", "text/plain"), ("X-DUP", "2")]


def test_obs_text_in_values_is_kept_as_latin1():
    request = parse_one(head(b"Host: x", b"X-Name: Andr\xe9 \xff"))
    assert request.headers[1] == ("X-NAME", "Andr\xe9 \xff")


def test_unknown_methods_are_passed_to_the_app():
    assert parse_one(head(b"Host: x", method=b"PURGE")).method == "PURGE"
    assert parse_one(head(b"Host: x", method=b"get")).method == "get"  # methods are case-sensitive


def test_square_brackets_are_accepted_in_the_query():
    assert parse_one(head(b"Host: x", target=b"/p?a[]=1")).query == "a[]=1"


# ---------------------------------------------------------------- connection management


@pytest.mark.parametrize("version, connection, keep_alive", [
    (b"HTTP/1.1", None, True),
    (b"HTTP/1.1", b"close", False),
    (b"HTTP/1.1", b"Keep-Alive, CLOSE", False),
    (b"HTTP/1.1", b"upgrade", True),
    (b"HTTP/1.0", None, False),
    (b"HTTP/1.0", b"keep-alive", True),
    (b"HTTP/1.0", b"Keep-Alive", True),
    (b"HTTP/1.0", b"close", False),
])
def test_keep_alive_follows_version_and_connection(version, connection, keep_alive):
    lines = [b"Host: x"] + ([b"Connection: " + connection] if connection else [])
    request = parse_one(head(*lines, version=version))
    assert request.keep_alive is keep_alive
    assert request.version == version.decode()


def test_http10_needs_no_host():
    request = parse_one(b"GET / HTTP/1.0\r\n\r\n")
    assert request.host is None and request.version == "HTTP/1.0"


def test_upgrade_value_is_reported():
    request = parse_one(head(b"Host: x", b"Connection: Upgrade", b"Upgrade: websocket"))
    assert request.upgrade == "websocket"


# ---------------------------------------------------------------- pipelining and states


def test_pipelined_requests_in_one_feed_come_out_in_order():
    post = head(b"Host: x", b"Content-Length: 3", method=b"POST") + b"abc"
    requests = parse(GET + post + head(b"Host: y", target=b"/last"))
    assert [r.method for r in requests] == ["GET", "POST", "GET"]
    assert requests[1].body.read() == b"abc"
    assert requests[2].host == "y" and requests[2].path == "/last"


def test_state_moves_idle_head_body_idle_and_buffered_counts_held_bytes():
    parser = RequestParser()
    assert parser.state is IDLE and parser.buffered == 0
    assert parser.feed(b"POST / HTTP/1.1\r\nHost: x\r\n") == []
    assert parser.state is HEAD and parser.buffered == len(b"POST / HTTP/1.1\r\nHost: x\r\n")
    assert parser.feed(b"Content-Length: 4\r\n\r\nab") == []
    assert parser.state is BODY and parser.buffered == 2
    (request,) = parser.feed(b"cd")
    assert parser.state is IDLE and parser.buffered == 0
    assert request.body.read() == b"abcd" and request.content_length == 4


def test_a_partial_second_request_stays_buffered():
    parser = RequestParser()
    (first,) = parser.feed(GET + GET[:10])
    assert parser.state is HEAD and parser.buffered == 10
    (second,) = parser.feed(GET[10:])
    assert second.target == "/plaintext"


def test_empty_lines_before_a_request_are_skipped_up_to_a_bound():
    assert parse_one(b"\r\n" * 8 + GET).method == "GET"
    assert refused(b"\r\n" * 9 + GET).status == 400


def test_an_empty_line_after_a_body_is_tolerated():
    post = head(b"Host: x", b"Content-Length: 1", method=b"POST") + b"z"
    assert [r.method for r in parse(post + b"\r\n" + GET)] == ["POST", "GET"]


def test_feed_eof_between_requests_is_clean():
    parser = RequestParser()
    parser.feed(GET)
    assert parser.feed_eof() == []


@pytest.mark.parametrize("partial", [GET[:5], head(b"Host: x", b"Content-Length: 5") + b"ab",
                                     head(b"Host: x", b"Transfer-Encoding: chunked") + b"5\r\nab"])
def test_feed_eof_mid_request_is_a_400(partial):
    parser = RequestParser()
    parser.feed(partial)
    with pytest.raises(HTTPError) as caught:
        parser.feed_eof()
    assert caught.value.status == 400


def test_requests_completed_before_an_error_ride_on_the_error():
    parser = RequestParser()
    with pytest.raises(HTTPError) as caught:
        parser.feed(GET + GET + b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n")
    assert [r.target for r in caught.value.requests] == ["/plaintext", "/plaintext"]
    assert caught.value.status == 400


def test_bytearray_input_is_accepted():
    assert [r.target for r in RequestParser().feed(bytearray(GET + GET))] == ["/plaintext", "/plaintext"]


def test_parser_refuses_further_input_after_an_error():
    parser = RequestParser()
    with pytest.raises(HTTPError):
        parser.feed(b"GET / HTTP/9.9\r\n\r\n")
    with pytest.raises(HTTPError) as caught:
        parser.feed(GET)
    assert caught.value.status == 505


# ---------------------------------------------------------------- bodies


def test_content_length_body_arriving_in_pieces():
    parser = RequestParser()
    assert parser.feed(head(b"Host: x", b"Content-Length: 10", method=b"PUT")) == []
    for piece in (b"01", b"234", b"5678"):
        assert parser.feed(piece) == []
    request, following = parser.feed(b"9" + GET)
    assert request.body.read() == b"0123456789" and request.body_length == 10
    assert following.target == "/plaintext"
    assert parser.state is IDLE


def test_body_past_spool_goes_to_a_temporary_file_with_the_same_content():
    data = bytes(range(256)) * 40
    request = parse_one(head(b"Host: x", b"Content-Length: %d" % len(data), method=b"POST") + data, spool=1000)
    assert not isinstance(request.body, io.BytesIO)
    assert request.body.fileno() >= 0
    assert request.body.read() == data


def test_chunked_body_past_spool_goes_to_a_temporary_file():
    chunks = b"".join(b"100\r\n" + b"y" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
    request = parse_one(head(b"Host: x", b"Transfer-Encoding: chunked", method=b"POST") + chunks, spool=1000)
    assert not isinstance(request.body, io.BytesIO)
    assert request.body.read() == b"y" * 2048 and request.body_length == 2048


def test_body_file_supports_readline_readlines_and_iteration():
    data = b"one\ntwo\nthree"
    body = parse_one(head(b"Host: x", b"Content-Length: %d" % len(data), method=b"POST") + data).body
    assert body.readline() == b"one\n"
    assert body.readline(2) == b"tw"
    assert body.readlines() == [b"o\n", b"three"]
    body.seek(0)
    assert list(body) == [b"one\n", b"two\n", b"three"]


def test_get_with_a_body_is_framed_by_content_length():
    request, after = parse(head(b"Host: x", b"Content-Length: 2") + b"hi" + GET)
    assert request.method == "GET" and request.body.read() == b"hi" and after.target == "/plaintext"


def test_content_length_zero_completes_at_the_end_of_the_head():
    request = parse_one(head(b"Host: x", b"Content-Length: 0", method=b"POST"))
    assert request.body.read() == b"" and request.content_length == 0


def test_chunked_body_is_decoded_with_extensions_and_trailers():
    body = (b"5;name=value;flag\r\nhello\r\n"
            b"7;q=\"a \\\"quoted\\\" ext\"\r\n, world\r\n"
            b"0\r\nX-Checksum: abc\r\nX-Other:  1 \r\n\r\n")
    request = parse_one(head(b"Host: x", b"Transfer-Encoding: chunked", method=b"POST") + body)
    assert request.chunked is True and request.content_length is None
    assert request.body.read() == b"hello, world" and request.body_length == 12
    assert request.trailers == [("X-CHECKSUM", "abc"), ("X-OTHER", "1")]


def test_chunk_size_is_hex_and_case_insensitive():
    body = b"A\r\n0123456789\r\nf\r\n" + b"x" * 15 + b"\r\n0\r\n\r\n"
    request = parse_one(head(b"Host: x", b"Transfer-Encoding: Chunked", method=b"POST") + body)
    assert request.body_length == 25


def test_transfer_encoding_lines_are_combined_as_a_list():
    lines = (b"Host: x", b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked")
    assert refused(head(*lines, method=b"POST") + b"0\r\n\r\n").status == 501
    lines = (b"Host: x", b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked")
    assert refused(head(*lines, method=b"POST") + b"0\r\n\r\n").status == 400


# ---------------------------------------------------------------- Expect: 100-continue


def test_expect_continue_is_raised_until_body_bytes_arrive():
    parser = RequestParser()
    parser.feed(head(b"Host: x", b"Expect: 100-Continue", b"Content-Length: 3", method=b"POST"))
    assert parser.expect_continue is True and parser.state is BODY
    (request,) = parser.feed(b"abc")
    assert parser.expect_continue is False
    assert request.expect_continue is True


def test_continue_sent_clears_the_flag():
    parser = RequestParser()
    parser.feed(head(b"Host: x", b"Expect: 100-continue", b"Transfer-Encoding: chunked", method=b"POST"))
    assert parser.expect_continue is True
    parser.continue_sent()
    assert parser.expect_continue is False


def test_expect_continue_is_ignored_for_http10():
    parser = RequestParser()
    parser.feed(head(b"Expect: 100-continue", b"Content-Length: 3", method=b"POST", version=b"HTTP/1.0"))
    assert parser.expect_continue is False


def test_expect_continue_with_the_body_in_the_same_feed_needs_no_100():
    parser = RequestParser()
    (request,) = parser.feed(head(b"Host: x", b"Expect: 100-continue", b"Content-Length: 1") + b"z")
    assert parser.expect_continue is False and request.expect_continue is True


def test_unknown_expectation_is_a_417():
    assert refused(head(b"Host: x", b"Expect: something-else")).status == 417


# ---------------------------------------------------------------- request-line


@pytest.mark.parametrize("line", [
    b"GET  / HTTP/1.1", b"GET /  HTTP/1.1", b"GET / HTTP/1.1 ", b" GET / HTTP/1.1", b"GET\t/ HTTP/1.1",
    b"GET /", b"GET", b"G(T / HTTP/1.1", b"GE\x00T / HTTP/1.1", b"GET / HTTP/1.1\x00",
])
def test_malformed_request_lines_are_400(line):
    assert refused(line + b"\r\nHost: x\r\n\r\n").status == 400


@pytest.mark.parametrize("char", [b" ", b"\x00", b"\x1f", b"\x7f", b'"', b"<", b">", b"\\", b"^", b"`", b"{",
                                  b"|", b"}", b"#", b"\x80", b"\xe9"])
def test_characters_outside_rfc3986_in_the_target_are_400(char):
    assert refused(head(b"Host: x", target=b"/a" + char + b"b")).status == 400


@pytest.mark.parametrize("target", [b"/%", b"/%4", b"/%zz", b"/?q=%G1", b"/a%2"])
def test_bad_percent_encoding_is_400(target):
    error = refused(head(b"Host: x", target=target))
    assert error.status == 400 and "percent" in error.reason


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/1.2", b"HTTP/3.0", b"HTTP/0.9", b"HTTP/1.9"])
def test_unsupported_versions_are_505(version):
    assert refused(head(b"Host: x", version=version)).status == 505


@pytest.mark.parametrize("version", [b"HTTP/1", b"http/1.1", b"HTTP/01.1", b"HTTP/1.10", b"HTTP/1.1.1",
                                     b"HTTP/1,1", b"HTTPS/1.1", b"HTTP/ 1.1", b"HTTP/a.b"])
def test_malformed_versions_are_400(version):
    assert refused(head(b"Host: x", version=version)).status == 400


def test_absolute_form_takes_the_host_from_the_uri():
    request = parse_one(head(b"Host: other", target=b"http://example.com:8080/p/q?x=1"))
    assert request.host == "example.com:8080"
    assert (request.raw_path, request.path, request.query) == ("/p/q", "/p/q", "x=1")
    assert request.target == "http://example.com:8080/p/q?x=1"


def test_absolute_form_with_an_empty_path_means_slash():
    request = parse_one(head(b"Host: example.com", target=b"HTTPS://example.com"))
    assert request.path == "/" and request.host == "example.com"


@pytest.mark.parametrize("target", [b"http://", b"http:///p", b"http://user@host/p", b"ftp://host/p",
                                    b"http://host:port/", b"http://ho st/", b"http//host/", b"index.html"])
def test_bad_absolute_or_relative_targets_are_400(target):
    assert refused(head(b"Host: x", target=target)).status == 400


def test_absolute_form_still_needs_a_host_header_in_http11():
    assert refused(b"GET http://example.com/ HTTP/1.1\r\n\r\n").status == 400


def test_authority_form_only_with_connect():
    request = parse_one(head(b"Host: example.com:443", method=b"CONNECT", target=b"example.com:443"))
    assert request.host == "example.com:443" and request.method == "CONNECT"
    assert refused(head(b"Host: x", method=b"GET", target=b"example.com:443")).status == 400
    assert refused(head(b"Host: x", method=b"CONNECT", target=b"/")).status == 400
    assert refused(head(b"Host: x", method=b"CONNECT", target=b"example.com")).status == 400


def test_asterisk_form_only_with_options():
    assert parse_one(head(b"Host: x", method=b"OPTIONS", target=b"*")).path == "*"
    assert refused(head(b"Host: x", method=b"GET", target=b"*")).status == 400


# ---------------------------------------------------------------- line endings


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\n\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nA: b\n\r\n",
    b"\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_bare_lf_line_endings_are_400(data):
    error = refused(data)
    assert error.status == 400 and "LF" in error.reason


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\rHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\r\n\r\n",
])
def test_cr_alone_is_400(data):
    assert refused(data).status == 400


# ---------------------------------------------------------------- field lines


@pytest.mark.parametrize("line, word", [
    (b"Host : x", "whitespace"),
    (b"Host\t: x", "whitespace"),
    (b" X-Folded: y", "folding"),
    (b"\tX-Folded: y", "folding"),
    (b"No-Colon", "':'"),
    (b": no-name", "name"),
    (b"Bad(Name): v", "name"),
    (b"X-A: a\x00b", "control"),
    (b"X-A: a\x7fb", "control"),
    (b"X-A: a\x0bb", "control"),
    (b"X-A: \x1b[31m", "control"),
])
def test_malformed_field_lines_are_400_with_a_reason(line, word):
    error = refused(head(b"Host: x", line))
    assert error.status == 400 and word in error.reason


@pytest.mark.parametrize("value", [b" " * 8000 + b"\x00", b"\t " * 2500 + b"\x7f", b"a " * 4000 + b"\x00"])
def test_long_whitespace_runs_before_a_bad_byte_are_refused(value):
    """Regression: a naive `OWS value? OWS` regex backtracks quadratically on these (a CPU DoS)."""
    lines = [b"Host: x"] + [b"X-Pad:" + value] * 20
    assert refused(head(*lines)).status == 400


def test_obs_fold_continuation_line_is_400():
    assert refused(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n  two\r\n\r\n").status == 400


def test_htab_inside_a_value_is_fine():
    assert parse_one(head(b"Host: x", b"X-A: a\tb")).headers[1] == ("X-A", "a\tb")


# ---------------------------------------------------------------- Host


def test_missing_host_in_http11_is_400():
    error = refused(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n")
    assert error.status == 400 and "Host" in error.reason


def test_two_host_headers_are_400_even_when_equal():
    assert refused(head(b"Host: x", b"Host: x")).status == 400


@pytest.mark.parametrize("value", [b"a b", b"x/y", b"user@x", b"x:80:80", b"x:8a", b"[::1", b"%zz", b"x?y"])
def test_invalid_host_values_are_400(value):
    assert refused(head(b"Host: " + value)).status == 400


@pytest.mark.parametrize("value", [b"example.com", b"example.com:8080", b"127.0.0.1:80", b"[::1]:8000", b"",
                                   b"xn--caf-dma.example", b"under_score.local"])
def test_valid_host_values_pass(value):
    assert parse_one(head(b"Host: " + value)).host == value.decode()


# ---------------------------------------------------------------- Content-Length


@pytest.mark.parametrize("value", [b"+5", b"-5", b"0x5", b"5 5", b"5, 5", b"5,5", b"five", b"", b"5.0",
                                   b"\xb2", b"1e3"])
def test_content_length_must_be_digits_only(value):
    error = refused(head(b"Host: x", b"Content-Length: " + value, method=b"POST") + b"12345")
    assert error.status == 400


def test_duplicate_content_length_is_400_even_when_equal():
    lines = (b"Host: x", b"Content-Length: 5", b"Content-Length: 5")
    assert refused(head(*lines, method=b"POST") + b"12345").status == 400


def test_huge_content_length_is_413():
    assert refused(head(b"Host: x", b"Content-Length: 9223372036854775808")).status == 413
    assert refused(head(b"Host: x", b"Content-Length: " + b"9" * 5000)).status == 413


def test_content_length_leading_zeros_are_digits():
    assert parse_one(head(b"Host: x", b"Content-Length: 003", method=b"POST") + b"abc").content_length == 3


def test_content_length_over_the_body_limit_is_413_before_any_body_byte():
    parser = RequestParser(Limits(body=10))
    with pytest.raises(HTTPError) as caught:
        parser.feed(head(b"Host: x", b"Content-Length: 11", method=b"POST"))
    assert caught.value.status == 413
    assert parse_one(head(b"Host: x", b"Content-Length: 10", method=b"POST") + b"x" * 10, body=10).body_length == 10


def test_chunked_body_over_the_limit_is_413_as_it_arrives():
    parser = RequestParser(Limits(body=10))
    parser.feed(head(b"Host: x", b"Transfer-Encoding: chunked", method=b"POST"))
    parser.feed(b"6\r\nabcdef\r\n")
    with pytest.raises(HTTPError) as caught:
        parser.feed(b"5\r\n")
    assert caught.value.status == 413


# ---------------------------------------------------------------- Transfer-Encoding


@pytest.mark.parametrize("value, status", [
    (b"chunked", None), (b"CHUNKED", None), (b"gzip, chunked", 501), (b"identity, chunked", 501),
    (b"chunked, gzip", 400), (b"chunked, identity", 400), (b"chunked, chunked", 400), (b"gzip", 400),
    (b"xchunked", 400), (b"chunkedx", 400), (b'"chunked"', 400), (b"chunked ,", 400), (b", chunked", 400),
    (b"chunked;q=1", 400), (b"chunk ed", 400), (b"", 400),
])
def test_transfer_encoding_values(value, status):
    data = head(b"Host: x", b"Transfer-Encoding: " + value, method=b"POST") + b"0\r\n\r\n"
    if status is None:
        assert parse_one(data).chunked is True
    else:
        assert refused(data).status == status


def test_transfer_encoding_with_content_length_is_400():
    lines = (b"Host: x", b"Content-Length: 5", b"Transfer-Encoding: chunked")
    assert refused(head(*lines, method=b"POST") + b"0\r\n\r\n").status == 400


def test_transfer_encoding_in_http10_is_400():
    data = head(b"Transfer-Encoding: chunked", method=b"POST", version=b"HTTP/1.0") + b"0\r\n\r\n"
    assert refused(data).status == 400


# ---------------------------------------------------------------- chunked framing errors


def chunked(body: bytes) -> bytes:
    return head(b"Host: x", b"Transfer-Encoding: chunked", method=b"POST") + body


@pytest.mark.parametrize("body", [
    b" 5\r\nhello\r\n0\r\n\r\n", b"5 \r\nhello\r\n0\r\n\r\n", b"5 ;a=b\r\nhello\r\n0\r\n\r\n",
    b"0x5\r\nhello\r\n0\r\n\r\n", b"+5\r\nhello\r\n0\r\n\r\n", b"-5\r\nhello\r\n0\r\n\r\n",
    b"\r\nhello\r\n0\r\n\r\n", b"g\r\n", b"5;\r\nhello\r\n0\r\n\r\n", b"5;a=\r\nhello\r\n0\r\n\r\n",
    b"5;a=\"unterminated\r\nhello\r\n0\r\n\r\n", b"5;a b\r\nhello\r\n0\r\n\r\n",
    b"1" * 17 + b"\r\n",
    b"5\nhello\r\n0\r\n\r\n", b"5\r\nhello\n0\r\n\r\n", b"5\r\nhelloXY0\r\n\r\n", b"5\r\nhello\r0\r\n\r\n",
    b"5\r\nhello world\r\n0\r\n\r\n", b"0\r\n\n", b"0\n\r\n",
    b"5\r\nhello\r\n0\r\nX: y\n\r\n",
])
def test_bad_chunk_framing_is_400(body):
    assert refused(chunked(body)).status == 400


def test_sixteen_hex_digits_are_accepted_with_leading_zeros():
    assert parse_one(chunked(b"0000000000000005\r\nhello\r\n0\r\n\r\n")).body.read() == b"hello"


def test_chunk_extension_length_is_bounded():
    assert refused(chunked(b"5;a=" + b"x" * 2000 + b"\r\nhello\r\n0\r\n\r\n")).status == 400
    parser = RequestParser()
    parser.feed(chunked(b"5;a="))
    with pytest.raises(HTTPError):
        for _ in range(2000):
            parser.feed(b"x")  # a size line that never ends is refused once it passes the bound


@pytest.mark.parametrize("name", [b"Content-Length", b"Transfer-Encoding", b"Host", b"Authorization",
                                  b"Content-Type", b"Trailer", b"Expect", b"Cookie", b"content-type"])
def test_forbidden_trailer_fields_are_dropped_and_the_request_served(name):
    # RFC 9110 §6.5.1: never merged; RFC 9112 §7.1.2: a recipient may discard them. The allowed
    # field around it is kept, in order, and the request (and the next one) is framed as sent.
    data = chunked(b"5\r\nhello\r\n0\r\nX-Sum: 1\r\n" + name + b": 9\r\nX-After: 2\r\n\r\n")
    first, second = RequestParser().feed(data + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    assert first.body.read() == b"hello" and first.body_length == 5
    assert first.trailers == [("X-SUM", "1"), ("X-AFTER", "2")]
    assert (name.upper().decode(), "9") not in first.headers  # not merged into the head either
    assert second.target == "/next"


def test_forbidden_trailer_fields_still_count_against_the_limits():
    # Dropped, but read first: a client cannot send unbounded forbidden fields.
    many = b"".join(b"Cookie: %d\r\n" % i for i in range(4))
    assert refused(chunked(b"0\r\n" + many + b"\r\n"), fields=3).status == 431
    assert refused(chunked(b"0\r\nHost: \x00\r\n\r\n")).status == 400


def test_trailer_lines_are_checked_like_fields():
    assert refused(chunked(b"0\r\nBad Name: 1\r\n\r\n")).status == 400
    assert refused(chunked(b"0\r\n folded\r\n\r\n")).status == 400
    assert refused(chunked(b"0\r\nX-A: \x00\r\n\r\n")).status == 400


def test_trailer_count_and_size_are_limited():
    many = b"".join(b"X-%d: v\r\n" % i for i in range(4))
    assert refused(chunked(b"0\r\n" + many + b"\r\n"), fields=3).status == 431
    assert refused(chunked(b"0\r\nX-A: " + b"v" * 100 + b"\r\n\r\n"), field_size=50).status == 431


# ---------------------------------------------------------------- limits


def test_request_line_limit_is_414_and_the_limit_itself_passes():
    target = b"/" + b"a" * 85  # "GET " + target + " HTTP/1.1" is exactly 99 bytes
    line = b"GET " + target + b" HTTP/1.1"
    assert len(line) == 99
    assert parse_one(line + b"\r\nHost: x\r\n\r\n", request_line=99).target == target.decode()
    assert refused(line + b"\r\nHost: x\r\n\r\n", request_line=98).status == 414


def test_field_count_limit_is_431_and_the_limit_itself_passes():
    lines = [b"Host: x"] + [b"X-%d: v" % i for i in range(9)]
    assert len(parse_one(head(*lines), fields=10).headers) == 10
    assert refused(head(*lines), fields=9).status == 431


def test_field_size_limit_is_431_and_the_limit_itself_passes():
    line = b"X-Big: " + b"v" * 43  # 50 bytes
    assert parse_one(head(b"Host: x", line), field_size=50).headers[1][1] == "v" * 43
    assert refused(head(b"Host: x", line), field_size=49).status == 431


def test_big_heads_within_default_limits_pass():
    cookie = b"Cookie: " + b"c=" + b"x" * 8000
    lines = [b"Host: x", cookie] + [b"X-%d: %s" % (i, b"v" * 100) for i in range(90)]
    request = parse_one(head(*lines))
    assert len(request.headers) == 92 and request.headers[1][1] == "c=" + "x" * 8000


@pytest.mark.parametrize("data, limits, status", [
    (b"GET /" + b"a" * 200, {"request_line": 100}, 414),
    (b"GET / HTTP/1.1\r\nX-A: " + b"v" * 200, {"field_size": 100}, 431),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 10 + b"X", {"fields": 10}, 431),
])
def test_limits_hold_while_a_head_trickles_in(data, limits, status):
    """A head that never ends is refused as soon as it passes a limit, not buffered forever."""
    parser = RequestParser(Limits(**limits))
    with pytest.raises(HTTPError) as caught:
        for i in range(len(data)):
            parser.feed(data[i:i + 1])
    assert caught.value.status == status
    assert parser.buffered == 0


def test_a_head_of_valid_lines_that_never_ends_is_refused_with_bounded_memory():
    limits = Limits(request_line=100, fields=20, field_size=100)
    bound = 102 + 20 * 102  # request-line and every allowed field line, CRLFs included
    parser = RequestParser(limits)
    parser.feed(b"GET / HTTP/1.1\r\n")
    with pytest.raises(HTTPError) as caught:
        for _ in range(1000):
            parser.feed(b"X-Filler: " + b"v" * 88 + b"\r\n")
            assert parser.buffered <= bound
    assert caught.value.status == 431


def test_trickled_head_error_comes_at_the_byte_that_breaks_the_limit():
    parser = RequestParser(Limits(request_line=20))
    line = b"GET /" + b"a" * 30
    for i in range(20):
        parser.feed(line[i:i + 1])  # 20 bytes: at the limit, still waiting for the line's end
    with pytest.raises(HTTPError) as caught:
        parser.feed(line[20:21])
    assert caught.value.status == 414


@pytest.mark.parametrize("kwargs", [{"fields": -1}, {"request_line": "10"}, {"body": -5}, {"spool": None}])
def test_invalid_limits_are_refused_at_construction(kwargs):
    with pytest.raises(ValueError):
        Limits(**kwargs)


def test_http_error_carries_status_and_reason():
    error = HTTPError(431, "too many fields")
    assert (error.status, error.reason, str(error)) == (431, "too many fields", "431 too many fields")
