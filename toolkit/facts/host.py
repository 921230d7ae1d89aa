"""The facts provisioning reads: each one command (a line or two) and its parser."""

from __future__ import annotations

from dataclasses import dataclass, field

from toolkit.facts import Fact
from toolkit import lock
from toolkit.onhost import envfile
from toolkit.remote import q


def _first(lines: list[str]) -> str:
    return lines[0].strip() if lines else ""


def _int(text: str) -> int:
    text = text.strip().split(".")[0]
    return int(text) if text.isdigit() else 0


class OsRelease(Fact[tuple]):
    """(ID, VERSION_ID) from /etc/os-release, e.g. ("debian", "12")."""

    key = "os"

    def command(self):
        return '. /etc/os-release 2>/dev/null; echo "$ID $VERSION_ID"'

    def parse(self, lines):
        return tuple((_first(lines).split() + ["", ""])[:2])


@dataclass(frozen=True)
class AptListsAge:
    now: int = 0  # the host's clock
    mtime: int = 0  # newest apt package list; 0 = never fetched


class AptLists(Fact[AptListsAge]):
    """How old the apt package lists are (the host's clock, and the newest list's mtime)."""

    key = "apt"

    def command(self):
        return ("date +%s; find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -printf '%T@\\n' "
                "2>/dev/null | sort -n | tail -1")

    def parse(self, lines):
        return AptListsAge(_int(lines[0]) if lines else 0, _int(lines[1]) if len(lines) > 1 else 0)


class Packages(Fact[set]):
    """Which of the given deb packages are installed."""

    key = "pkgs"

    def __init__(self, packages):
        self.packages = tuple(packages)

    def command(self):
        return ("dpkg-query -W -f='${Package} ${db:Status-Status}\\n' "
                + " ".join(q(p) for p in self.packages) + " 2>/dev/null")

    def parse(self, lines):
        return {p[0] for p in (line.split() for line in lines) if len(p) == 2 and p[1] == "installed"}


class Users(Fact[dict]):
    """{user: its 7 passwd fields} for the given users that exist."""

    key = "passwd"

    def __init__(self, names):
        self.names = tuple(names)

    def command(self):
        return "getent passwd " + " ".join(q(n) for n in self.names)

    def parse(self, lines):
        return {f[0]: f for f in (line.split(":") for line in lines) if len(f) == 7}


class Groups(Fact[set]):
    """Which of the given groups exist."""

    key = "group"

    def __init__(self, names):
        self.names = tuple(names)

    def command(self):
        return "getent group " + " ".join(q(n) for n in self.names) + " | cut -d: -f1"

    def parse(self, lines):
        return {g.strip() for g in lines if g.strip()}


@dataclass(frozen=True)
class UnitState:
    enabled: str = ""  # systemctl is-enabled: enabled, disabled, static, ... ("" = no such unit)
    active: str = ""  # systemctl is-active: active, inactive, failed, ...


class Units(Fact[dict]):
    """{unit: UnitState} for the given systemd units."""

    key = "units"

    def __init__(self, units):
        self.units = tuple(units)

    def command(self):
        units = " ".join(q(u) for u in self.units)
        return (f"for u in {units}; do e=$(systemctl is-enabled $u 2>/dev/null); "
                'a=$(systemctl is-active $u 2>/dev/null); echo "$u ${e:--} ${a:--}"; done')

    def parse(self, lines):
        states = {}
        for line in lines:
            parts = line.split()
            if len(parts) == 3:
                states[parts[0]] = UnitState(*("" if p == "-" else p for p in parts[1:]))
        return states


class HostEnv(dict):
    """shared/.env's {KEY: value}, and `local_names`: the names set on the host with `invoke
    env.set` (shared/.env.local, which the units read after .env; its values are not read)."""

    local_names: frozenset = frozenset()


class EnvFile(Fact[dict]):
    """The app's current shared/.env as a HostEnv (read with the one .env reader), with the
    names of shared/.env.local (under `@@env.local`): a secret set there satisfies deploy.toml's
    [app] secrets."""

    key = "env"

    def __init__(self, path):
        self.path = str(path)

    def command(self):
        local = q(self.path + ".local")
        return (f"cat {q(self.path)} 2>/dev/null; echo @@{self.key}.local; "
                f"sed -n 's/^[[:space:]]*\\(export[[:space:]]\\+\\)\\?\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\2/p' "
                f"{local} 2>/dev/null; true")

    def parse(self, lines):
        return HostEnv(envfile.parse("\n".join(lines)))

    def parse_sections(self, sections):
        env = self.parse(sections.get(self.key, []))
        env.local_names = frozenset(n.strip() for n in sections.get(self.key + ".local", []) if n.strip())
        return env


class PythonVersion(Fact[str]):
    """The host's python3 as "3.11.2" ("" when there is none)."""

    key = "python"

    def __init__(self, python: str = "python3"):
        self.python = python

    def command(self):
        return f"{q(self.python)} -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])' 2>/dev/null"

    def parse(self, lines):
        return _first(lines)


class DeployLock(Fact[str]):
    """Who holds the deploy lock ("" when nobody does), read as toolkit/lock reads it."""

    key = "lock"

    def __init__(self, layout):
        self.layout = layout

    def command(self):
        return lock.show_script(self.layout, self.key + ".held")

    def parse_sections(self, sections):
        held = sections.get(self.key + ".held")
        return lock.holder_of(held).text if held is not None else ""


# -- the typed view provisioning's plans read -------------------------------------------------

@dataclass
class HostFacts:
    """Everything provisioning knows about a host, as plain data (tests build it by hand)."""

    os_id: str = ""
    os_version: str = ""
    apt: AptListsAge = AptListsAge()
    installed: set = field(default_factory=set)
    passwd: dict = field(default_factory=dict)  # user -> its 7 passwd fields
    groups: set = field(default_factory=set)
    files: dict = field(default_factory=dict)  # path -> FileFact
    units: dict = field(default_factory=dict)  # unit -> UnitState
    python_version: str = ""
    env: dict = field(default_factory=dict)  # the app's current shared/.env (a HostEnv)
    locked_by: str = ""  # who holds the deploy lock, if anyone

    def fact(self, path: str):
        from toolkit.facts.files import FileFact

        return self.files.get(str(path)) or FileFact(str(path), exists=False)

    def unit(self, name: str) -> UnitState:
        return self.units.get(name) or UnitState()

    @classmethod
    def of(cls, facts) -> "HostFacts":
        """From a `Facts` gathered with (some of) the facts of this module and files.py."""
        os_id, os_version = facts.get(OsRelease, ("", ""))
        return cls(os_id=os_id, os_version=os_version, apt=facts.get(AptLists, AptListsAge()),
                   installed=facts.get(Packages, set()), passwd=facts.get(Users, {}),
                   groups=facts.get(Groups, set()), files=facts.get("files", {}), units=facts.get(Units, {}),
                   python_version=facts.get(PythonVersion, ""), env=facts.get(EnvFile, {}),
                   locked_by=facts.get(DeployLock, ""))
