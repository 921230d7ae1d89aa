"""ufw: incoming connections denied except ssh, http, https (and [hardening] firewall_allow).

An app host behind a load balancer (deploy.toml [hosts] lb; `wanted.web_from`, toolkit/fleet.py)
lets http in from the load balancers' addresses only, and an earlier rule open to everyone
(the host served the site itself before) is deleted. A host of [hosts] that is neither an app
host nor a load balancer (a worker, the database) lets no web port in, and deletes those open
rules the same way.

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


def serves_web(wanted) -> bool:
    """Whether anyone outside the host may reach its nginx: a single host, an app host or a load
    balancer. A worker or database host of [hosts] (no "app", no "lb") serves no site: its
    nginx, if any, listens on loopback only (toolkit/fleet.py)."""
    roles = getattr(wanted, "roles", None)
    return roles is None or bool({"app", "lb"} & set(roles))


def web_rules(wanted) -> list[str]:
    """http and https from everyone; behind a load balancer, http from its addresses only; on a
    host that serves no site, none."""
    if not serves_web(wanted):
        return []
    sources = getattr(wanted, "web_from", ())
    if not sources:
        return list(WEB)
    return [f"80/tcp from {source}" for source in sources]


def wanted_rules(facts, wanted) -> list[str]:
    """ssh first: the order the rules are added in. "PORT/PROTO" or "PORT/PROTO from SOURCE"."""
    rules = ssh_rules(facts, wanted) + web_rules(wanted) + list(wanted.hardening.firewall_allow)
    return list(dict.fromkeys(rules))


def allowed(facts) -> set[str]:
    """Every saved rule letting connections in (allow or limit), as wanted_rules spells them."""
    return {f"{r.port}/{r.proto}" + ("" if r.source == "any" else f" from {r.source}")
            for r in facts.hardening.ufw_rules if r.action in ("allow", "limit") and r.direction == "in"}


def ufw_allow(rule: str) -> str:
    port_proto, _, source = rule.partition(" from ")
    if not source:
        return f"ufw allow {q(port_proto)} >/dev/null"
    port, _, proto = port_proto.partition("/")
    return f"ufw allow from {q(source)} to any port {q(port)} proto {q(proto)} >/dev/null"


def open_web_to_close(facts, wanted) -> list[str]:
    """Web ports open to everyone on a host that only the load balancers may reach, or that
    serves no site (a worker host that was an app host, or a single host, before)."""
    if serves_web(wanted) and not getattr(wanted, "web_from", ()):
        return []
    keep = set(ssh_rules(facts, wanted)) | set(wanted.hardening.firewall_allow)
    return [rule for rule in WEB if rule in allowed(facts) and rule not in keep]


def can_enable(facts) -> bool:
    return facts.hardening.can(CAP_NET_ADMIN)


def plan(facts, wanted) -> list:
    """Allow what is missing (ssh first), deny the rest by default, then enable ufw."""
    hard = facts.hardening
    missing = [rule for rule in wanted_rules(facts, wanted) if rule not in allowed(facts)]
    script = [ufw_allow(rule) for rule in missing]
    notes = [f"allow {', '.join(missing)}"] if missing else []
    closing = open_web_to_close(facts, wanted)
    script += [f"ufw delete allow {q(rule)} >/dev/null" for rule in closing]
    if closing:
        notes.append(f"closed {', '.join(closing)} " + ("to everyone else" if serves_web(wanted) else
                                                         "(this host serves no site)"))
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
