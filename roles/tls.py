"""The site's TLS certificate ([tls] in deploy.toml), before the nginx site that serves it.

- "self-signed": openssl on the host makes a certificate for the app's domains (localhost for
  domains = ["_"]), again when the names change or it expires within 30 days
  (toolkit/facts/tls.py); the key is root's, 0600 (roles/tls_self_signed.sh).
- "files": the user's certificate chain and key, read on the deploy machine (`uploaded_files`)
  and uploaded when they differ (the key root's, 0600).
- "letsencrypt": certbot (roles/tls_certbot.sh, HTTP-01 through nginx's webroot) once nginx
  serves the challenge path on http (`issue_plan`, run after the nginx role by
  toolkit/tls_issue.py); certbot's timer renews, and its deploy hook (roles/tls_renew_hook.sh)
  reloads nginx. Until a certificate exists the site stays on http (`tls_ready`). With a
  [proxy], certbot reads it from a root-only environment file: the first issuance and
  `tls.renew` source it, certbot.service (the timer's renewals) gets it through a drop-in.
- every mode but "off": the catch-all server's self-signed placeholder (nginx needs a
  certificate on 443 even to answer 444) and the ACME challenge webroot nginx serves on http.

A new or changed certificate reloads a running nginx whose config passes `nginx -t`; the nginx
role (next) installs the TLS site itself. Paths come from the host layout (`tls_cert`, ...).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from roles.files import differing
from toolkit.errors import ConfigError
from toolkit.executor import Change
from toolkit.remote import q

STEP = "tls certificate"
SELF_SIGNED_SCRIPT = Path(__file__).with_name("tls_self_signed.sh")
CERTBOT_SCRIPT = Path(__file__).with_name("tls_certbot.sh")
RENEW_HOOK = Path(__file__).with_name("tls_renew_hook.sh")
ISSUE_STEP = "tls certificate (ACME)"
SELF_SIGNED_DAYS = 397
PLACEHOLDER_NAME = "invalid"  # RFC 2606: a name that never resolves
RELOAD = "if systemctl is-active --quiet nginx && nginx -t >/dev/null 2>&1; then systemctl reload nginx; fi"


def enabled(wanted) -> bool:
    return wanted.tls is not None and wanted.tls.enabled


def served_cert(wanted) -> str:
    lay = wanted.layout
    return lay.letsencrypt_cert if wanted.tls.mode == "letsencrypt" else lay.tls_cert


def cert_paths(wanted) -> list[str]:
    return [served_cert(wanted), wanted.layout.tls_default_cert] if enabled(wanted) else []


def tls_ready(wanted, certs: dict) -> bool:
    """Whether nginx can serve https now: a letsencrypt certificate must have been issued first
    (the other modes make or upload theirs before the nginx site is installed)."""
    if not enabled(wanted) or wanted.tls.mode != "letsencrypt":
        return True
    fact = certs.get(wanted.layout.letsencrypt_cert)
    return bool(fact and fact.exists)


def issue_plan(wanted, certs: dict) -> list:
    """mode = "letsencrypt": certbot, when there is no certificate yet or it names other domains
    (certbot's timer renews an existing one). Run after nginx serves the challenge path."""
    if not enabled(wanted) or wanted.tls.mode != "letsencrypt":
        return []
    lay, tls = wanted.layout, wanted.tls
    fact = certs.get(lay.letsencrypt_cert)
    wanted_names = {san_entry(d) for d in wanted.domains}
    why = "missing" if not (fact and fact.exists) else "names changed" if set(fact.names) != wanted_names else ""
    if not why:
        return []
    args = [wanted.app, lay.acme_webroot, tls.email, tls.acme_directory, lay.certbot_proxy_env]
    args += [a for d in wanted.domains for a in ("-d", d)]
    script = f"sh -c {q(CERTBOT_SCRIPT.read_text())} tls_certbot.sh " + " ".join(q(a) for a in args)
    return [Change(f"certificate for {', '.join(wanted.domains)}", why, script=script, label="certbot")]


def fact_paths(wanted) -> list[str]:
    """Files provisioning reads for this role (kind, mode, owner, hash)."""
    lay = wanted.layout
    if not enabled(wanted):
        return []
    return [lay.tls_cert, lay.tls_key, lay.tls_default_cert, lay.tls_default_key, lay.acme_webroot,
            lay.letsencrypt_hook, lay.certbot_proxy_env, lay.certbot_proxy_dropin]


def san_entry(name: str) -> str:
    """openssl's subjectAltName entry for a domain or an address."""
    try:
        return f"IP:{ipaddress.ip_address(name.strip('[]'))}"
    except ValueError:
        return f"DNS:{name}"


def self_signed_names(domains) -> tuple[str, ...]:
    return ("localhost",) if tuple(domains) == ("_",) else tuple(domains)


def plan(facts, wanted, certs: dict) -> list:
    """`certs`: the Certificates fact ({path: CertFact}) for `cert_paths(wanted)`."""
    if not enabled(wanted):
        return []
    lay = wanted.layout
    changes = []
    if facts.fact(lay.acme_webroot).kind != "dir":
        changes.append(Change("ACME webroot", "missing", script=f"mkdir -p -m 0755 {q(lay.acme_webroot)}"))
    changes += self_signed(facts, certs, lay.tls_default_cert, lay.tls_default_key, (PLACEHOLDER_NAME,),
                           "placeholder certificate")
    if wanted.tls.mode == "self-signed":
        changes += self_signed(facts, certs, lay.tls_cert, lay.tls_key, self_signed_names(wanted.domains),
                               "self-signed certificate")
    else:  # "files": the certificate and key; "letsencrypt": certbot's deploy hook
        proxy = {lay.certbot_proxy_env, lay.certbot_proxy_dropin}
        todo = differing(facts, [f for f in wanted.tls_files if f.path not in proxy])
        if todo:
            what = "certificate files" if wanted.tls.mode == "files" else "certbot's nginx reload hook"
            changes.append(Change(what, ", ".join(sorted({why for _, why in todo})),
                                  files=tuple(f for f, _ in todo), script=RELOAD, label="uploading the certificate"))
    return changes + certbot_proxy(facts, wanted)


def certbot_proxy(facts, wanted) -> list:
    """[proxy] for certbot's timer: the environment file and certbot.service's drop-in naming
    it, written when they differ and removed when the proxy (or letsencrypt) is gone; systemd
    re-reads its units either way."""
    lay = wanted.layout
    paths = (lay.certbot_proxy_env, lay.certbot_proxy_dropin)
    todo = differing(facts, [f for f in wanted.tls_files if f.path in paths])
    if todo:
        return [Change("certbot's [proxy] environment", ", ".join(sorted({why for _, why in todo})),
                       files=tuple(f for f, _ in todo), script="systemctl daemon-reload",
                       label="giving certbot the proxy")]
    wanted_paths = {f.path for f in wanted.tls_files}
    stale = [p for p in paths if p not in wanted_paths and facts.fact(p).exists]
    if stale:
        return [Change("certbot's [proxy] environment", "no [proxy] any more",
                       script=f"rm -f {' '.join(q(p) for p in stale)} && systemctl daemon-reload")]
    return []


def self_signed(facts, certs, cert: str, key: str, names, what: str) -> list:
    """Make the certificate when missing, for other names, or expiring; else fix the key's mode."""
    fact, key_fact = certs.get(cert), facts.fact(key)
    sans = tuple(san_entry(n) for n in names)
    why = ("missing" if fact is None or not fact.exists or not key_fact.exists else
           "names changed" if set(fact.names) != set(sans) else
           f"expires {fact.not_after}" if fact.expiring else "")
    if why:
        args = [cert, key, str(SELF_SIGNED_DAYS), names[0], ",".join(sans)]
        script = f"sh -c {q(SELF_SIGNED_SCRIPT.read_text())} tls_self_signed.sh " + " ".join(q(a) for a in args)
        return [Change(what, why, script=script, label=f"making the {what}")]
    if (key_fact.mode, key_fact.owner) != (0o600, "root"):
        return [Change(f"{what} key", f"mode {key_fact.mode:o} {key_fact.owner} -> 600 root",
                       script=f"chown root:root {q(key)} && chmod 600 {q(key)}")]
    return []


def uploaded_files(cfg) -> tuple:
    """The files this mode uploads, as rendered files for the host: "files": the certificate
    chain (0644) and key (0600, root's) read on this machine (ConfigError when one cannot be
    read or is not PEM); "letsencrypt": certbot's deploy hook (0755)."""
    from toolkit.render import RenderedFile

    tls, lay = cfg.tls, cfg.layout
    if tls.mode == "letsencrypt":
        return (RenderedFile(lay.letsencrypt_hook, RENEW_HOOK.read_text(), 0o755, "root", "root"),
                *certbot_proxy_files(cfg))
    if tls.mode != "files":
        return ()
    cert = _read_pem("cert", tls.cert, "CERTIFICATE")
    key = _read_pem("key", tls.key, "PRIVATE KEY")
    _check_pair(tls, cert, key)
    return (RenderedFile(lay.tls_cert, cert, 0o644, "root", "root"),
            RenderedFile(lay.tls_key, key, 0o600, "root", "root"))


def certbot_proxy_files(cfg) -> tuple:
    """With a [proxy]: its settings as an environment file (root's, 0600; both spellings of each
    variable, read by sh and by systemd alike) and certbot.service's drop-in that loads it."""
    from toolkit.render import RenderedFile

    proxy, lay = cfg.proxy, cfg.layout
    if not (proxy.http or proxy.https):
        return ()
    values = {"http_proxy": proxy.http, "https_proxy": proxy.https or proxy.http,
              "no_proxy": ",".join(proxy.no_proxy)}
    bad = [v for v in values.values() if "'" in v or "\n" in v or "\\" in v]
    if bad:
        raise ConfigError(f"[proxy]: {bad[0]!r} cannot be passed to certbot (no quotes, backslashes or line breaks)")
    lines = [f"{name}='{value}'" for key, value in values.items() for name in (key, key.upper()) if value]
    env = "# [proxy] for certbot (deploy.toml; written by the deploy toolkit, roles/tls.py)\n" + "\n".join(lines) + "\n"
    dropin = ("# certbot's renewals (certbot.timer) go through deploy.toml's [proxy] (roles/tls.py)\n"
              f"[Service]\nEnvironmentFile={lay.certbot_proxy_env}\n")
    return (RenderedFile(lay.certbot_proxy_env, env, 0o600, "root", "root"),
            RenderedFile(lay.certbot_proxy_dropin, dropin, 0o644, "root", "root"))


def _check_pair(tls, cert: str, key: str) -> None:
    """The key must be the certificate's (the first in the chain): nginx would refuse the pair
    on the host, so a mismatch stops here, before anything is sent."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        served = x509.load_pem_x509_certificate(cert.encode())
    except ValueError as exc:
        raise ConfigError(f'[tls] cert = "{tls.cert}": not a readable PEM certificate ({exc})') from None
    try:
        private = serialization.load_pem_private_key(key.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f'[tls] key = "{tls.key}": not a readable private key without a passphrase ({exc}); '
                          f"nginx needs it unencrypted (openssl pkey -in KEY -out KEY.plain)") from None
    form = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if served.public_key().public_bytes(*form) != private.public_key().public_bytes(*form):
        raise ConfigError(f'[tls] key = "{tls.key}" is not the key of the certificate in [tls] cert = "{tls.cert}" '
                          f"(their public keys differ); nothing was changed on the host",
                          "give the key the certificate was made with (the first certificate in cert is the "
                          "site's), then run the same command again")


def _read_pem(name: str, path: str, kind: str) -> str:
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f'[tls] {name} = "{path}": cannot read it ({exc}); give the path of a PEM file '
                          f"on this machine (absolute or relative to the app directory)") from None
    if "-----BEGIN " not in text or kind not in text:
        raise ConfigError(f'[tls] {name} = "{path}": not a PEM {kind.lower()} (no "BEGIN ... {kind}" line)')
    return text
