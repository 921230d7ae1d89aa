"""The facts the host-hardening roles (roles/hardening/) read, in the same one gather as the rest.

`HardeningFact` prints a few small sections under `@@hardening.*`:

    virt      systemd-detect-virt -c: "none", or the container kind ("systemd-nspawn", "lxc", ...)
    cap       the bounding capability set (hex): can this host change netfilter and swap at all?
    mem       MemTotal / SwapTotal (kB) and the free space on / (kB)
    swapfile  /swapfile's mode, and whether fstab names it
    sshd      `sshd -T`: the ports sshd listens on, and its login settings in effect
    ufw       ufw's saved rules (readable whether ufw is active or not), policy and ENABLED=
    login     who the toolkit logs in as (sudo's SUDO_USER, else the user itself)
    time      which time daemons are installed (chrony, ntp, ntpsec, openntpd, systemd-timesyncd)

Provisioning's `HostFacts` (toolkit/facts/host.py) stays as it is; `HardenedHostFacts` adds
`.hardening` for the hardening roles, built from the same gathered `Facts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from toolkit.facts import Fact
from toolkit.facts.host import HostFacts

CAP_NET_ADMIN = 12  # linux/capability.h: netfilter (ufw, fail2ban's bans)
CAP_SYS_ADMIN = 21  # swapon
TIME_DAEMONS = ("chrony", "ntp", "ntpsec", "openntpd", "systemd-timesyncd")


@dataclass(frozen=True)
class UfwRule:
    """One saved ufw rule, as ufw's `### tuple ###` comment line writes it."""

    action: str  # allow, deny, limit, reject
    proto: str  # tcp, udp, any
    port: str  # "22", "80", "any"
    direction: str = "in"
    source: str = "any"  # an address or network the rule is limited to ("any": everyone)
    comment: str = ""  # `ufw ... comment TEXT`: whose rule it is (roles/postgres.py marks its own)


@dataclass
class HostHardening:
    """What the hardening roles know about a host (tests build it by hand)."""

    container: str = ""  # "" on a machine or VM, else the container kind
    capabilities: int = -1  # the bounding set; -1 = unknown (taken as everything)
    mem_kb: int = 0
    swap_kb: int = 0
    root_free_kb: int = 0
    swapfile_mode: int | None = None  # None: no /swapfile
    swapfile_in_fstab: bool = False
    sshd: dict = field(default_factory=dict)  # `sshd -T` key -> values (port may repeat)
    ufw_rules: tuple = ()  # UfwRule, IPv4 and IPv6 (each rule twice when both are on)
    ufw_default_input: str = ""  # DROP, REJECT, ACCEPT ("" = ufw not installed)
    ufw_enabled: bool = False
    login_user: str = ""
    time_daemons: tuple = ()  # installed ones, from TIME_DAEMONS

    def can(self, capability: int) -> bool:
        return self.capabilities < 0 or bool(self.capabilities >> capability & 1)

    @property
    def sshd_ports(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.sshd.get("port", ()) if p.isdigit())

    def sshd_setting(self, name: str) -> str:
        values = self.sshd.get(name.lower(), ())
        return values[0] if values else ""


class HardeningFact(Fact[HostHardening]):
    key = "hardening"

    def command(self) -> str:
        sshd_keys = "port|permitrootlogin|passwordauthentication|kbdinteractiveauthentication"
        return "\n".join((
            "systemd-detect-virt -c 2>/dev/null || true",
            "echo @@hardening.cap; sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status",
            "echo @@hardening.mem; grep -E '^(MemTotal|SwapTotal):' /proc/meminfo",
            "df -Pk / | awk 'NR==2 {print \"RootFree:\", $4}'",
            "echo @@hardening.swapfile; echo \"mode: $(stat -c %a /swapfile 2>/dev/null)\"",
            "echo \"fstab: $(grep -c '^/swapfile[[:space:]]' /etc/fstab 2>/dev/null)\"",
            f"echo @@hardening.sshd; sshd -T 2>/dev/null | grep -Ei '^({sshd_keys}) '",
            "echo @@hardening.ufw; cat /etc/ufw/user.rules /etc/ufw/user6.rules 2>/dev/null | grep '^### tuple ###'",
            "grep -h -E '^(DEFAULT_INPUT_POLICY|ENABLED)=' /etc/default/ufw /etc/ufw/ufw.conf 2>/dev/null",
            'echo @@hardening.login; echo "${SUDO_USER:-$(id -un)}"',
            "echo @@hardening.time; dpkg-query -W -f='${Package} ${db:Status-Status}\\n' "
            + " ".join(TIME_DAEMONS) + " 2>/dev/null | sed -n 's/ installed$//p'",
        ))

    def parse_sections(self, sections) -> HostHardening:
        first = (sections.get("hardening") or [""])[0].strip()
        mem = _colon_values(sections.get("hardening.mem", []))
        swapfile = _colon_values(sections.get("hardening.swapfile", []))
        ufw = parse_ufw(sections.get("hardening.ufw", []))
        cap = (sections.get("hardening.cap") or [""])[0].strip()
        return HostHardening(
            container="" if first in ("", "none") else first,
            capabilities=int(cap, 16) if cap and all(ch in "0123456789abcdefABCDEF" for ch in cap) else -1,
            mem_kb=_kb(mem.get("MemTotal")), swap_kb=_kb(mem.get("SwapTotal")),
            root_free_kb=_kb(mem.get("RootFree")),
            swapfile_mode=int(swapfile["mode"], 8) if swapfile.get("mode", "").isdigit() else None,
            swapfile_in_fstab=_kb(swapfile.get("fstab")) > 0,
            sshd=parse_sshd(sections.get("hardening.sshd", [])),
            ufw_rules=ufw[0], ufw_default_input=ufw[1], ufw_enabled=ufw[2],
            login_user=(sections.get("hardening.login") or [""])[0].strip(),
            time_daemons=tuple(line.strip() for line in sections.get("hardening.time", []) if line.strip()),
        )


def _colon_values(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        name, _, rest = line.partition(":")
        out[name.strip()] = rest.split()[0] if rest.split() else ""
    return out


def _kb(text: str | None) -> int:
    return int(text) if text and text.isdigit() else 0


def parse_sshd(lines) -> dict[str, tuple[str, ...]]:
    """`sshd -T` lines -> {key: values}: `port` may be listed once per port."""
    out: dict[str, tuple[str, ...]] = {}
    for line in lines:
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0].lower()] = out.get(parts[0].lower(), ()) + (parts[1],)
    return out


def parse_ufw(lines) -> tuple[tuple[UfwRule, ...], str, bool]:
    """(rules, default input policy, enabled) from user*.rules tuples and the two settings files.

    A tuple line: `### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in` (action, protocol,
    destination port, destination, source port, source, direction), then `comment=HEX` for a
    rule added with a comment (ufw stores it hex-encoded)."""
    rules, policy, enabled = [], "", False
    for line in lines:
        line = line.strip()
        if line.startswith("### tuple ###"):
            parts = line[len("### tuple ###"):].split()
            if len(parts) >= 7:
                source = "any" if parts[5] in ("0.0.0.0/0", "::/0") else parts[5]
                comment = next((p[len("comment="):] for p in parts[7:] if p.startswith("comment=")), "")
                try:
                    comment = bytes.fromhex(comment).decode("utf-8", "replace")
                except ValueError:
                    pass
                rules.append(UfwRule(parts[0], parts[1], parts[2], parts[6], source, comment))
        elif line.startswith("DEFAULT_INPUT_POLICY="):
            policy = line.split("=", 1)[1].strip('"')
        elif line.startswith("ENABLED="):
            enabled = line.split("=", 1)[1].strip('"').lower() == "yes"
    return tuple(rules), policy, enabled


@dataclass
class HardenedHostFacts(HostFacts):
    """HostFacts and what the hardening roles read (`.hardening`)."""

    hardening: HostHardening = field(default_factory=HostHardening)

    @classmethod
    def of(cls, facts) -> "HardenedHostFacts":
        base = HostFacts.of(facts)
        values = {f.name: getattr(base, f.name) for f in fields(HostFacts)}
        return cls(**values, hardening=facts.get(HardeningFact, HostHardening()))
