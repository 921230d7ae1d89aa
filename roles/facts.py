"""Reading the host's state for every role in ONE ssh round trip.

Each role can gather its own facts, but provisioning gathers them all up front with `gather()`
and passes the result to each role: a second `provision` then costs one command to read and
nothing to write.

The remote script prints sections (`@@name` then its lines); `parse()` turns them back into a
`HostFacts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from toolkit.onhost import envfile
from toolkit.remote import FileFact, file_facts_script, parse_file_facts, q, sh, split_sections

# Packages every app host needs. python3-venv brings ensurepip, so each venv gets its own pip.
BASE_PACKAGES = ("python3", "python3-venv", "nginx", "ca-certificates", "tar", "gzip")


@dataclass
class HostFacts:
    os_id: str = ""
    os_version: str = ""
    now: int = 0
    apt_lists_mtime: int = 0  # newest apt package list; 0 = never updated
    installed: set[str] = field(default_factory=set)
    passwd: dict[str, list[str]] = field(default_factory=dict)  # user -> passwd fields
    groups: set[str] = field(default_factory=set)
    files: dict[str, FileFact] = field(default_factory=dict)
    unit_enabled: dict[str, str] = field(default_factory=dict)
    unit_active: dict[str, str] = field(default_factory=dict)
    python_version: str = ""
    env: dict[str, str] = field(default_factory=dict)  # the app's current shared/.env
    locked_by: str = ""  # who holds the deploy lock (/srv/APP/.deploy-lock/who), if anyone

    def fact(self, path: str) -> FileFact:
        return self.files.get(str(path)) or FileFact(str(path), exists=False)


def _section(name: str, body: str) -> str:
    return f"echo @@{name}\n{body}\n"


def facts_script(cfg, paths=(), packages=BASE_PACKAGES, units=(), env_file="") -> str:
    """The shell script that prints every fact the roles need."""
    name = q(cfg.name)
    unit_list = " ".join(q(u) for u in units)
    parts = [
        "export LC_ALL=C",
        _section("os", ". /etc/os-release 2>/dev/null; echo \"$ID $VERSION_ID\""),
        _section("now", "date +%s"),
        _section("apt", "find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -printf '%T@\\n' "
                        "2>/dev/null | sort -n | tail -1"),
        _section("pkgs", "dpkg-query -W -f='${Package} ${db:Status-Status}\\n' "
                         + " ".join(q(p) for p in packages) + " 2>/dev/null"),
        _section("passwd", f"getent passwd {name}"),
        _section("group", f"getent group {name} | cut -d: -f1"),
        _section("lock", f"[ -d {q(cfg.layout.base_dir)}/.deploy-lock ] && "
                         f"{{ cat {q(cfg.layout.base_dir)}/.deploy-lock/who 2>/dev/null || echo '(no details)'; }}; true"),
        _section("python", "python3 -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])' "
                           "2>/dev/null"),
    ]
    if env_file:
        parts.append(_section("env", f"cat {q(env_file)} 2>/dev/null; true"))
    if units:
        parts.append(_section("enabled", f"for u in {unit_list}; do "
                              "echo \"$u $(systemctl is-enabled $u 2>/dev/null)\"; done"))
        parts.append(_section("active", f"for u in {unit_list}; do "
                              "echo \"$u $(systemctl is-active $u 2>/dev/null)\"; done"))
    if paths:
        parts.append(_section("files", file_facts_script(paths)))
    return "\n".join(parts)


def parse(stdout: str) -> HostFacts:
    sections = split_sections(stdout)
    f = HostFacts()
    os_line = (sections.get("os") or [""])[0].split()
    f.os_id, f.os_version = (os_line + ["", ""])[:2]
    f.now = _int((sections.get("now") or ["0"])[0])
    f.apt_lists_mtime = _int((sections.get("apt") or ["0"])[0].split(".")[0])
    for line in sections.get("pkgs", []):
        parts = line.split()
        if len(parts) == 2 and parts[1] == "installed":
            f.installed.add(parts[0])
    for line in sections.get("passwd", []):
        fields = line.split(":")
        if len(fields) == 7:
            f.passwd[fields[0]] = fields
    f.groups = {g.strip() for g in sections.get("group", []) if g.strip()}
    f.python_version = (sections.get("python") or [""])[0].strip()
    f.locked_by = " ".join(line.strip() for line in sections.get("lock", []) if line.strip())
    for key, target in (("enabled", f.unit_enabled), ("active", f.unit_active)):
        for line in sections.get(key, []):
            unit, _, state = line.partition(" ")
            target[unit] = state.strip()
    f.files = parse_file_facts("\n".join(sections.get("files", [])))
    f.env = envfile.parse("\n".join(sections.get("env", [])))
    return f


def _int(text: str) -> int:
    text = text.strip()
    return int(text) if text.isdigit() else 0


def gather(c, cfg, paths=(), packages=BASE_PACKAGES, units=(), env_file="") -> HostFacts:
    """Every fact in one round trip."""
    result = sh(c, facts_script(cfg, [str(p) for p in paths], packages, units, env_file),
                what="reading the host's state")
    return parse(result.stdout)


def units_of(cfg) -> tuple[str, str]:
    return (f"{cfg.name}.socket", f"{cfg.name}.service")
