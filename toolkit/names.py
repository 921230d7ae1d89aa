"""Names: the one rule for an app or sandbox name, and the "did you mean" helper of every error
that names a setting, a task or a release."""

from __future__ import annotations

import difflib
import re

# An app name becomes a system user, systemd units and /srv/NAME; a sandbox name becomes a
# network namespace and an ssh alias: lowercase, a letter first, at most 31 characters
# (useradd's limit is 32). \Z, not $: `$` would let a trailing newline through.
NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,30}\Z")


def valid_name(text: str) -> bool:
    return bool(NAME_RE.match(text))


def did_you_mean(word: str, candidates) -> str:
    """` (did you mean 'x'?)` for the closest candidate, or "" when none is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
