"""The app's env file (shared/.env): one reader and one writer, used by the renderer, by the
facts read from a host, and on the host itself to run commands in the app's environment.

The file is read by systemd (`EnvironmentFile=`) and by the toolkit, so it is written in the
subset both read the same way: `KEY='value'` (single quotes: no escapes inside), or, for a value
with a single quote, `KEY="value"` with \\, ", $ and ` escaped. Reading also accepts what people
write in a local .env: comments (# or ;), blank lines, `export KEY=...`, unquoted values.
"""

from __future__ import annotations

import re

_ESCAPED = re.compile(r"\\(.)")


def quote(value: str) -> str:
    """`value` quoted for a line KEY=<here> that systemd and sh both read back unchanged."""
    if "'" not in value:
        return f"'{value}'"
    return '"' + "".join("\\" + c if c in '\\"$`' else c for c in value) + '"'


def line(name: str, value: str) -> str:
    return f"{name}={quote(value)}"


def parse(text: str) -> dict[str, str]:
    """KEY=VALUE lines -> {KEY: VALUE}; a later line wins, as in systemd."""
    values = {}
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped[0] in "#;" or "=" not in stripped:
            continue
        name, _, value = stripped.partition("=")
        name = name.strip()
        if name.startswith("export "):
            name = name[len("export "):].strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = _ESCAPED.sub(r"\1", value[1:-1])
        values[name] = value
    return values


def read(path) -> dict[str, str]:
    """The values in the file at `path`; {} when it does not exist."""
    try:
        with open(path, encoding="utf-8") as fh:
            return parse(fh.read())
    except FileNotFoundError:
        return {}
