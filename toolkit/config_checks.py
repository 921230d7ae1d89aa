"""The value checks of deploy.toml's keys (toolkit/config.py's schema uses them).

Each check takes a value as TOML parsed it and returns it, possibly normalised (a domain
lower-cased, a list made a tuple), or raises `Invalid("expected ...")`; the caller adds the
file, line, section and key to the message. Regexes anchor with \\Z: `$` would let a trailing
newline through.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from toolkit.names import NAME_RE

# Each check takes a value already parsed by TOML and returns it (possibly normalised) or raises
# Invalid("expected ...") - the caller adds the file, section and key to the message.

class Invalid(Exception):
    pass


ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
WSGI_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*(\(\))?\Z")
MODULE_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")
DOMAIN_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
SIZE_RE = re.compile(r"^\d+[kmg]?\Z")
DURATION_RE = re.compile(r"^\d+(ms|s|m|h|d|w|M|y)?\Z")
URL_PATH_RE = re.compile(r"^/([A-Za-z0-9._~-]+/)*\Z")
# A proxy URL goes into apt.conf ("...";) and pip.conf: only a URL's own characters, so no value
# can close the quote and add an apt option (`";APT::Update::Pre-Invoke{...}` must not pass).
# Credentials in the URL must be percent-encoded.
PROXY_URL_RE = re.compile(r"^(|https?://([A-Za-z0-9._~%-]+(:[A-Za-z0-9._~%-]*)?@)?"
                          r"([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?/?)\Z")


# Names an app cannot take: they are system users or groups already (the app's name becomes its
# Linux user) or collide with a file the toolkit renders (pronghorn-default.conf).
RESERVED_NAMES = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
    "www-data", "backup", "list", "irc", "gnats", "nobody", "nogroup", "sshd", "messagebus", "nginx",
    "postgres", "mysql", "redis", "ubuntu", "debian", "admin", "adm", "sudo", "staff", "users",
    "pronghorn-default",
})


def app_name(value):
    value = matching(NAME_RE, "a lower-case slug: a letter, then letters, digits or '-', at most 31 "
                      "characters (it is also the Linux user and the unit name)")(value)
    if value in RESERVED_NAMES or value.startswith("systemd-"):
        raise Invalid(f"{value!r} is a system user or reserved name; pick a name of your own, like "
                       f'"{value}-app"')
    return value


app_name.allowed = ("a lower-case slug: a letter, then letters, digits or '-', at most 31 characters "
                     "(it is also the Linux user and the unit name; not a system user like root or www-data)")


def string(value):
    if not isinstance(value, str):
        raise Invalid("expected a string in quotes")
    return value


def int_range(low, high):
    def check(value):
        # bool is an int subclass in Python; `workers = true` is still a mistake
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Invalid(f"expected a whole number from {low} to {high}")
        return value
    check.allowed = f"a whole number from {low} to {high}"
    return check


def boolean(value):
    if not isinstance(value, bool):
        raise Invalid("expected true or false (without quotes)")
    return value


def choice(*options):
    def check(value):
        if value not in options:
            raise Invalid("expected one of " + ", ".join(f'"{o}"' for o in options))
        return value
    check.allowed = " | ".join(f'"{o}"' for o in options)
    return check


def matching(regex, expected):
    def check(value):
        if not isinstance(value, str) or not regex.match(value):
            raise Invalid(f"expected {expected}")
        return value
    check.allowed = expected
    return check


def list_of(item_check, expected, allow_empty=True):
    def check(value):
        if not isinstance(value, list):
            raise Invalid(f"expected a list of {expected}, e.g. [\"...\"]")
        if not value and not allow_empty:
            raise Invalid(f"expected a non-empty list of {expected}")
        out = []
        for item in value:
            try:
                out.append(item_check(item))
            except Invalid as exc:
                raise Invalid(f"{item!r} in the list: {exc}") from None
        return tuple(out)
    check.allowed = f"a list of {expected}"
    return check


def host_list(value):
    """[hosts] ROLE = ["user@host", ...]: --host strings, each once."""
    hosts = list_of(string, "--host strings")(value)
    for host in hosts:
        if not host.strip() or any(ch.isspace() or ch == "," for ch in host):
            raise Invalid(f"{host!r} in the list: expected a host like \"deploy@203.0.113.10\", "
                          f"an ssh-config name or sandbox-NAME (no spaces or commas)")
    repeated = sorted({h for h in hosts if hosts.count(h) > 1})
    if repeated:
        raise Invalid(f"{', '.join(repeated)} is listed twice")
    return hosts


host_list.allowed = 'a list of hosts ("user@host[:port]", an ssh-config name, sandbox-NAME)'


def ipv4_network(value):
    """[network] private: an IPv4 network in CIDR notation, a private range."""
    if not isinstance(value, str):
        raise Invalid('expected a network in quotes, like "10.78.0.0/16"')
    if value == "":
        return value
    try:
        network = ipaddress.IPv4Network(value)
    except ValueError as exc:
        raise Invalid(f'expected an IPv4 network like "10.78.0.0/16" ({exc})') from None
    if not network.is_private:
        raise Invalid(f"{value} is not a private network (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, ...): "
                      "the hosts' traffic to each other must not go over public addresses")
    return str(network)


ipv4_network.allowed = 'a private IPv4 network like "10.78.0.0/16", or ""'


def domain(value):
    """One server name nginx will answer for: a hostname, *.wildcard, an IP, or "_" (any)."""
    if not isinstance(value, str):
        raise Invalid("expected a domain name in quotes")
    if value == "_":
        return value
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    name = value[2:] if value.startswith("*.") else value
    labels = name.split(".")
    if (name != name.lower() or len(name) > 253 or len(labels) < 1
            or not all(DOMAIN_LABEL_RE.match(label) for label in labels)):
        raise Invalid('expected a lower-case domain name like "example.com" or "*.example.com", '
                       'an IP address, or "_" for any name')
    return value


def domains(value):
    domains = list_of(domain, "domain names", allow_empty=False)(value)
    if "_" in domains and len(domains) > 1:
        raise Invalid('"_" means "any name" and cannot be combined with other domains')
    return domains


def url_path(value):
    if isinstance(value, str) and value and not value.endswith("/"):
        value += "/"        # nginx alias needs the trailing slash on both sides; add it for the user
    return matching(URL_PATH_RE, 'a URL path starting and ending with "/", like "/static/"')(value)


def health_path(value):
    if not isinstance(value, str) or not value.startswith("/") or any(c.isspace() for c in value):
        raise Invalid('expected a URL path starting with "/", like "/healthz"')
    return value


SAFE_PATH_RE = re.compile(r"^[A-Za-z0-9._/-]+\Z")


def relative_path(value):
    # Only plain characters: these paths end up in nginx and systemd files unquoted.
    if (not isinstance(value, str) or not SAFE_PATH_RE.match(value) or value.startswith("/")
            or ".." in Path(value).parts):
        raise Invalid("expected a path relative to the app directory: letters, digits, '.', '_', '-', "
                       "'/', no leading / and no ..")
    return value


def absolute_path(value):
    if not isinstance(value, str) or (value and not value.startswith("/")):
        raise Invalid('expected an absolute path like "/usr/local/share/ca-certificates/corp.crt", '
                       'or "" for none')
    return value


def env_table(value):
    if not isinstance(value, dict):
        raise Invalid('expected a table of NAME = "value"')
    out = {}
    for name, item in value.items():
        if not ENV_NAME_RE.match(name):
            raise Invalid(f"{name!r} is not a valid environment variable name (letters, digits, _)")
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, (int, float)):
            item = str(item)
        if not isinstance(item, str) or "\n" in item or "\0" in item:
            raise Invalid(f"{name}: expected a one-line string, number or true/false")
        out[name] = item
    return out


def static_table(value):
    if not isinstance(value, dict):
        raise Invalid('expected a table of "/url/" = "dir", like "/static/" = "static"')
    out = {}
    for url, directory in value.items():
        try:
            out[url_path(url)] = relative_path(directory)
        except Invalid as exc:
            raise Invalid(f"{url!r}: {exc}") from None
    return out


def workers(value):
    if value == "auto":
        return value
    try:
        return int_range(1, 64)(value)
    except Invalid:
        raise Invalid('expected a whole number from 1 to 64, or "auto" (2 x CPUs + 1, at most 8)') from None


workers.allowed = '1..64 or "auto"'
string.allowed = "a string"
boolean.allowed = "true | false"
domain.allowed = "a domain name"
domains.allowed = 'a list of domain names (lower case, "*.x" wildcards, IPs) or ["_"]'
url_path.allowed = 'a URL path like "/media/"'
health_path.allowed = 'a URL path starting with "/"'
relative_path.allowed = "a path relative to the app directory"
absolute_path.allowed = 'an absolute path or ""'
env_table.allowed = 'a table of NAME = "value"'
static_table.allowed = 'a table of "/url/" = "dir"'
