"""fail2ban's sshd jail: an address that keeps failing to log in over ssh is banned for a while.

The jail reads sshd's messages from the systemd journal (`backend = systemd`, python3-systemd):
Debian 12 and later have no /var/log/auth.log unless rsyslog is installed, and Debian's stock
jail then keeps fail2ban from starting. It watches every port sshd listens on and bans through
ufw when the firewall part is on (else fail2ban's iptables action). fail2ban's own config test
(`fail2ban-client -t`) runs before the restart.
"""

from __future__ import annotations

from roles.files import differing
from roles.hardening.firewall import ssh_rules
from roles.hardening.render import render
from toolkit.executor import Change
from toolkit.facts.hardening import CAP_NET_ADMIN

STEP = "fail2ban (sshd jail)"
SWITCH = "fail2ban"
JAIL = "/etc/fail2ban/jail.d/pronghorn-sshd.local"
PATHS = (JAIL,)
UNIT = "fail2ban.service"
UNITS = (UNIT,)


def packages(hardening) -> tuple[str, ...]:
    return ("fail2ban", "python3-systemd") + (() if hardening.firewall else ("iptables",))


def jail(facts, wanted):
    ports = ",".join(rule.split("/")[0] for rule in ssh_rules(facts, wanted))
    return render(JAIL, ports=ports, banaction="ufw" if wanted.hardening.firewall else "")


def plan(facts, wanted) -> list:
    """Write the jail when it differs; (re)start fail2ban when it changed or is not running."""
    todo = differing(facts, [jail(facts, wanted)])
    running = facts.unit(UNIT).active == "active"
    if not todo and running and facts.unit(UNIT).enabled == "enabled":
        return []
    parts = ["pronghorn-sshd.local"] if todo else []
    parts += ["started fail2ban"] if not running else ([] if todo else ["enabled fail2ban"])
    script = "fail2ban-client -t >/dev/null && systemctl enable --quiet fail2ban && systemctl restart fail2ban"
    return [Change(", ".join(parts), todo[0][1] if todo else "", files=tuple(f for f, _ in todo),
                   script=script, label="starting fail2ban")]


def notes(facts, wanted) -> list[str]:
    if wanted.hardening.firewall and not facts.hardening.can(CAP_NET_ADMIN):
        return ["bans cannot take effect while ufw is not enabled (see the firewall step)"]
    return []
