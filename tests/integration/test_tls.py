"""HTTPS on fresh sandbox hosts, through the real `invoke deploy`.

Self-signed: https answers (the app sees the https scheme), http redirects with 301 except the
ACME challenge path, HSTS is sent, TLS 1.1 is refused while 1.2 and 1.3 are accepted, an unknown
name gets no answer on 443, the key is root's 0600, and a second provision changes nothing.

Let's Encrypt, against a real ACME server (pebble, tests/integration/pebble.py): while the
domain's DNS points nowhere the first deploy serves http and says why and what next;
`invoke tls.renew` then gets the certificate and https answers with it, verified against
pebble's root; a renewal dry run succeeds; a forced renewal reloads nginx with no failed request
in a bounded loop of requests, each on a new connection.
"""

import hashlib
import re
import ssl
import subprocess
import threading
import time

import pytest

from tests.integration import pebble as pebble_mod
from tests.integration.helpers import invoke, on_host
from toolkit.onhost.health_check import ServerNameConnection

pytestmark = pytest.mark.integration

DOMAIN = "shop.example"

APP = '''
def app(environ, start_response):
    """Says which scheme the request came with, as the app sees it."""
    body = f"scheme={environ['wsgi.url_scheme']}\\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

DEPLOY_TOML = f'''[app]
name = "tlsshop"
framework = "wsgi"
wsgi = "app:app"
domains = ["{DOMAIN}"]

[tls]
mode = "self-signed"
'''


def curl(box, url, *args, name=DOMAIN):
    """curl through the sandbox's address with `name` resolved to it: (exit code, headers + body)."""
    port = "443" if url.startswith("https") else "80"
    done = subprocess.run(["curl", "-sS", "-i", "--max-time", "10", "--resolve", f"{name}:{port}:{box.address}",
                           *args, url], capture_output=True, text=True, timeout=30)
    return done.returncode, done.stdout + done.stderr


def s_client(box, *args):
    done = subprocess.run(["openssl", "s_client", "-connect", f"{box.address}:443", "-servername", DOMAIN, *args],
                          input="", capture_output=True, text=True, timeout=30)
    return done.returncode, done.stdout + done.stderr


def test_self_signed_https_site(fresh_sandbox, tmp_path):
    box = fresh_sandbox
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "requirements.txt").write_text("")
    (tmp_path / "deploy.toml").write_text(DEPLOY_TOML)
    first = invoke("deploy", "--host", box.ssh_alias, "--app", str(tmp_path))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "self-signed certificate (missing)" in first.stdout

    code, page = curl(box, f"https://{DOMAIN}/", "-k")
    assert code == 0 and page.startswith("HTTP/2 200"), page
    assert "scheme=https" in page  # nginx's X-Forwarded-Proto, trusted by pronghorn
    assert "strict-transport-security: max-age=15552000" in page.lower()

    code, redirect = curl(box, f"http://{DOMAIN}/some/page?q=1")
    assert redirect.startswith("HTTP/1.1 301"), redirect
    assert f"location: https://{DOMAIN}/some/page?q=1" in redirect.lower()
    code, challenge = curl(box, f"http://{DOMAIN}/.well-known/acme-challenge/no-such-token")
    assert challenge.startswith("HTTP/1.1 404"), challenge  # served from the webroot, not redirected

    code, unknown = curl(box, "https://other.example/", "-k", name="other.example")
    assert code != 0 and "200" not in unknown  # the catch-all: no answer (444) on 443 too

    old, said = s_client(box, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert old != 0 and "protocol version" in said, said
    for version in ("-tls1_2", "-tls1_3"):
        code, said = s_client(box, version)
        assert code == 0 and "Cipher is" in said, said

    key = on_host(box, "stat -c '%a %U' /etc/pronghorn/tls/tlsshop/privkey.pem /etc/pronghorn/tls/default/key.pem")
    assert key.stdout.split("\n")[:2] == ["600 root", "600 root"], key.stdout + key.stderr

    again = invoke("provision", "--host", box.ssh_alias, "--app", str(tmp_path))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 changed, 0 failed" in again.stdout


# --------------------------------------------------------------------------- letsencrypt (pebble)

LE_DOMAIN = "shop.example.org"

LE_TOML = """[app]
name = "leshop"
framework = "wsgi"
wsgi = "app:app"
domains = ["{domain}"]

[tls]
mode = "letsencrypt"
email = "ops@example.org"
acme_directory = "{directory}"

[proxy]
# The sandbox's own proxy (a [proxy] replaces its pip.conf), and pebble's listener CA and root,
# trusted for this test only.
http = "{proxy}"
https = "{proxy}"
no_proxy = ["localhost", "127.0.0.1", "::1", "{acme_address}"]
ca_bundle = "{bundle}"
"""


@pytest.fixture
def acme(fresh_sandbox, tmp_path_factory):
    if not pebble_mod.available():
        pytest.skip("pebble, pebble-challtestsrv or openssl missing (scripts/bootstrap installs them)")
    server = pebble_mod.start(fresh_sandbox.host_address, tmp_path_factory.mktemp("pebble"))
    yield server
    server.stop()


def https_get(box, root_file, path="/"):
    """(status, body, sha256 of the served certificate), verified against pebble's root, SNI the domain."""
    context = ssl.create_default_context(cafile=str(root_file))
    conn = ServerNameConnection(box.address, 443, LE_DOMAIN, context, 10)
    try:
        conn.request("GET", path, headers={"Host": LE_DOMAIN})
        # Read before the answer: on "Connection: close" (an old worker after a reload) the
        # response takes the socket over and conn.sock is None.
        served = hashlib.sha256(conn.sock.getpeercert(binary_form=True)).hexdigest()
        resp = conn.getresponse()
        return resp.status, resp.read().decode(), served
    finally:
        conn.close()


class NewConnectionLoop:
    """GETs over https, each on a new connection, until stopped (at most `limit` or `seconds`)."""

    def __init__(self, box, root_file, limit=3000, seconds=120):
        self.box, self.root_file, self.limit, self.seconds = box, root_file, limit, seconds
        self.done, self.failures = 0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        deadline = time.monotonic() + self.seconds
        while not self.stop.is_set() and self.done < self.limit and time.monotonic() < deadline:
            self.done += 1
            try:
                status = https_get(self.box, self.root_file)[0]
                if status != 200:
                    self.failures.append(status)
            except Exception as exc:  # a reset or a refused handshake is a failed request
                self.failures.append(repr(exc))


def reloaded(ask, expected: str, seconds: float = 15):
    """`ask()`'s answer once it starts with `expected`, or the last one after `seconds`: `nginx -s
    reload` returns before the old workers stop taking connections, so an answer right after it
    may still come from the previous config."""
    deadline = time.monotonic() + seconds
    while True:
        answer = ask()
        if answer.startswith(expected) or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_letsencrypt_against_pebble(fresh_sandbox, acme, tmp_path):
    box = fresh_sandbox
    bundle = acme.folder / "trusted.pem"
    root = acme.folder / "root.pem"
    root.write_text(acme.root())
    bundle.write_text((acme.folder / "ca.pem").read_text() + root.read_text())
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "requirements.txt").write_text("")
    (tmp_path / "deploy.toml").write_text(LE_TOML.format(domain=LE_DOMAIN, directory=acme.directory,
                                                                   proxy=box.proxy_url, bundle=bundle,
                                                                   acme_address=acme.address))

    # The domain's DNS answers nothing yet: the site is deployed on http, and says why and what next.
    first = invoke("deploy", "--host", box.ssh_alias, "--app", str(tmp_path))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "not issued: the domain's DNS does not point at this host" in first.stdout, first.stdout
    assert f"invoke tls.renew --host {box.ssh_alias} --app {tmp_path}" in first.stdout  # as typed, pasteable
    assert f"site: http://{LE_DOMAIN}/" in first.stdout  # not https: the site serves http for now
    code, page = curl(box, f"http://{LE_DOMAIN}/", name=LE_DOMAIN)
    assert page.startswith("HTTP/1.1 200") and "scheme=http" in page, page

    acme.point(LE_DOMAIN, box.address)
    issued = invoke("tls.renew", "--host", box.ssh_alias, "--app", str(tmp_path))
    assert issued.returncode == 0, issued.stdout + issued.stderr
    status, body, served = https_get(box, root)
    assert (status, body) == (200, "scheme=https\n")
    code, page = curl(box, f"https://{LE_DOMAIN}/", "--cacert", str(root), name=LE_DOMAIN)
    assert code == 0 and page.startswith("HTTP/2 200"), page
    redirect = reloaded(lambda: curl(box, f"http://{LE_DOMAIN}/", name=LE_DOMAIN)[1], "HTTP/1.1 301")
    assert redirect.startswith("HTTP/1.1 301"), redirect

    dry = invoke("tls.renew", "--dry", "--host", box.ssh_alias, "--app", str(tmp_path))
    assert dry.returncode == 0, dry.stdout + dry.stderr
    timer = on_host(box, "systemctl is-enabled certbot.timer; stat -c '%a' "
                         "/etc/letsencrypt/renewal-hooks/deploy/pronghorn-reload-nginx")
    assert timer.stdout.split() == ["enabled", "755"], timer.stdout + timer.stderr
    # The timer's renewals go through [proxy] as the deploy's did: certbot.service loads it.
    unit = on_host(box, "systemctl cat certbot.service; stat -c '%a %U' /etc/pronghorn/certbot-proxy.env; "
                        "grep -c '^https_proxy=' /etc/pronghorn/certbot-proxy.env")
    assert "EnvironmentFile=/etc/pronghorn/certbot-proxy.env" in unit.stdout, unit.stdout + unit.stderr
    assert unit.stdout.split("\n")[-3:-1] == ["600 root", "1"], unit.stdout

    status = invoke("status", "--host", box.ssh_alias, "--app", str(tmp_path))
    assert status.returncode == 0, status.stdout + status.stderr
    assert re.search(r"certificate \(letsencrypt\): expires \d{4}-\d\d-\d\d \d\d:\d\d UTC, \d+ days left",
                     status.stdout), status.stdout

    loop = NewConnectionLoop(box, root)
    loop.thread.start()
    try:
        renewed = invoke("tls.renew", "--host", box.ssh_alias, "--app", str(tmp_path))
        after, deadline = loop.done + 20, time.monotonic() + 60
        while loop.done < after and time.monotonic() < deadline and loop.thread.is_alive():
            time.sleep(0.1)  # some requests after the reload too
    finally:
        loop.stop.set()
        loop.thread.join(timeout=60)
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    assert loop.done > 10 and loop.failures == [], (loop.done, loop.failures[:5])
    renewed_cert = https_get(box, root)[2]
    deadline = time.monotonic() + 15
    while renewed_cert == served and time.monotonic() < deadline:  # the reload takes effect
        time.sleep(0.2)
        renewed_cert = https_get(box, root)[2]
    assert renewed_cert != served  # nginx serves the renewed certificate


# --------------------------------------------------------------------------- files mode, two apps

FILES_DOMAIN, PLAIN_DOMAIN = "files.test", "plain.test"

FILES_TOML = f'''[app]
name = "filesapp"
framework = "wsgi"
wsgi = "app:app"
domains = ["{FILES_DOMAIN}"]

[tls]
mode = "files"
cert = "tls/fullchain.pem"
key = "tls/privkey.pem"
'''

PLAIN_TOML = f'''[app]
name = "plainapp"
framework = "wsgi"
wsgi = "app:app"
domains = ["{PLAIN_DOMAIN}"]
'''


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def local_ca_certificate(folder, domain):
    """A CA made here, and a certificate for `domain` it signed: (CA file, chain, key)."""
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "privkey.pem", "site.csr", "fullchain.pem"))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=h6 test CA",
            "-keyout", str(ca_key), "-out", str(ca))
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={domain}", "-keyout", str(key), "-out", str(csr))
    (folder / "san.ext").write_text(f"subjectAltName=DNS:{domain}\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2",
            "-extfile", str(folder / "san.ext"), "-out", str(cert))
    return ca, cert, key


def app_dir(folder, toml):
    folder.mkdir()
    (folder / "app.py").write_text(APP)
    (folder / "requirements.txt").write_text("")
    (folder / "deploy.toml").write_text(toml)
    return folder


CATCH_ALL_FILE = "/etc/nginx/sites-available/pronghorn-default.conf"


def test_files_mode_and_a_second_app_sharing_the_catch_all(fresh_sandbox, tmp_path):
    box = fresh_sandbox
    files_app = app_dir(tmp_path / "filesapp", FILES_TOML)
    (files_app / "tls").mkdir()
    ca, cert, key = local_ca_certificate(files_app / "tls", FILES_DOMAIN)

    first = invoke("deploy", "--host", box.ssh_alias, "--app", str(files_app))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "certificate files" in first.stdout
    code, page = curl(box, f"https://{FILES_DOMAIN}/", "--cacert", str(ca), name=FILES_DOMAIN)
    assert code == 0 and page.startswith("HTTP/2 200") and "scheme=https" in page, page  # verified against our CA
    on = on_host(box, "stat -c '%a %U' /etc/pronghorn/tls/filesapp/privkey.pem; sha256sum < /etc/pronghorn/tls/filesapp/privkey.pem")
    assert on.stdout.split("\n")[0] == "600 root", on.stdout + on.stderr
    assert on.stdout.split()[2] == hashlib.sha256(key.read_bytes()).hexdigest()

    # A key that is not the certificate's: refused on this machine, the host keeps the old pair.
    good_key = key.read_bytes()
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key))
    refused = invoke("deploy", "--host", box.ssh_alias, "--app", str(files_app))
    assert refused.returncode != 0
    assert "is not the key of the certificate" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    assert "next:" in refused.stdout + refused.stderr
    kept = on_host(box, "sha256sum < /etc/pronghorn/tls/filesapp/privkey.pem").stdout.split()[0]
    assert kept == on.stdout.split()[2]
    code, page = curl(box, f"https://{FILES_DOMAIN}/", "--cacert", str(ca), name=FILES_DOMAIN)
    assert code == 0 and page.startswith("HTTP/2 200"), page

    # A second app, on plain http, on the same host: it writes the host's catch-all as the first
    # did (on 443 too), and the first app's next provision changes nothing.
    catch_all = on_host(box, f"sha256sum < {CATCH_ALL_FILE}").stdout.split()[0]
    plain = invoke("deploy", "--host", box.ssh_alias, "--app", str(app_dir(tmp_path / "plainapp", PLAIN_TOML)))
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert on_host(box, f"sha256sum < {CATCH_ALL_FILE}").stdout.split()[0] == catch_all
    code, page = curl(box, f"http://{PLAIN_DOMAIN}/", name=PLAIN_DOMAIN)
    assert page.startswith("HTTP/1.1 200") and "scheme=http" in page, page
    code, unknown = curl(box, "https://other.test/", "-k", name="other.test")
    assert code != 0 and "200" not in unknown  # unknown names still get no answer on 443

    key.write_bytes(good_key)
    again = invoke("provision", "--host", box.ssh_alias, "--app", str(files_app))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 changed, 0 failed" in again.stdout, again.stdout


# --------------------------------------------------------------------------- Debian 13

TRIXIE_DOMAIN = "trixie.test"


def test_self_signed_https_on_debian_13_uses_http2_on(trixie_sandbox, tmp_path):
    """nginx 1.26 takes `http2 on;` (the `listen ... http2` form it warns about is not written)."""
    box = trixie_sandbox
    app = app_dir(tmp_path / "tlstrixie", DEPLOY_TOML.replace("tlsshop", "tlstrixie").replace(DOMAIN, TRIXIE_DOMAIN))
    first = invoke("deploy", "--host", box.ssh_alias, "--app", str(app))
    assert first.returncode == 0, first.stdout + first.stderr

    code, page = curl(box, f"https://{TRIXIE_DOMAIN}/", "-k", name=TRIXIE_DOMAIN)
    assert code == 0 and page.startswith("HTTP/2 200") and "scheme=https" in page, page
    code, redirect = curl(box, f"http://{TRIXIE_DOMAIN}/", name=TRIXIE_DOMAIN)
    assert redirect.startswith("HTTP/1.1 301"), redirect
    checked = on_host(box, "nginx -v 2>&1; nginx -t 2>&1; grep -c 'http2 on;' /etc/nginx/sites-enabled/tlstrixie.conf")
    assert "nginx/1.2" in checked.stdout and "successful" in checked.stdout, checked.stdout
    assert "deprecated" not in checked.stdout and "[warn]" not in checked.stdout, checked.stdout
    assert checked.stdout.split()[-1] == "1", checked.stdout

    again = invoke("provision", "--host", box.ssh_alias, "--app", str(app))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 changed, 0 failed" in again.stdout, again.stdout
