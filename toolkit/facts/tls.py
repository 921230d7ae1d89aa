"""The certificates fact: for each certificate path on the host, its expiry, whether it expires
within RENEW_DAYS, whether it is self-signed and the names it is for (roles/tls.py decides from
these whether a self-signed certificate must be made again; `invoke status` can show the expiry).
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.facts import Fact
from toolkit.remote import q

RENEW_DAYS = 30


@dataclass(frozen=True)
class CertFact:
    path: str
    exists: bool
    not_after: str = ""          # openssl's notAfter, e.g. "Dec  2 02:44:58 2027 GMT"
    expiring: bool = False       # expires within RENEW_DAYS (or already has)
    self_signed: bool = False
    names: tuple[str, ...] = ()  # subjectAltName entries as openssl prints them: "DNS:x", "IP Address:y"


class Certificates(Fact[dict]):
    """{path: CertFact}; a path that is missing or not a readable PEM certificate: exists=False."""

    key = "tls.certs"

    def __init__(self, paths):
        self.paths = list(dict.fromkeys(str(p) for p in paths))

    def command(self) -> str:
        # Under a `== PATH` line, openssl's issuer=, subject=, notAfter=, the SAN lines and
        # -checkend's "Certificate will (not) expire"; nothing for a missing or unreadable file.
        return (f"for p in {' '.join(q(p) for p in self.paths)}; do echo \"== $p\"; openssl x509 -noout -in \"$p\" "
                f"-nameopt RFC2253 -issuer -subject -enddate -ext subjectAltName -checkend {RENEW_DAYS * 86400} "
                "2>/dev/null; done; true")

    def parse(self, lines) -> dict:
        blocks: dict[str, list[str]] = {}
        for line in lines:
            if line.startswith("== "):
                blocks[line[3:]] = []
            elif blocks:
                blocks[list(blocks)[-1]].append(line.strip())
        return {p: parse_cert(p, blocks.get(p, [])) for p in self.paths}


def parse_cert(path: str, lines: list[str]) -> CertFact:
    fields = dict(line.split("=", 1) for line in lines if line.split("=", 1)[0] in ("issuer", "subject", "notAfter"))
    if "notAfter" not in fields:
        return CertFact(path, exists=False)
    sans = [line for line in lines if line.startswith(("DNS:", "IP Address:"))]
    names = tuple(n.strip().replace("IP Address:", "IP:") for n in ",".join(sans).split(",") if n.strip())
    return CertFact(path, True, fields["notAfter"], "Certificate will expire" in lines,
                    fields.get("issuer") == fields.get("subject"), names)
