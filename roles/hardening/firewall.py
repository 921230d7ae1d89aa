"""ufw: incoming connections denied except ssh, http, https (and [hardening] firewall_allow).

The deploy connection is never cut: every port sshd listens on (`sshd -T`) and the port the
toolkit connected to are allowed BEFORE the default policy turns to deny and before ufw is
enabled (enabling keeps established connections, ours included). Rules someone added by hand
are kept.

Inside a container without CAP_NET_ADMIN (a sandbox host: systemd-nspawn) netfilter cannot be
changed: the rules and the policy are saved (`ufw show added` lists them) but ufw is not
enabled, and the step says so.
"""

from __future__ import annotations

from toolkit.executor import Change
from toolkit.facts.hardening import CAP_NET_ADMIN
from toolkit.remote import q

STEP = "firewall (ufw)"
SWITCH = "firewall"
PATHS = ()
UNITS = ()
WEB = ("80/tcp", "443/tcp")


def packages(hardening) -> tuple[str, ...]:
    return ("ufw",)


def ssh_rules(facts, wanted) -> list[str]:
    ports = sorted({wanted.ssh_port, *facts.hardening.sshd_ports} - {0})
    return [f"{port}/tcp" for port in ports]


def wanted_rules(facts, wanted) -> list[str]:
    """ssh first: the order the rules are added in."""
    rules = ssh_rules(facts, wanted) + list(WEB) + list(wanted.hardening.firewall_allow)
    return list(dict.fromkeys(rules))


def allowed(facts) -> set[str]:
    """"PORT/PROTO" of every saved rule letting connections in (allow or limit)."""
    return {f"{r.port}/{r.proto}" for r in facts.hardening.ufw_rules
            if r.action in ("allow", "limit") and r.direction == "in"}


def can_enable(facts) -> bool:
    return facts.hardening.can(CAP_NET_ADMIN)


def plan(facts, wanted) -> list:
    """Allow what is missing (ssh first), deny the rest by default, then enable ufw."""
    hard = facts.hardening
    missing = [rule for rule in wanted_rules(facts, wanted) if rule not in allowed(facts)]
    script = [f"ufw allow {q(rule)} >/dev/null" for rule in missing]
    notes = [f"allow {', '.join(missing)}"] if missing else []
    if hard.ufw_default_input != "DROP":
        script.append("ufw default deny incoming >/dev/null")
        notes.append("deny other incoming")
    if not hard.ufw_enabled and can_enable(facts):
        script.append("ufw --force enable >/dev/null")
        notes.append("enabled")
    if not script:
        return []
    return [Change(", ".join(notes), script=" && ".join(script), label="configuring ufw")]


def notes(facts, wanted) -> list[str]:
    if can_enable(facts):
        return []
    where = facts.hardening.container or "this host"
    return [f"ufw not enabled: {where} may not change netfilter (no CAP_NET_ADMIN); "
            "its rules are saved (ufw show added)"]
