"""A real ACME server for the HTTPS tests: Debian's `pebble` (Let's Encrypt's test server) and
`pebble-challtestsrv` (its mock DNS), run on this machine at a sandbox's host-side address.

pebble's own HTTPS listener gets a certificate made here with openssl (its CA goes into the
bundle the sandbox trusts for the test, through deploy.toml's [proxy] ca_bundle). The mock DNS
answers nothing until `point(domain, address)`: a certificate for a name that does not resolve
fails as it would on the internet. Both processes are ended by pid.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ACME_PORT, MANAGEMENT_PORT, DNS_PORT, DNS_MANAGEMENT_PORT = 14000, 15000, 8053, 8055


def available() -> bool:
    return bool(shutil.which("pebble") and shutil.which("pebble-challtestsrv") and shutil.which("openssl"))


def make_tls_ca(folder: Path, address: str) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for pebble's listener at `address`."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "key.pem", "csr.pem", "cert.pem"))
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=pebble test listener CA",
        "-keyout", str(ca_key), "-out", str(ca))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={address}", "-keyout", str(key), "-out", str(csr))
    ext = folder / "san.ext"
    ext.write_text(f"subjectAltName=IP:{address}\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2",
        "-extfile", str(ext), "-out", str(cert))
    return ca, cert, key


def wait_for_port(address: str, port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((address, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@dataclass
class Pebble:
    address: str
    folder: Path
    processes: list

    @property
    def directory(self) -> str:
        return f"https://{self.address}:{ACME_PORT}/dir"

    def point(self, domain: str, address: str) -> None:
        """The mock DNS answers `domain` with `address` (A record)."""
        body = json.dumps({"host": domain.rstrip(".") + ".", "addresses": [address]}).encode()
        request = urllib.request.Request(f"http://{self.address}:{DNS_MANAGEMENT_PORT}/add-a", data=body)
        urllib.request.urlopen(request, timeout=10).read()

    def root(self) -> str:
        """The root pebble issues under (made at its start), PEM."""
        context = ssl.create_default_context(cafile=str(self.folder / "ca.pem"))
        url = f"https://{self.address}:{MANAGEMENT_PORT}/roots/0"
        return urllib.request.urlopen(url, context=context, timeout=10).read().decode()

    def stop(self) -> None:
        for proc in self.processes:
            proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def start(address: str, folder: Path) -> Pebble:
    """pebble and its mock DNS listening on `address` (a sandbox's host-side address)."""
    _, cert, key = make_tls_ca(folder, address)
    config = folder / "pebble.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"{address}:{ACME_PORT}", "managementListenAddress": f"{address}:{MANAGEMENT_PORT}",
        "certificate": str(cert), "privateKey": str(key), "httpPort": 80, "tlsPort": 443,
        "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
    log = (folder / "pebble.log").open("w")
    dns = subprocess.Popen(["pebble-challtestsrv", "-defaultIPv4", "", "-defaultIPv6", "",
                            "-dns01", f"{address}:{DNS_PORT}", "-management", f"{address}:{DNS_MANAGEMENT_PORT}",
                            "-http01", "", "-https01", "", "-tlsalpn01", ""],
                           stdout=log, stderr=subprocess.STDOUT)
    env = {"PATH": "/usr/bin:/bin", "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
    acme = subprocess.Popen(["pebble", "-config", str(config), "-dnsserver", f"{address}:{DNS_PORT}"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    pebble = Pebble(address, folder, [acme, dns])
    try:
        wait_for_port(address, DNS_MANAGEMENT_PORT)
        wait_for_port(address, ACME_PORT)
        wait_for_port(address, MANAGEMENT_PORT)
    except OSError:
        pebble.stop()
        raise
    return pebble


def trust_files(server: Pebble) -> tuple[Path, Path]:
    """(pebble's root, the bundle a host must trust: the listener's CA and the root), written in
    the server's folder."""
    root, bundle = server.folder / "root.pem", server.folder / "trusted.pem"
    root.write_text(server.root())
    bundle.write_text((server.folder / "ca.pem").read_text() + root.read_text())
    return root, bundle


USAGE = """pebble (a test ACME server) for a sandbox host, until Ctrl-C. Trying HTTPS by hand:

  .venv/bin/python -m tests.integration.pebble --sandbox NAME --domain shop.example.org [--no-dns]

--no-dns: the domain does not resolve yet (a failed issuance, as when DNS is not set up); the
command to point it later is printed."""


def _interrupt(*_):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    import argparse
    import signal
    import tempfile

    from toolkit import sandbox

    parser = argparse.ArgumentParser(prog="python -m tests.integration.pebble", description=USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sandbox", required=True, help="the sandbox's name (invoke sandbox.up --name NAME)")
    parser.add_argument("--domain", required=True, help="the domain to get a certificate for, e.g. shop.example.org")
    parser.add_argument("--no-dns", action="store_true", help="leave the domain unresolved for now")
    args = parser.parse_args(argv)
    if not available():
        print("error: pebble, pebble-challtestsrv or openssl is missing\n  next: scripts/bootstrap (installs them)")
        return 2
    box = sandbox.get(args.sandbox)
    if box is None or not box.running:
        print(f"error: no running sandbox named {args.sandbox}\n  next: .venv/bin/invoke sandbox.up --name {args.sandbox}")
        return 2
    server = start(box.host_address, Path(tempfile.mkdtemp(prefix="pebble-")))
    try:
        root, bundle = trust_files(server)
        point_cmd = (f"curl -d '{{\"host\":\"{args.domain}.\",\"addresses\":[\"{box.address}\"]}}' "
                     f"http://{server.address}:{DNS_MANAGEMENT_PORT}/add-a")
        if not args.no_dns:
            server.point(args.domain, box.address)
        print(f"""pebble's directory: {server.directory} (its mock DNS: {args.domain} -> """
              f"""{"nothing yet" if args.no_dns else box.address})

Add to the app's deploy.toml ([app] domains = ["{args.domain}"]):

[tls]
mode = "letsencrypt"
email = "ops@{args.domain}"
acme_directory = "{server.directory}"

[proxy]
# the sandbox's own proxy, and pebble's CAs trusted by the host (for this test only)
http = "{box.proxy_url}"
https = "{box.proxy_url}"
no_proxy = ["localhost", "127.0.0.1", "::1", "{server.address}"]
ca_bundle = "{bundle}"

then: .venv/bin/invoke deploy --host {box.ssh_alias} --app APP
check: curl -I --cacert {root} --resolve {args.domain}:443:{box.address} https://{args.domain}/
{"point the domain at the sandbox: " + point_cmd if args.no_dns else ""}
Ctrl-C stops pebble.""", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops pebble as Ctrl-C does
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
