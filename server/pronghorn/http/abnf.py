"""The request grammar of RFC 9112 / RFC 9110 / RFC 3986, written once as regular expressions.

Each name below follows the ABNF rule it implements, so the parser reads like the RFC. These are
pattern *strings* (usable in both ``str`` and ``bytes`` patterns); parser.py compiles what it needs.
The parser works on heads decoded as latin-1, so ``\\x80-\\xff`` below means the obs-text octets.
"""

# RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|"
#                        / "~" / DIGIT / ALPHA ;  token = 1*tchar
TCHAR = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
TOKEN = rf"[{TCHAR}]+"

# RFC 9110 §5.6.3: OWS = *( SP / HTAB )
OWS = r"[ \t]*"

# RFC 9110 §5.5: field-vchar = VCHAR / obs-text ; field-content = field-vchar [ 1*( SP / HTAB / field-vchar )
# field-vchar ]. Written as words of field-vchar separated by runs of SP/HTAB, so the value never starts or
# ends with whitespace and the surrounding OWS is not captured.
FIELD_VCHAR = r"\x21-\x7e\x80-\xff"
FIELD_VALUE = rf"(?:[{FIELD_VCHAR}]+(?:[ \t]+[{FIELD_VCHAR}]+)*)?"

# RFC 9112 §5: field-line = field-name ":" OWS field-value OWS  (no whitespace before the colon)
# Written so that no run of whitespace can be matched two ways: with an empty value the leading OWS takes
# it all, and the trailing OWS exists only after a non-empty value. (The naive `OWS value? OWS` lets a
# line of N spaces followed by a bad byte backtrack N*N times: a CPU denial of service.)
FIELD_LINE = rf"({TOKEN}):{OWS}(?:([{FIELD_VCHAR}]+(?:[ \t]+[{FIELD_VCHAR}]+)*){OWS})?"

# RFC 3986 §2: the characters a request-target may contain: unreserved (ALPHA DIGIT - . _ ~), sub-delims
# (! $ & ' ( ) * + , ; =), ":" "@" "/" "?", "%" of pct-encoded (its two HEXDIG are checked separately) and
# "[" "]" (gen-delims used by IP-literals). Everything else (SP, CTLs, '"', "<", ">", "\", "^", "`", "{", "|",
# "}", "#", non-ASCII) is refused.
TARGET_CHAR = r"A-Za-z0-9\-._~!$&'()*+,;=:@/?%\[\]"
BAD_PCT_ENCODING = r"%(?![0-9A-Fa-f]{2})"

# RFC 9112 §3: request-line = method SP request-target SP HTTP-version ; only HTTP/1.0 and HTTP/1.1 pass here.
REQUEST_LINE = rf"({TOKEN}) ([{TARGET_CHAR}]+) HTTP/1\.([01])"
HTTP_VERSION = r"HTTP/([0-9])\.([0-9])"

# RFC 3986 §3.2.2 / RFC 9110 §7.2: Host = uri-host [ ":" port ]; uri-host = IP-literal / IPv4address / reg-name
UNRESERVED_SUB_DELIMS = r"A-Za-z0-9\-._~!$&'()*+,;="
IP_LITERAL = r"\[[0-9A-Za-z:.\-_~!$&'()*+,;=]+\]"
REG_NAME = rf"(?:[{UNRESERVED_SUB_DELIMS}]|%[0-9A-Fa-f]{{2}})*"
URI_HOST = rf"(?:{IP_LITERAL}|{REG_NAME})"
HOST = rf"{URI_HOST}(?::[0-9]*)?"
AUTHORITY_FORM = rf"{URI_HOST}:[0-9]+"          # RFC 9112 §3.2.3, CONNECT only

# RFC 9112 §3.2.2 absolute-form = absolute-URI; only the http and https schemes are served.
ABSOLUTE_FORM = r"([Hh][Tt][Tt][Pp][Ss]?)://([^/?]*)(.*)"

# RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF ; chunk-size = 1*HEXDIG (bounded here to 16 digits so it
# fits 64 bits); chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ).
# Stricter than the ABNF in one place on purpose: no whitespace right after the size digits ("5 ;x", "5\t"),
# because implementations disagree on where such a size ends (a request smuggling vector). Once the first ";"
# has ended the size, BWS is allowed as the ABNF says ("5; name = value ;other"): no parser can read a
# different size from it. Nothing may follow the last extension (no trailing whitespace).
BWS = OWS
QUOTED_STRING = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_EXT_ITEM = rf"{BWS}{TOKEN}(?:{BWS}={BWS}(?:{TOKEN}|{QUOTED_STRING}))?"
CHUNK_EXT = rf"(?:;{_CHUNK_EXT_ITEM}(?:{BWS};{_CHUNK_EXT_ITEM})*)?"
CHUNK_LINE = rf"([0-9A-Fa-f]{{1,16}})({CHUNK_EXT})"
