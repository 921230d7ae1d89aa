"""Facts: what a host looks like, each read by one small object that pairs the command reading it
with the parser of its output, side by side (pyinfra's facts/*.py are the model).

    class PythonVersion(Fact[str]):
        key = "python"
        def command(self):
            return "python3 -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])' 2>/dev/null"
        def parse(self, lines):
            return lines[0].strip() if lines else ""

`gather(c, [PythonVersion(), Packages(("nginx",)), ...])` runs every fact's command in ONE ssh
round trip (each under its own `@@key` heading, in its own subshell, so an `exit` in one stops
only that one) and returns a `Facts`: `facts[PythonVersion]` is the parsed value, typed by the
fact's `Fact[T]`. A fact whose output has parts of its own prints them under `@@key.part`
headings and overrides `parse_sections`.

The facts provisioning reads are in toolkit/facts/host.py and files.py; other readers (the
releases) add their own Fact classes next to their code and pass them to the same gather.
"""

from __future__ import annotations

from typing import ClassVar, Generic, Iterable, TypeVar

from toolkit.remote import sh, split_sections

T = TypeVar("T")

END = "end"  # the last heading: its presence says the whole script ran


class Fact(Generic[T]):
    """One thing to know about a host: `command()` prints it, `parse(lines)` reads it back.

    Subclasses set `key` (the section heading, unique within one gather) and keep the command
    to a line or two: a longer program belongs in a file shipped to the host."""

    key: ClassVar[str] = ""

    def command(self) -> str:
        raise NotImplementedError

    def parse(self, lines: list[str]) -> T:
        raise NotImplementedError

    def parse_sections(self, sections: dict[str, list[str]]) -> T:
        """Called with every section headed `key` or `key.PART`; by default parse the first."""
        return self.parse(sections.get(self.key, []))


class Facts:
    """What one gather read: `facts[FactClass]` (or `facts["key"]`) is that fact's parsed value."""

    def __init__(self, values: dict[str, object] | None = None):
        self.values = dict(values or {})

    def __getitem__(self, fact: type[Fact[T]] | str) -> T:
        return self.values[fact if isinstance(fact, str) else fact.key]  # type: ignore[return-value]

    def get(self, fact: type[Fact[T]] | str, default=None):
        return self.values.get(fact if isinstance(fact, str) else fact.key, default)

    def __contains__(self, fact) -> bool:
        return (fact if isinstance(fact, str) else fact.key) in self.values


def script(facts: Iterable[Fact]) -> str:
    """The one shell script that prints every fact, each under its heading."""
    parts = ["export LC_ALL=C"]
    for fact in facts:
        parts.append(f"echo @@{fact.key}; ( {fact.command()}\n)")
    parts.append(f"echo @@{END}")
    return "\n".join(parts)


def parse(facts: Iterable[Fact], stdout: str) -> Facts:
    """The output of `script(facts)` -> Facts."""
    sections = split_sections(stdout)
    values = {}
    for fact in facts:
        own = {name: lines for name, lines in sections.items()
               if name == fact.key or name.startswith(fact.key + ".")}
        values[fact.key] = fact.parse_sections(own)
    return Facts(values)


def check_keys(facts: list[Fact]) -> None:
    keys = [f.key for f in facts]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated or not all(keys):
        raise ValueError(f"each fact in one gather needs its own key (repeated: {repeated})")


def gather(c, facts: Iterable[Fact], what: str = "reading the host's state") -> Facts:
    """Every fact in one ssh round trip (as root)."""
    facts = list(facts)
    check_keys(facts)
    result = sh(c, script(facts), what=what)
    return parse(facts, result.stdout)
