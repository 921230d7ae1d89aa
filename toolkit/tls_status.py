"""What `invoke status` says about the site's certificate ([tls]): when it expires, how many
days are left, and a warning with the next step when fewer than WARN_DAYS are.

certbot renews a Let's Encrypt certificate 30 days before it expires and provisioning makes a
self-signed one again at 30 days, so a certificate under WARN_DAYS means renewal has not been
happening (or, for mode = "files", a new certificate is due from its owner).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from roles import tls
from toolkit.errors import next_task

WARN_DAYS = 14
NOT_AFTER_FORMAT = "%b %d %H:%M:%S %Y %Z"  # openssl's notAfter: "Dec  2 02:44:58 2027 GMT"


@dataclass(frozen=True)
class CertLine:
    text: str
    warning: bool = False
    next_step: str = ""


def not_after(text: str) -> datetime | None:
    try:
        return datetime.strptime(" ".join(text.split()), NOT_AFTER_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def describe(cfg, certs: dict, now: datetime) -> list[CertLine]:
    """The status lines of the app's certificate. `certs`: the Certificates fact for
    `tls.cert_paths(cfg)`; nothing when [tls] is off."""
    if not tls.enabled(cfg):
        return []
    path = tls.served_cert(cfg)
    fact = certs.get(path)
    mode = cfg.tls.mode
    if fact is None or not fact.exists:
        if mode == "letsencrypt":
            return [CertLine("certificate: not issued yet (the site serves http)", True, next_task("tls.renew"))]
        return [CertLine(f"certificate: missing ({path})", True, next_task("provision"))]
    ends = not_after(fact.not_after)
    if ends is None:
        return [CertLine(f"certificate: expires {fact.not_after} ({path})")]
    left = (ends - now).days
    when = f"expires {ends:%Y-%m-%d %H:%M} UTC, " + (f"{left} days left" if left >= 0 else "EXPIRED")
    text = f"certificate ({mode}): {when}"
    if left >= WARN_DAYS:
        return [CertLine(text)]
    fix = {"letsencrypt": ("certbot's timer has not renewed it (journalctl -u certbot.service on the host says "
                           "why)", next_task("tls.renew")),
           "files": ("put a new certificate and key at [tls] cert and key", next_task("deploy")),
           "self-signed": ("provisioning makes it again", next_task("provision"))}[mode]
    return [CertLine(f"{text} - WARNING: under {WARN_DAYS} days; {fix[0]}", True, fix[1])]


def show(conn, cfg, rep, host: str, app: str) -> None:
    """Read the certificate on the host and print its lines (`invoke status`)."""
    from toolkit.errors import fill_next
    from toolkit.facts import gather
    from toolkit.facts.tls import Certificates

    if not tls.enabled(cfg):
        return
    certs = gather(conn, [Certificates([tls.served_cert(cfg)])], what="reading the certificate")[Certificates]
    for line in describe(cfg, certs, datetime.now(timezone.utc)):
        rep.line(f"  {line.text}")
        if line.next_step:
            rep.line(f"    next: {fill_next(line.next_step, host, app)}")
