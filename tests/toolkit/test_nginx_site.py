"""The rendered nginx site's safe defaults, checked on a real nginx on loopback: uploads never
run as the site (CSP sandbox, nosniff, non-images downloaded), the usual security headers unless
the app sends its own, no version in `Server:`, forged proxy headers dropped before the app, and
a clear 503 page at once when the app does not answer."""

import shutil
import socket
import sys
from pathlib import Path

import pytest

from tests.toolkit.test_render import by_path, connects, example, free_port, start, stop
from toolkit.render import render_all, unavailable_page

requests = pytest.importorskip("requests")

HERE = Path(__file__).resolve().parent
HOST = {"Host": "app.example"}
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
       b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
       b"\x00\x00IEND\xaeB`\x82")


@pytest.fixture
def site(tmp_path):
    """nginx with the rendered site on a loopback port, proxying to headers_app under pronghorn;
    yields (base URL, a function stopping the app)."""
    pronghorn = Path(sys.executable).parent / "pronghorn"
    if not pronghorn.exists() or not shutil.which("nginx"):
        pytest.skip("needs the pronghorn server in the venv (scripts/bootstrap) and nginx")
    cfg = example("flask", {"app.domains": ["app.example"], "app.ipv6": False})
    media = tmp_path / "media"
    media.mkdir()
    (media / "page.html").write_text("<script>alert(document.cookie)</script>")
    (media / "pic.png").write_bytes(PNG)
    (media / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>')
    sock, port, page = tmp_path / "pronghorn.sock", free_port(), tmp_path / "unavailable.html"
    rendered = by_path(render_all(cfg))
    page.write_text(rendered[unavailable_page(cfg)].content)
    (tmp_path / "maintenance.html").write_text(rendered[cfg.layout.maintenance_page].content)
    text = rendered[f"/etc/nginx/sites-available/{cfg.name}.conf"].content
    for old, new in ((cfg.layout.socket_path, str(sock)), (cfg.layout.media_dir, str(media)),
                     ("/var/log/nginx/", f"{tmp_path}/"), ("listen 80", f"listen 127.0.0.1:{port}"),
                     (unavailable_page(cfg), str(page)), (cfg.layout.current_dir, str(tmp_path)),
                     (cfg.layout.maintenance_flag, str(tmp_path / "maintenance-on")),
                     (cfg.layout.maintenance_page, str(tmp_path / "maintenance.html"))):
        text = text.replace(old, new)
    (tmp_path / "site.conf").write_text(text)
    conf = tmp_path / "nginx.conf"
    # types: nginx.conf's own mime types, which a host's nginx.conf includes.
    conf.write_text(f"daemon off;\nuser root root;\nworker_processes 1;\npid {tmp_path}/nginx.pid;\n"
                    f"error_log {tmp_path}/error.log;\nevents {{}}\nhttp {{\ninclude /etc/nginx/mime.types;\n"
                    f"access_log {tmp_path}/access.log;\ninclude {tmp_path}/site.conf;\n}}\n")
    server = start([str(pronghorn), "-b", f"unix:{sock}", "--chdir", str(HERE), "-w", "1", "headers_app:app"],
                   lambda: connects(sock), "pronghorn")
    try:
        nginx = start(["nginx", "-c", str(conf), "-p", str(tmp_path)],
                      lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, "nginx")
        try:
            yield f"http://127.0.0.1:{port}", lambda: stop(server)
        finally:
            stop(nginx)
    finally:
        if server.poll() is None:
            stop(server)


def get(url, **headers):
    return requests.get(url, headers={**HOST, **headers}, timeout=10)


@pytest.mark.slow
def test_uploads_never_run_as_the_site(site):
    base, _ = site
    html = get(base + "/media/page.html")
    assert html.status_code == 200
    assert html.headers["Content-Security-Policy"] == "sandbox"
    assert html.headers["X-Content-Type-Options"] == "nosniff"
    assert html.headers["Content-Disposition"] == "attachment"
    svg = get(base + "/media/logo.svg")
    assert svg.headers["Content-Disposition"] == "attachment"   # SVG can carry scripts
    png = get(base + "/media/pic.png")
    assert png.status_code == 200 and png.content == PNG
    assert "Content-Disposition" not in png.headers              # images stay inline
    assert png.headers["Content-Security-Policy"] == "sandbox"


@pytest.mark.slow
def test_security_headers_unless_the_app_sets_its_own(site):
    base, _ = site
    page = get(base + "/")
    assert page.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert page.headers["Server"] == "nginx"                     # server_tokens off: no version
    own = get(base + "/own-frame")
    assert own.headers["X-Frame-Options"] == "DENY"              # the app's, not doubled
    assert get(base + "/.env").headers["X-Frame-Options"] == "SAMEORIGIN"


@pytest.mark.slow
def test_forged_proxy_headers_never_reach_the_app(site):
    base, _ = site
    seen = get(base + "/", **{"X-Forwarded-Ssl": "on", "X-Forwarded-Protocol": "https",
                              "X-Forwarded-Host": "evil.example", "Forwarded": "proto=https",
                              "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
                              "X-Real-IP": "203.0.113.9"}).json()
    for forged in ("X_FORWARDED_SSL", "X_FORWARDED_PROTOCOL", "X_FORWARDED_HOST", "FORWARDED"):
        assert forged not in seen, seen
    assert seen["X_FORWARDED_FOR"] == "127.0.0.1" and seen["X_REAL_IP"] == "127.0.0.1"
    assert seen["X_FORWARDED_PROTO"] == "http" and seen["HOST"] == "app.example"


@pytest.mark.slow
def test_app_down_answers_the_503_page_at_once(site):
    base, stop_app = site
    stop_app()                                                   # the socket is gone: refused
    down = get(base + "/anything")
    assert down.status_code == 503
    assert "being deployed or is down" in down.text
    assert down.headers["Retry-After"] == "30"
    assert down.headers["Content-Type"].startswith("text/html")
    assert get(base + "/.pronghorn/unavailable.html").status_code == 404   # internal only


@pytest.mark.slow
def test_maintenance_flag_spares_requests_from_the_host_itself(site, tmp_path):
    """With the flag file there, a request from the host itself (the deploy's health check; this
    test's nginx is on loopback) still reaches the app, without a reload; the page is internal.
    The 503 visitors get is proven on a sandbox host (tests/integration/test_maintenance.py)."""
    base, _ = site
    (tmp_path / "maintenance-on").write_text("2026-01-01T00:00:00Z someone\n")
    answer = get(base + "/")
    assert answer.status_code == 200 and "Retry-After" not in answer.headers
    assert get(base + "/.pronghorn/maintenance.html").status_code == 404   # internal only
