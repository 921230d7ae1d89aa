"""The example apps: each imports and answers through its WSGI entry (the one deploy.toml resolves to).

Each app runs in its own Python process (the examples share module names like ``app``, and Django's
settings are process-wide); a small driver calls the WSGI callable with PEP 3333 environs and
prints the responses as JSON.
"""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# The toolkit is not an installed package: make the repository importable when pytest
# runs without `pythonpath = .` (as tests/server/*.py do for the server).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from toolkit.config import load_app_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

DRIVER = textwrap.dedent(r'''
    import importlib, io, json, os, sys
    from wsgiref.util import setup_testing_defaults

    app_dir, wsgi, setup, requests = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    sys.path.insert(0, app_dir)
    os.chdir(app_dir)
    if setup == "django":
        import django
        from django.conf import settings
        from django.core.management import call_command
        django.setup()
        settings.STATIC_ROOT = os.environ["TEST_STATIC_ROOT"]   # not the repository's staticfiles/
        call_command("migrate", verbosity=0, interactive=False)
        call_command("collectstatic", verbosity=0, interactive=False)

    module_name, _, attr = wsgi.partition(":")
    target = getattr(importlib.import_module(module_name), attr.removesuffix("()"))
    app = target() if attr.endswith("()") else target

    results = []
    for req in requests:
        body = req.get("body", "").encode()
        environ = {"REQUEST_METHOD": req.get("method", "GET"), "PATH_INFO": req["path"],
                   "HTTP_HOST": "localhost", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
                   "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
        if body:
            environ["CONTENT_TYPE"] = req.get("content_type", "application/x-www-form-urlencoded")
        for name, value in req.get("headers", {}).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        setup_testing_defaults(environ)
        captured = {}
        def start_response(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
        chunks = app(environ, start_response)
        try:
            data = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        results.append({"status": int(captured["status"].split()[0]),
                        "headers": captured["headers"], "body": data.decode("utf-8", "replace")})
    print(json.dumps(results))
''')


def call_app(name, requests, tmp_path, extra_env=None):
    cfg = load_app_config(EXAMPLES / name)
    env = {"PATH": "/usr/bin:/bin", "APP_DATA_DIR": str(tmp_path), "APP_MEDIA_DIR": str(tmp_path / "media"),
           "TEST_STATIC_ROOT": str(tmp_path / "static"), **(extra_env or {})}
    if cfg.django:
        env["DJANGO_SETTINGS_MODULE"] = cfg.django.settings
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, str(cfg.app_dir), cfg.wsgi, cfg.framework, json.dumps(requests)],
        capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def header(response, name):
    return [v for k, v in response["headers"] if k.lower() == name.lower()]


# --------------------------------------------------------------------------- Flask

def test_flask_example_answers(tmp_path):
    index, health, posted, empty, page = call_app("flask", [
        {"path": "/"},
        {"path": "/healthz"},
        {"path": "/messages", "method": "POST", "body": "text=hello+pronghorn"},
        {"path": "/messages", "method": "POST", "body": "text="},
        {"path": "/"},
    ], tmp_path)
    assert index["status"] == 200 and "Hello from Flask on pronghorn" in index["body"]
    assert (health["status"], health["body"]) == (200, "ok")
    assert posted["status"] == 201 and "hello pronghorn" in posted["body"]
    assert empty["status"] == 400
    assert "<li>hello pronghorn</li>" in page["body"]


# --------------------------------------------------------------------------- Bottle

def test_bottle_example_answers(tmp_path):
    index, health, echoed, bad, static = call_app("bottle", [
        {"path": "/"},
        {"path": "/healthz"},
        {"path": "/echo", "method": "POST", "body": '{"n": 1}', "content_type": "application/json"},
        {"path": "/echo", "method": "POST", "body": "{nope", "content_type": "application/json"},
        {"path": "/static/style.css"},
    ], tmp_path)
    assert index["status"] == 200 and "Hello from Bottle on pronghorn" in index["body"]
    assert (health["status"], health["body"]) == (200, "ok")
    assert echoed["status"] == 200 and json.loads(echoed["body"]) == {"received": {"n": 1}, "bytes": 8}
    assert bad["status"] == 400
    assert static["status"] == 200 and "font-family" in static["body"]


# --------------------------------------------------------------------------- Django

def test_django_example_answers_with_csrf_and_a_database(tmp_path):
    env = {"SECRET_KEY": "test-only-key", "DEBUG": "false", "ALLOWED_HOSTS": "localhost"}
    index, health = call_app("django", [{"path": "/"}, {"path": "/healthz"}], tmp_path, env)
    assert index["status"] == 200 and "Hello from Django on pronghorn" in index["body"]
    assert (health["status"], health["body"]) == (200, "ok")
    assert (tmp_path / "db.sqlite3").exists(), "the database belongs in APP_DATA_DIR (shared/data)"
    assert (tmp_path / "static" / "notes" / "style.css").exists(), "collectstatic gathers into STATIC_ROOT"

    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', index["body"]).group(1)
    cookie = header(index, "Set-Cookie")[0].split(";")[0]
    no_token, posted, page = call_app("django", [
        {"path": "/", "method": "POST", "body": "text=no+token"},
        {"path": "/", "method": "POST", "body": f"text=signed+note&csrfmiddlewaretoken={token}",
         "headers": {"Cookie": cookie}},
        {"path": "/"},
    ], tmp_path, env)
    assert no_token["status"] == 403
    assert posted["status"] == 302
    assert "<li>signed note</li>" in page["body"] and "no token" not in page["body"]


def test_django_example_refuses_to_start_without_secret_key_in_production(tmp_path):
    cfg = load_app_config(EXAMPLES / "django")
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, str(cfg.app_dir), cfg.wsgi, "wsgi", "[]"],
        capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "DEBUG": "false", "DJANGO_SETTINGS_MODULE": cfg.django.settings})
    assert result.returncode != 0 and "SECRET_KEY is not set" in result.stderr


def test_django_unknown_host_is_rejected(tmp_path):
    env = {"SECRET_KEY": "test-only-key", "ALLOWED_HOSTS": "example.com"}
    (response,) = call_app("django", [{"path": "/healthz"}], tmp_path, env)
    assert response["status"] == 400


# --------------------------------------------------------------------------- errors you can read

# A view that raises, added to a copy of each example (the examples themselves have none).
BOOM = {
    "flask": ("boom.py", "from app import app\n\n\n@app.get('/boom')\ndef boom():\n"
                         "    raise RuntimeError('boom-marker')\n", "boom:app"),
    "bottle": ("boom.py", "from app import app\n\n\n@app.get('/boom')\ndef boom():\n"
                          "    raise RuntimeError('boom-marker')\n", "boom:app"),
    "django": ("guestbook/urls.py", "\n\ndef boom(request):\n    raise RuntimeError('boom-marker')\n\n\n"
                                    "urlpatterns.append(path('boom', boom))\n", "guestbook.wsgi:application"),
}


def serve_and_get(app_dir, wsgi, path, tmp_path, env):
    """Serve `wsgi` with pronghorn on a unix socket, GET `path`, stop the server: (response, stderr)."""
    import socket
    import time

    sock_path = tmp_path / "app.sock"
    err = open(tmp_path / "stderr.log", "w")
    server = subprocess.Popen([str(Path(sys.executable).parent / "pronghorn"), "-b", f"unix:{sock_path}", "-w", "1",
                               "--chdir", str(app_dir), wsgi], stdout=err, stderr=err, env=env)
    try:
        for _ in range(300):  # bounded: 30 s for the server to bind
            if sock_path.exists() or server.poll() is not None:
                break
            time.sleep(0.1)
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(30)
            client.connect(str(sock_path))
            client.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
            response = b""
            while chunk := client.recv(65536):
                response += chunk
    finally:
        server.terminate()
        server.wait(timeout=60)
        err.close()
    return response.decode("utf-8", "replace"), (tmp_path / "stderr.log").read_text()


@pytest.mark.parametrize("name", ["flask", "django", "bottle"])
def test_a_500_shows_the_client_no_traceback_and_the_error_log_one(tmp_path, name):
    """With DEBUG off, an exception in a view: a bare 500 for the client, the traceback on the
    server's stderr (the journal on a host, where `invoke logs` reads it)."""
    import shutil

    app_dir = tmp_path / name
    shutil.copytree(EXAMPLES / name, app_dir, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    target, code, wsgi = BOOM[name]
    with open(app_dir / target, "a") as out:
        out.write(code)
    env = {"PATH": "/usr/bin:/bin", "APP_DATA_DIR": str(tmp_path), "SECRET_KEY": "test-only-key",
           "DEBUG": "false", "ALLOWED_HOSTS": "localhost"}
    response, stderr = serve_and_get(app_dir, wsgi, "/boom", tmp_path, env)
    assert response.startswith("HTTP/1.1 500"), response[:300]
    assert "Traceback" not in response and "boom-marker" not in response, response
    assert "Traceback (most recent call last)" in stderr and "RuntimeError: boom-marker" in stderr, stderr


# --------------------------------------------------------------------------- packaging

@pytest.mark.parametrize("name", ["flask", "django", "bottle"])
def test_example_has_deploy_config_pinned_requirements_and_static_files(name):
    cfg = load_app_config(EXAMPLES / name)
    lines = [line.strip() for line in (cfg.app_dir / cfg.requirements).read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines, "requirements.txt lists the framework"
    for line in lines:
        assert not line.lower().startswith("pronghorn"), "the toolkit installs the server itself"
        assert ">=" in line and "<" in line.replace("<=", ""), f"{line!r}: pin a range (>=X,<Y)"
    assert cfg.health.path == "/healthz"
    static_sources = list(cfg.app_dir.glob("static/*.css")) + list(cfg.app_dir.glob("*/static/**/*.css"))
    assert static_sources, "the example ships static files"
