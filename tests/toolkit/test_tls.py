"""[tls]: the config's rules, the nginx site it renders (checked by the real `nginx -t` with real
certificates), the TLS role's plan on plain facts, the certificates fact's parser, and the
health check over HTTPS (SNI, verified or not) against a local TLS server."""

import dataclasses
import http.server
import ssl
import subprocess
import threading

import pytest

from roles import nginx as nginx_role
from roles import tls
from roles.wanted import Wanted
from tests.toolkit.test_onhost import run_program
from tests.toolkit.test_render import by_path, example, needs_nginx, nginx_test
from toolkit.config import ConfigError, TlsConfig, load_app_config
from toolkit.facts.files import FileFact
from toolkit.facts.host import HostFacts
from toolkit.facts.nginx import NginxVersion, SiteListeners
from toolkit.facts.tls import CertFact, Certificates
from toolkit.layout import HostLayout
from toolkit.release_commands import health_check_cmd
from toolkit.render import render_all

LAY = HostLayout("flaskapp")
SITE = "/etc/nginx/sites-available/flaskapp.conf"
CATCH_ALL = "/etc/nginx/sites-available/pronghorn-default.conf"
NAMED = {"app.domains": ["shop.example"]}
MOZILLA_INTERMEDIATE_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-"
                                "SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-"
                                "CHACHA20-POLY1305")


def make_cert(folder, name="shop.example", days=30):
    """A self-signed certificate and key made by openssl, as the role makes them on hosts."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-sha256", "-nodes", "-days", str(days),
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


# --------------------------------------------------------------------------- config

def test_tls_is_off_by_default_with_a_modest_hsts():
    cfg = example("flask")
    assert cfg.tls.mode == "off" and not cfg.tls.enabled
    assert cfg.tls.hsts == 15552000 and cfg.tls.acme_directory.startswith("https://acme-v02.api.letsencrypt.org/")


@pytest.mark.parametrize("overrides, says", [
    ({"tls.mode": "letsencrypt", **NAMED}, "needs an e-mail"),
    ({"tls.mode": "letsencrypt", "tls.email": "ops@shop.example"}, "needs real domain names"),
    ({"tls.mode": "letsencrypt", "tls.email": "ops@shop.example", "app.domains": ["*.shop.example"]}, "wildcards"),
    ({"tls.mode": "files", "tls.cert": "fullchain.pem"}, "needs key"),
    ({"tls.mode": "files"}, "needs cert and key"),
    ({"tls.mode": "self-signed", "tls.hsts_preload": True}, "hsts of at least 31536000"),
    ({"tls.mode": "on"}, 'expected one of "off", "self-signed", "files", "letsencrypt"'),
    ({"tls.email": "not an address"}, "an e-mail address"),
    ({"tls.acme_directory": "http://acme.example/dir"}, "https:// URL"),
])
def test_tls_config_says_what_is_missing(overrides, says):
    with pytest.raises(ConfigError) as err:
        example("flask", overrides)
    assert says in str(err.value)


def test_letsencrypt_with_an_email_and_real_domains_is_valid():
    cfg = example("flask", {"tls.mode": "letsencrypt", "tls.email": "ops@shop.example", **NAMED,
                            "tls.acme_directory": "https://10.77.3.1:14000/dir"})
    assert cfg.tls.enabled and cfg.tls.acme_directory == "https://10.77.3.1:14000/dir"


@pytest.mark.parametrize("domains, mode", [
    (["shop.com"], "letsencrypt"),
    (["www.shop.co.uk", "shop.co.uk"], "letsencrypt"),
    (["_"], "off"),
    (["203.0.113.10"], "off"),
    (["2001:db8::1"], "off"),
    (["intranet"], "off"),                    # one label: no public CA issues for it
    (["*.shop.com"], "off"),                  # a wildcard needs DNS-01, not HTTP-01
    (["shop.example", "app.test", "x.invalid", "a.localhost", "nas.local", "db.internal", "pi.lan",
      "box.home.arpa", "example.com", "www.example.org", "example.net"], "off"),
])
def test_default_mode_is_letsencrypt_only_for_public_names(domains, mode):
    cfg = example("flask", {"app.domains": domains, "tls.email": "ops@shop.com"})
    assert cfg.tls.mode == mode


def test_default_letsencrypt_without_an_email_names_the_domains_line_and_the_choices(tmp_path):
    (tmp_path / "app.py").write_text("app = None\n")
    (tmp_path / "deploy.toml").write_text('[app]\nname = "shop"\nframework = "wsgi"\nwsgi = "app:app"\n'
                                          'domains = ["shop.com", "www.shop.com"]\n')
    with pytest.raises(ConfigError) as err:
        load_app_config(tmp_path)
    said = str(err.value)
    assert said.startswith(f"{tmp_path / 'deploy.toml'}:5: ") and '[tls] mode = "letsencrypt"' in said
    assert "needs an e-mail" in said
    assert 'email = "you@example.com"' in err.value.next_step
    assert 'mode = "self-signed"' in err.value.next_step and 'mode = "off"' in err.value.next_step


@pytest.mark.parametrize("tls", ['[tls]\nemail = "ops@shop.com"\n', '[tls]\nmode = "off"\n',
                                 '[tls]\nmode = "self-signed"\n'])
def test_each_next_step_of_the_default_makes_the_config_valid(tmp_path, tls):
    (tmp_path / "app.py").write_text("app = None\n")
    (tmp_path / "deploy.toml").write_text('[app]\nname = "shop"\nframework = "wsgi"\nwsgi = "app:app"\n'
                                          f'domains = ["shop.com"]\n\n{tls}')
    cfg = load_app_config(tmp_path)
    assert cfg.tls.mode == ("letsencrypt" if "email" in tls else tls.split('"')[1])


def test_a_written_mode_is_named_at_its_own_line(tmp_path):
    (tmp_path / "app.py").write_text("app = None\n")
    (tmp_path / "deploy.toml").write_text('[app]\nname = "shop"\nframework = "wsgi"\nwsgi = "app:app"\n'
                                          'domains = ["_"]\n\n[tls]\nmode = "letsencrypt"\nemail = "a@shop.com"\n')
    with pytest.raises(ConfigError) as err:
        load_app_config(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'deploy.toml'}:8: ") and "needs real domain names" in str(err.value)


@pytest.mark.parametrize("example_name", ["flask", "django", "bottle"])
def test_every_example_config_still_validates_with_its_own_domains(example_name):
    assert example(example_name).tls.mode == "off"  # no domains: "_", any name


def test_hsts_header_and_preload():
    assert TlsConfig(mode="files", hsts=600).hsts_header == "max-age=600"
    assert TlsConfig(mode="files", hsts=31536000, hsts_preload=True).hsts_header == \
        "max-age=31536000; includeSubDomains; preload"
    assert TlsConfig(mode="files", hsts=0).hsts_header == ""


# --------------------------------------------------------------------------- the nginx site

def test_tls_site_redirects_http_except_acme_and_serves_mozilla_intermediate():
    files = by_path(render_all(example("flask", {"tls.mode": "self-signed", **NAMED})))
    site = files[SITE].content
    http_server, tls_server = site.split("\nserver {")[1:3]
    assert "listen 80;" in http_server and "return 301 https://$host$request_uri;" in http_server
    assert f"location ^~ /.well-known/acme-challenge/ {{\n        root {LAY.acme_webroot};" in http_server
    assert "proxy_pass" not in http_server
    assert "listen 443 ssl http2;" in tls_server and "listen [::]:443 ssl http2;" in tls_server
    assert f"ssl_certificate {LAY.tls_cert};" in tls_server and f"ssl_certificate_key {LAY.tls_key};" in tls_server
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in tls_server and "ssl_prefer_server_ciphers off;" in tls_server
    assert f"ssl_ciphers {MOZILLA_INTERMEDIATE_CIPHERS};" in tls_server
    assert "ssl_stapling" not in tls_server  # self-signed: no OCSP responder to ask
    # HSTS wherever the security headers go: the server, and the locations with add_header of
    # their own (media, the unavailable page, the maintenance page)
    assert tls_server.count('add_header Strict-Transport-Security "max-age=15552000" always;') == 4
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in tls_server
    # the catch-all answers unknown names with 444 on 443 too, with its placeholder certificate
    catch_all = files[CATCH_ALL].content
    assert "listen 443 ssl http2 default_server;" in catch_all and "return 444;" in catch_all
    assert f"ssl_certificate {LAY.tls_default_cert};" in catch_all


def test_files_mode_staples_ocsp_and_any_name_app_is_the_default_on_443(tmp_path):
    cert, key = make_cert(tmp_path)
    files = by_path(render_all(example("flask", {"tls.mode": "files", "tls.cert": str(cert), "tls.key": str(key)})))
    site = files[SITE].content
    assert "listen 443 ssl http2 default_server;" in site and "listen 80 default_server;" in site
    assert "ssl_stapling on;" in site and f"ssl_trusted_certificate {LAY.tls_cert};" in site
    assert CATCH_ALL not in files


def test_tls_off_renders_plain_http_without_hsts():
    site = by_path(render_all(example("flask", NAMED)))[SITE].content
    assert "443" not in site and "Strict-Transport-Security" not in site and "return 301" not in site


def with_local_certs(text, tmp_path):
    """The rendered site with its certificate paths moved to real files made here."""
    for name, (cert, key) in {"flaskapp": (LAY.tls_cert, LAY.tls_key),
                              "default": (LAY.tls_default_cert, LAY.tls_default_key)}.items():
        local_cert, local_key = make_cert(tmp_path, f"{name}.example")
        text = text.replace(cert, str(local_cert)).replace(key, str(local_key))
    return text.replace(LAY.acme_webroot, str(tmp_path))


@needs_nginx
@pytest.mark.parametrize("overrides", [{"tls.mode": "self-signed", **NAMED}, {"tls.mode": "self-signed"},
                                       {"tls.mode": "self-signed", "app.ipv6": False, "tls.hsts": 0}])
def test_rendered_tls_sites_pass_nginx_t(tmp_path, overrides):
    files = render_all(example("flask", overrides))
    sites = [with_local_certs(f.content, tmp_path) for f in files if "/etc/nginx/sites-" in f.path]
    ok, output = nginx_test(tmp_path, *sites)
    assert ok, output


def listeners_of(app, site_text):
    """The SiteListeners fact as grep prints it for one enabled site."""
    return SiteListeners().parse([f"/etc/nginx/sites-enabled/{app}.conf:{line}" for line in site_text.splitlines()
                                  if line.strip().startswith("listen")])


@needs_nginx
def test_two_apps_render_the_one_catch_all_alike_whichever_deploys(tmp_path):
    """An app on plain http and one on https, each deployed after the other: the catch-all each
    renders (pronghorn-default.conf, one file per host) is the same, on 443 too, and nginx
    takes both sites with it."""
    plain = example("flask", {"app.name": "blog", "app.domains": ["blog.example"]})
    secure = example("flask", {"app.name": "shop", "tls.mode": "self-signed", **NAMED})
    plain_site = by_path(render_all(plain))["/etc/nginx/sites-available/blog.conf"].content
    secure_site = by_path(render_all(secure))["/etc/nginx/sites-available/shop.conf"].content

    def catch_all(cfg, other, other_site, placeholder=True):
        host = nginx_role.host_vars(cfg.name, listeners_of(other, other_site), (1, 22, 1), placeholder)
        return by_path(render_all(cfg, {"tls_ready": True, **host}))[CATCH_ALL].content

    by_plain, by_secure = catch_all(plain, "shop", secure_site), catch_all(secure, "blog", plain_site)
    assert by_plain == by_secure and "listen 443 ssl http2 default_server;" in by_plain
    # the https site left (or the placeholder is missing): the catch-all leaves 443 too
    assert "443" not in catch_all(plain, "shop", secure_site, placeholder=False)
    assert "443" not in catch_all(plain, "other", plain_site.replace("blog", "other"))
    sites = [with_local_certs(text, tmp_path) for text in (plain_site, secure_site.replace("/tls/shop/", "/tls/flaskapp/"), by_plain)]
    ok, output = nginx_test(tmp_path, *sites)
    assert ok, output


def test_nginx_from_1_25_1_gets_http2_on_and_older_the_listen_parameter():
    cfg = example("flask", {"tls.mode": "self-signed", **NAMED})
    for version, new in (((1, 26, 3), True), ((1, 25, 1), True), ((1, 24, 0), False), ((1, 22, 1), False), ((), False)):
        host = nginx_role.host_vars(cfg.name, {}, version, False)
        files = by_path(render_all(cfg, {"tls_ready": True, **host}))
        for text in (files[SITE].content, files[CATCH_ALL].content):
            assert ("http2 on;" in text) == new and ("ssl http2" in text) == (not new), version
            assert "listen 443 ssl" in text


def test_nginx_facts_parse_what_the_host_prints():
    found = SiteListeners().parse(["/etc/nginx/sites-enabled/shop.conf:    listen 443 ssl http2;",
                                   "/etc/nginx/sites-enabled/shop.conf:    listen [::]:443 ssl http2;",
                                   "/etc/nginx/sites-enabled/blog.conf:listen 80;"])
    assert found == {"/etc/nginx/sites-enabled/shop.conf": ["443 ssl http2", "[::]:443 ssl http2"],
                     "/etc/nginx/sites-enabled/blog.conf": ["80"]}
    host = nginx_role.host_vars("blog", found, (1, 22, 1), True)
    assert host == {"http2_on": False, "others_tls": True, "others_ipv6": True}
    assert nginx_role.host_vars("shop", found, (), True) == {"http2_on": False, "others_tls": False,
                                                             "others_ipv6": False}
    assert NginxVersion().parse(["1.26.3"]) == (1, 26, 3)
    assert NginxVersion().parse(["", "1.22.1-9+deb12u11"]) == (1, 22, 1)  # apt's candidate
    assert NginxVersion().parse(["(none)"]) == ()


# --------------------------------------------------------------------------- the role

def wanted(mode="self-signed", domains=("shop.example",), tls_files=()):
    return Wanted(app="flaskapp", layout=LAY, tls=TlsConfig(mode=mode, hsts=15552000), domains=domains,
                  tls_files=tls_files)


def present(path, kind="file", mode=0o644, owner="root"):
    return FileFact(path, True, kind, mode, owner, "root")


def host_with(key_mode=0o600, names=("DNS:shop.example",), expiring=False):
    files = {LAY.acme_webroot: present(LAY.acme_webroot, "dir", 0o755), LAY.tls_key: present(LAY.tls_key, mode=key_mode),
             LAY.tls_default_key: present(LAY.tls_default_key, mode=0o600)}
    certs = {LAY.tls_cert: CertFact(LAY.tls_cert, True, "Dec 1 2027", expiring, True, names),
             LAY.tls_default_cert: CertFact(LAY.tls_default_cert, True, "Dec 1 2027", False, True, ("DNS:invalid",))}
    return HostFacts(files=files), certs


def test_fresh_host_gets_the_webroot_the_placeholder_and_the_self_signed_certificate():
    changes = tls.plan(HostFacts(), wanted(), {})
    assert [c.what for c in changes] == ["ACME webroot", "placeholder certificate", "self-signed certificate"]
    script = changes[2].script
    assert "umask 077" in script and "chmod 600" in script
    assert script.endswith(f"{LAY.tls_cert} {LAY.tls_key} 397 shop.example DNS:shop.example")


def test_certificate_as_wanted_needs_nothing():
    facts, certs = host_with()
    assert tls.plan(facts, wanted(), certs) == []


@pytest.mark.parametrize("host, why", [
    (dict(names=("DNS:old.example",)), "names changed"),
    (dict(expiring=True), "expires Dec 1 2027"),
])
def test_self_signed_certificate_is_made_again_when_names_change_or_it_expires(host, why):
    facts, certs = host_with(**host)
    [change] = tls.plan(facts, wanted(), certs)
    assert (change.what, change.why) == ("self-signed certificate", why)


def test_a_readable_key_is_made_roots_0600_again():
    facts, certs = host_with(key_mode=0o644)
    [change] = tls.plan(facts, wanted(), certs)
    assert change.script == f"chown root:root {LAY.tls_key} && chmod 600 {LAY.tls_key}"


def test_any_name_app_and_addresses_get_matching_names():
    assert tls.self_signed_names(("_",)) == ("localhost",)
    assert [tls.san_entry(n) for n in ("shop.example", "10.77.3.2", "[::1]")] == \
        ["DNS:shop.example", "IP:10.77.3.2", "IP:::1"]


def test_files_mode_uploads_the_key_roots_0600_and_reloads_nginx(tmp_path):
    cert, key = make_cert(tmp_path)
    cfg = example("flask", {"tls.mode": "files", "tls.cert": str(cert), "tls.key": str(key)})
    files = tls.uploaded_files(cfg)
    assert [(f.path, f.mode, f.owner) for f in files] == [(LAY.tls_cert, 0o644, "root"), (LAY.tls_key, 0o600, "root")]
    facts, certs = host_with()
    [change] = tls.plan(facts, Wanted.of(cfg, ()), certs)
    assert change.files == files and "systemctl reload nginx" in change.script


def test_files_mode_with_a_wrong_file_says_which(tmp_path):
    cert, _ = make_cert(tmp_path)
    cfg = example("flask", {"tls.mode": "files", "tls.cert": str(cert), "tls.key": str(cert)})
    with pytest.raises(ConfigError, match=r"\[tls\] key = .*not a PEM private key"):
        tls.uploaded_files(cfg)
    cfg = example("flask", {"tls.mode": "files", "tls.cert": "missing.pem", "tls.key": str(cert)})
    with pytest.raises(ConfigError, match=r"\[tls\] cert = .*missing.pem.*cannot read it"):
        tls.uploaded_files(cfg)


def test_files_mode_refuses_a_key_that_is_not_the_certificates(tmp_path):
    cert, _ = make_cert(tmp_path)
    _, other_key = make_cert(tmp_path, "other.example")
    cfg = example("flask", {"tls.mode": "files", "tls.cert": str(cert), "tls.key": str(other_key)})
    with pytest.raises(ConfigError) as err:
        tls.uploaded_files(cfg)
    assert "is not the key of the certificate" in str(err.value) and str(other_key) in str(err.value)
    assert "the key the certificate was made with" in err.value.next_step


def test_tls_off_plans_nothing_and_reads_nothing():
    assert tls.plan(HostFacts(), wanted(mode="off"), {}) == [] and tls.fact_paths(wanted(mode="off")) == []


# --------------------------------------------------------------------------- the certificates fact

def test_certificates_fact_reads_what_openssl_says(tmp_path):
    cert, _ = make_cert(tmp_path, days=10)
    fact = Certificates([str(cert), str(tmp_path / "missing.pem")])
    out = subprocess.run(["sh", "-c", fact.command()], capture_output=True, text=True, timeout=30).stdout
    found = fact.parse(out.splitlines())
    assert found[str(cert)].exists and found[str(cert)].self_signed
    assert found[str(cert)].expiring  # 10 days left: within the 30 days of renewal
    assert found[str(cert)].names == ("DNS:shop.example",)
    assert not found[str(tmp_path / "missing.pem")].exists


# --------------------------------------------------------------------------- the health check

@pytest.fixture
def tls_site(tmp_path):
    """A local HTTPS server with a self-signed certificate for shop.example: 200 for that Host."""
    cert, key = make_cert(tmp_path)
    names = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.headers["Host"] == "shop.example"
            self.send_response(200 if ok else 400)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], names
    server.shutdown()
    server.server_close()


def test_health_check_over_https_sends_the_sites_name_and_skips_only_a_self_signed_check(tls_site):
    port, names = tls_site
    done = run_program("health_check", "shop.example", "/", "200", "5", "2", "127.0.0.1", str(port), "https", "0")
    assert done.returncode == 0 and done.stdout.startswith("OK 200"), done.stdout + done.stderr
    assert names == ["shop.example"]
    # verified (a CA's certificate is expected): this self-signed one is refused
    done = run_program("health_check", "shop.example", "/", "200", "1", "2", "127.0.0.1", str(port), "https", "1")
    assert done.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in done.stdout


def test_health_check_command_goes_through_https_when_tls_is_on():
    assert health_check_cmd(example("flask")).endswith(" 5")  # plain http: no TLS arguments
    cmd = health_check_cmd(example("flask", {"tls.mode": "self-signed"}))
    assert cmd.endswith(" 127.0.0.1 443 https 0")
    # your own certificate may come from a CA the host does not trust: not verified either
    assert health_check_cmd(example("flask", {"tls.mode": "files", "tls.cert": "c.pem", "tls.key": "k.pem"})).endswith(
        " 127.0.0.1 443 https 0")
    le = health_check_cmd(example("flask", {**NAMED, "tls.mode": "letsencrypt", "tls.email": "a@shop.example"}))
    assert le.endswith(f" 127.0.0.1 443 https-if:{LAY.letsencrypt_cert} 1")


# --------------------------------------------------------------------------- certbot's failures in words

CERTBOT_DNS = """Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:
  Domain: shop.example.org
  Type:   dns
  Detail: DNS problem: NXDOMAIN looking up A for shop.example.org - check that a DNS record exists for this domain

Hint: The Certificate Authority failed to download the temporary challenge files created by Certbot.
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details.
"""
CERTBOT_PORT_80 = CERTBOT_DNS.replace("Type:   dns", "Type:   connection").replace(
    "DNS problem: NXDOMAIN looking up A for shop.example.org - check that a DNS record exists for this domain",
    "203.0.113.10: Fetching http://shop.example.org/.well-known/acme-challenge/x: Timeout during connect "
    "(likely firewall problem)")
CERTBOT_NO_ACME = """An unexpected error occurred:
requests.exceptions.SSLError: HTTPSConnectionPool(host='10.77.3.1', port=14000): Max retries exceeded with url: /dir (Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed')))
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details.
"""


@pytest.mark.parametrize("output, reason, said", [
    (CERTBOT_DNS, "DNS does not point at this host", "Detail: DNS problem: NXDOMAIN"),
    (CERTBOT_PORT_80, "could not reach this host on port 80", "Detail: 203.0.113.10: Fetching"),
    (CERTBOT_NO_ACME, "cannot reach the ACME server", "requests.exceptions.SSLError"),
    (CERTBOT_DNS.replace("DNS problem: NXDOMAIN looking up A for shop.example.org - check that a DNS record "
                         "exists for this domain", 'Get "http://shop.example.org:80/x": could not resolve URL'),
     "DNS does not point at this host", "Detail: Get"),  # pebble's words
])
def test_a_failed_issuance_is_said_in_words_with_certbots_own_line(output, reason, said):
    from toolkit.tls_issue import detail, why_not_issued

    assert reason in why_not_issued(output)
    assert detail(output).startswith(said)


def test_letsencrypt_issues_only_without_a_certificate_for_these_names():
    le = Wanted(app="flaskapp", layout=LAY, domains=("shop.example",),
                tls=TlsConfig(mode="letsencrypt", email="ops@shop.example", acme_directory="https://acme.test/dir"))
    [change] = tls.issue_plan(le, {})
    assert change.why == "missing" and "--webroot" in change.script
    assert change.script.endswith(f"flaskapp {LAY.acme_webroot} ops@shop.example https://acme.test/dir {LAY.certbot_proxy_env} -d shop.example")
    assert not tls.tls_ready(le, {})
    issued = {LAY.letsencrypt_cert: CertFact(LAY.letsencrypt_cert, True, "Mar 1 2027", False, False,
                                             ("DNS:shop.example",))}
    assert tls.issue_plan(le, issued) == [] and tls.tls_ready(le, issued)
    assert tls.issue_plan(dataclasses.replace(le, domains=("shop.example", "www.shop.example")), issued)[0].why == \
        "names changed"


LE = {**NAMED, "tls.mode": "letsencrypt", "tls.email": "ops@shop.example"}
PROXIED = {**LE, "proxy.http": "http://user:pw@proxy.lan:3128", "proxy.no_proxy": ["localhost", "acme.lan"]}


def test_certbots_timer_gets_the_proxy_through_a_drop_in_and_a_root_only_environment_file(tmp_path):
    cfg = example("flask", PROXIED)
    files = {f.path: f for f in tls.uploaded_files(cfg)}
    env, dropin = files[LAY.certbot_proxy_env], files[LAY.certbot_proxy_dropin]
    assert (env.mode, env.owner) == (0o600, "root") and dropin.mode == 0o644
    assert dropin.path == "/etc/systemd/system/certbot.service.d/pronghorn-proxy.conf"
    assert f"[Service]\nEnvironmentFile={LAY.certbot_proxy_env}\n" in dropin.content
    # sh reads it as systemd does (quoted values): what certbot's environment then holds
    (tmp_path / "env").write_text(env.content)
    seen = subprocess.run(["sh", "-c", f"set -a; . {tmp_path / 'env'}; set +a; env"], capture_output=True,
                          text=True, env={}, timeout=10).stdout.splitlines()
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        assert f"{name}=http://user:pw@proxy.lan:3128" in seen
    assert "no_proxy=localhost,acme.lan" in seen and "NO_PROXY=localhost,acme.lan" in seen

    facts = HostFacts(files={LAY.acme_webroot: present(LAY.acme_webroot, "dir", 0o755)})
    wanted_le = Wanted.of(cfg)
    proxy_change = [c for c in tls.plan(facts, wanted_le, {}) if c.what == "certbot's [proxy] environment"]
    assert proxy_change and proxy_change[0].script == "systemctl daemon-reload"
    assert {f.path for f in proxy_change[0].files} == {LAY.certbot_proxy_env, LAY.certbot_proxy_dropin}


def test_the_proxy_environment_goes_when_the_proxy_does_and_nothing_without_one():
    assert all("proxy" not in f.path for f in tls.uploaded_files(example("flask", LE)))
    facts = HostFacts(files={LAY.acme_webroot: present(LAY.acme_webroot, "dir", 0o755),
                             LAY.certbot_proxy_env: present(LAY.certbot_proxy_env, mode=0o600),
                             LAY.certbot_proxy_dropin: present(LAY.certbot_proxy_dropin)})
    [gone] = [c for c in tls.plan(facts, Wanted.of(example("flask", LE)), {}) if "proxy" in c.what]
    assert gone.why == "no [proxy] any more" and gone.script.endswith("&& systemctl daemon-reload")
    assert LAY.certbot_proxy_dropin in gone.script and LAY.certbot_proxy_env in gone.script


# --------------------------------------------------------------------------- invoke status

from datetime import datetime, timezone  # noqa: E402

from toolkit import tls_status  # noqa: E402

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("mode, not_after, says, warns", [
    ("letsencrypt", "Mar  2 11:00:00 2027 GMT", "certificate (letsencrypt): expires 2027-03-02 11:00 UTC, 89 days left", ""),
    ("letsencrypt", "Dec 12 12:00:00 2026 GMT", "10 days left - WARNING: under 14 days; certbot's timer", "tls.renew"),
    ("files", "Dec 15 11:59:00 2026 GMT", "12 days left - WARNING: under 14 days; put a new certificate", "deploy"),
    ("self-signed", "Dec  1 00:00:00 2026 GMT", "EXPIRED - WARNING", "provision"),
    ("self-signed", "Dec 16 12:00:00 2026 GMT", "14 days left", ""),
])
def test_status_shows_the_certificates_expiry_and_warns_under_14_days(mode, not_after, says, warns):
    cfg = dataclasses.replace(example("flask", {**NAMED, "tls.mode": "self-signed"}),
                              tls=TlsConfig(mode=mode, email="a@b.cd"))
    path = tls.served_cert(cfg)
    [line] = tls_status.describe(cfg, {path: CertFact(path, True, not_after)}, NOW)
    assert says in line.text
    assert line.warning == bool(warns) and (warns in line.next_step if warns else not line.next_step)


def test_status_says_a_letsencrypt_certificate_is_not_issued_yet_and_nothing_with_tls_off():
    cfg = example("flask", {**NAMED, "tls.mode": "letsencrypt", "tls.email": "ops@shop.example"})
    [line] = tls_status.describe(cfg, {}, NOW)
    assert "not issued yet" in line.text and "invoke tls.renew" in line.next_step
    assert tls_status.describe(example("flask"), {}, NOW) == []


def test_a_failed_issuance_prints_why_and_a_next_step_with_the_app_folder(monkeypatch, tmp_path):
    import io

    from toolkit import tls_issue
    from toolkit.errors import RemoteError
    from toolkit.report import Reporter

    def certbot_fails(c, changes):
        raise RemoteError("certbot", 1, CERTBOT_DNS)

    monkeypatch.setattr(tls_issue.executor, "run", certbot_fails)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shop").mkdir()
    le = Wanted(app="flaskapp", layout=LAY, domains=("shop.example",), app_dir=str(tmp_path / "shop"),
                tls=TlsConfig(mode="letsencrypt", email="ops@shop.example", acme_directory="https://acme.test/dir"))
    out = io.StringIO()
    rep = Reporter(out=out, colour=False)
    rep.begin_host("deploy@203.0.113.10")
    assert tls_issue.obtain(None, rep, le, {}, "deploy@203.0.113.10") is False
    said = out.getvalue()
    assert "not issued: the domain's DNS does not point at this host" in said and "serves http until then" in said
    assert "certbot: Detail:" in said
    assert "next: point the DNS of shop.example at this host and let port 80 in, then run: " in said
    assert said.rstrip().endswith("tls.renew --host deploy@203.0.113.10 --app shop")


def test_a_renewal_dry_run_shows_certbots_verdict_not_its_ruler():
    from toolkit.tls_issue import certbot_verdict

    out = ("Processing /etc/letsencrypt/renewal/leshop.conf\n- - - - - - - -\n"
           "Congratulations, all simulated renewals succeeded: \n  /etc/letsencrypt/live/leshop/fullchain.pem (success)\n"
           "- - - - - - - - - - - -\n")
    assert certbot_verdict(out) == "/etc/letsencrypt/live/leshop/fullchain.pem (success)"
