"""The programs the toolkit runs on a host (toolkit/onhost), run here with this machine's Python:
as the files themselves, and as the bundled source (`onhost.program`) the host gets."""

import http.server
import subprocess
import sys
import threading

import pytest

from toolkit import onhost

ONHOST = onhost.HERE


def run_file(name, *args, **kw):
    return subprocess.run([sys.executable, str(ONHOST / f"{name}.py"), *args], capture_output=True,
                          text=True, timeout=30, **kw)


def run_program(name, *args, **kw):
    """As on the host: python3 -c SOURCE ARGS, from another folder."""
    return subprocess.run([sys.executable, "-c", onhost.program(name), *args], capture_output=True,
                          text=True, timeout=30, **kw)


@pytest.fixture
def site():
    """A local http server: /healthz answers 200 "ok" for Host: shop.example, /broken 500."""
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers["Host"]))
            ok = self.path == "/healthz" and self.headers["Host"] == "shop.example"
            body = b"ok" if ok else b"database unreachable"
            self.send_response(200 if ok else 500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("runner", [run_file, run_program])
def test_health_check_passes_with_the_real_host_header(site, runner):
    port, seen = site
    done = runner("health_check", "shop.example", "/healthz", "200", "5", "5", "127.0.0.1", str(port))
    assert done.returncode == 0 and done.stdout.split() == ["OK", "200"]
    assert seen == [("/healthz", "shop.example")]


def test_health_check_gives_up_after_the_same_wrong_answer(site):
    port, seen = site
    done = run_program("health_check", "shop.example", "/broken", "200", "20", "3", "127.0.0.1", str(port))
    assert done.returncode == 1
    assert done.stdout.splitlines() == ["FAIL 500", "database unreachable"]
    assert len(seen) == 3  # three identical answers, long before the 20 s timeout


def test_health_check_without_an_answer_says_why():
    done = run_program("health_check", "x", "/", "200", "0.3", "5", "127.0.0.1", "9")
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == "FAIL 0"
    assert "Error" in done.stdout  # e.g. ConnectionRefusedError: ...


@pytest.mark.parametrize("runner", [run_file, run_program])
def test_env_exec_loads_the_env_file_then_runs_the_program(tmp_path, runner):
    env = tmp_path / ".env"
    env.write_text("# the app's settings\nSECRET_KEY='a b$c'\nexport DEBUG=0\nQUOTED=\"it's \\\"x\\\"\"\n")
    code = "import os; print(os.environ['SECRET_KEY'], os.environ['DEBUG'], os.environ['QUOTED'], sep='|')"
    done = runner("env_exec", str(env), sys.executable, "-c", code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "a b$c|0|it's \"x\""


def test_env_exec_reads_with_the_one_env_reader():
    assert "import envfile" in onhost.source("env_exec")
    assert repr(onhost.source("envfile")) in onhost.program("env_exec")  # shipped along


def test_import_check(tmp_path):
    (tmp_path / "site_app.py").write_text("def app(environ, start_response):\n    return []\n"
                                          "def create_app():\n    return app\nNOT_CALLABLE = 1\n")
    ok = run_program("import_check", "site_app:app", cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.strip() == "ok site_app:app"
    assert run_program("import_check", "site_app:create_app()", cwd=tmp_path).returncode == 0
    bad = run_program("import_check", "site_app:NOT_CALLABLE", cwd=tmp_path)
    assert bad.returncode != 0 and "is not callable" in bad.stderr
    (tmp_path / "broken.py").write_text("raise RuntimeError('broken release')\n")
    broken = run_program("import_check", "broken:app", cwd=tmp_path)
    assert broken.returncode != 0 and "RuntimeError: broken release" in broken.stderr


def test_health_check_behind_a_load_balancer_says_https_as_it_would():
    """forwarded-https: plain http, X-Forwarded-Proto: https (an app that redirects http to https
    answers the check as it answers visitors)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            secure = self.headers.get("X-Forwarded-Proto") == "https"
            self.send_response(200 if secure else 301)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = str(server.server_address[1])
        done = run_program("health_check", "shop.example", "/", "200", "5", "2", "127.0.0.1", port, "forwarded-https", "0")
        assert done.returncode == 0 and done.stdout.split() == ["OK", "200"], done.stdout + done.stderr
        plain = run_program("health_check", "shop.example", "/", "200", "5", "2", "127.0.0.1", port)
        assert plain.returncode == 1 and plain.stdout.split()[:2] == ["FAIL", "301"]
    finally:
        server.shutdown()
        server.server_close()
