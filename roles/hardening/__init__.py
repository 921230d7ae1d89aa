"""Host hardening (deploy.toml [hardening], every part on unless turned off there).

One small role per part, each `plan(facts, wanted) -> [Change]` like every role, plus
`notes(facts, wanted) -> [str]`: what was skipped and why (a container cannot enable a
firewall or swap, a password login keeps passwords on). Provisioning runs them in this order:

    sshd.py       keys only; root logs in with a key only, or not at all once the toolkit
                  connects as a deploy user with sudo; a drop-in checked by `sshd -t`
    firewall.py   ufw: the ssh ports first, then http, https; default deny incoming; enable
    fail2ban.py   the sshd jail (systemd journal backend), banning through ufw
    upgrades.py   unattended-upgrades: security origins only, daily, no reboots
    timesync.py   systemd-timesyncd, or the time daemon the host already has
    swap.py       /swapfile on hosts with < 2 GiB of memory and no swap

Their packages install in the base packages' one apt-get call (`packages()`: Wanted.all_packages).
The files they write are rendered here from templates/ next to this file (mirroring their
targets): they depend on the host's facts (the ports sshd listens on, the login user, the OS),
which the app's renderer (toolkit/render.py) never sees. The facts: toolkit/facts/hardening.py.
"""

from __future__ import annotations

from roles.hardening import fail2ban, firewall, sshd, swap, timesync, upgrades

PARTS = (sshd, firewall, fail2ban, upgrades, timesync, swap)


def enabled(hardening) -> list:
    """The parts deploy.toml [hardening] leaves on, in order."""
    return [part for part in PARTS if hardening and getattr(hardening, part.SWITCH)]


def packages(hardening) -> tuple[str, ...]:
    """Every package the enabled parts need (installed with the base packages)."""
    return tuple(p for part in enabled(hardening) for p in part.packages(hardening))


def fact_paths() -> list[str]:
    """The files the parts write (their hashes are read with the other files)."""
    return [path for part in PARTS for path in part.PATHS]


def units() -> tuple[str, ...]:
    return tuple(u for part in PARTS for u in part.UNITS)


def for_host(wanted, facts, port: int, user: str, method: str):
    """`wanted` with how the toolkit is logged in (port, user, paramiko's auth method) and without
    the packages this host must not get (timesyncd where another time daemon runs)."""
    from dataclasses import replace

    drop = timesync.drop_packages(facts)
    return replace(wanted, ssh_port=port, login_user=user, login_method=method, drop_packages=drop)
