"""Real frameworks served end to end: Flask, Django and Bottle apps over real sockets.

Each app is written to a temporary directory and served with ``--pythonpath`` (as users would with
their own project), then exercised with plain requests: GET, JSON and form POSTs, chunked uploads,
streaming responses, file responses (Django's FileResponse uses wsgi.file_wrapper) and errors.
"""

import json
import os
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [REPO, os.path.join(REPO, "server")]

from tests.server.harness import Reader, request, serve  # noqa: E402

FLASK_APP = '''
from flask import Flask, Response, jsonify, request, stream_with_context

app = Flask(__name__)

@app.get("/")
def index():
    return "flask says hi"

@app.post("/json")
def echo_json():
    data = request.get_json()
    return jsonify(got=data, scheme=request.scheme)

@app.post("/form")
def form():
    return "%s:%s" % (request.form["name"], len(request.files["upload"].read()))

@app.post("/raw")
def raw():
    return "%d bytes" % len(request.get_data())

@app.get("/stream")
def stream():
    def gen():
        for i in range(3):
            yield "line %d\\n" % i
    return Response(stream_with_context(gen()), mimetype="text/plain")

@app.get("/boom")
def boom():
    raise RuntimeError("flask view failed (expected by the test)")
'''

DJANGO_APP = '''
import os
import tempfile

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_app")

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "django_app"
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {}
USE_TZ = True

from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path

def index(request):
    return HttpResponse("django says hi")

def form(request):
    return HttpResponse("%s:%d" % (request.POST["name"], len(request.FILES["upload"].read())))

def raw(request):
    return HttpResponse("%d bytes" % len(request.body))

def info(request):
    return JsonResponse({"path": request.path, "host": request.get_host(),
                         "secure": request.is_secure(), "method": request.method})

def stream(request):
    return StreamingHttpResponse(("chunk %d;" % i for i in range(4)))

_FILE = os.path.join(tempfile.gettempdir(), "pronghorn-django-file-%d" % os.getpid())

def download(request):
    with open(_FILE, "wb") as f:
        f.write(b"0123456789" * 100000)
    return FileResponse(open(_FILE, "rb"))

def boom(request):
    raise RuntimeError("django view failed (expected by the test)")

urlpatterns = [
    path("", index), path("form", form), path("raw", raw), path("info", info),
    path("stream", stream), path("download", download), path("boom", boom),
]

from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
'''

BOTTLE_APP = '''
import bottle

app = bottle.Bottle()

@app.get("/")
def index():
    return "bottle says hi"

@app.post("/json")
def echo_json():
    return {"got": bottle.request.json}

@app.post("/form")
def form():
    return "%s:%d" % (bottle.request.forms.get("name"), len(bottle.request.files.get("upload").file.read()))

@app.get("/hello/<name>")
def hello(name):
    return "hello " + name

@app.get("/boom")
def boom():
    raise RuntimeError("bottle view failed (expected by the test)")
'''


def multipart(name, payload):
    boundary = b"----pronghorn-test"
    body = (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n" + name
            + b"\r\n--" + boundary + b"\r\nContent-Disposition: form-data; name=\"upload\"; "
            b"filename=\"f.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n" + payload
            + b"\r\n--" + boundary + b"--\r\n")
    return b"multipart/form-data; boundary=" + boundary, body


def post(path, ctype, body, extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: app.test\r\nContent-Type: " + ctype
            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


def chunked_post(path, ctype, body):
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 1000]), body[i:i + 1000])
                      for i in range(0, len(body), 1000))
    return (b"POST " + path + b" HTTP/1.1\r\nHost: app.test\r\nContent-Type: " + ctype
            + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")


def get(path):
    return b"GET " + path + b" HTTP/1.1\r\nHost: app.test\r\n\r\n"


@pytest.fixture(scope="module", params=["1", "4"], ids=["inline", "threads4"])
def threads(request):
    return request.param


def serve_source(tmp_path_factory, module, source, attr, threads):
    directory = tmp_path_factory.mktemp(module)
    (directory / (module + ".py")).write_text(textwrap.dedent(source))
    return serve("%s:%s" % (module, attr), "--pythonpath", str(directory), "--threads", threads)


@pytest.fixture(scope="module")
def flask_srv(tmp_path_factory, threads):
    with serve_source(tmp_path_factory, "flask_app", FLASK_APP, "app", threads) as srv:
        yield srv


@pytest.fixture(scope="module")
def django_srv(tmp_path_factory, threads):
    with serve_source(tmp_path_factory, "django_app", DJANGO_APP, "application", threads) as srv:
        yield srv


@pytest.fixture(scope="module")
def bottle_srv(tmp_path_factory, threads):
    with serve_source(tmp_path_factory, "bottle_app", BOTTLE_APP, "app", threads) as srv:
        yield srv


# --- Flask ---------------------------------------------------------------------------------------


def test_flask_get(flask_srv):
    assert request(flask_srv.port, get(b"/"))[0::2] == (200, b"flask says hi")


def test_flask_json_post_and_proxy_scheme(flask_srv):
    status, _, body = request(flask_srv.port, post(b"/json", b"application/json", b'{"a": [1, 2]}',
                                                   b"X-Forwarded-Proto: https\r\n"))
    assert status == 200 and json.loads(body) == {"got": {"a": [1, 2]}, "scheme": "https"}


def test_flask_multipart_upload(flask_srv):
    ctype, body = multipart(b"ann", b"\x00\xff" * 50000)
    assert request(flask_srv.port, post(b"/form", ctype, body))[2] == b"ann:100000"


def test_flask_chunked_upload(flask_srv):
    assert request(flask_srv.port, chunked_post(b"/raw", b"text/plain", b"z" * 12345))[2] == b"12345 bytes"


def test_flask_streaming_response(flask_srv):
    status, headers, body = request(flask_srv.port, get(b"/stream"))
    assert body == b"line 0\nline 1\nline 2\n" and headers["transfer-encoding"] == "chunked"


def test_flask_error_and_404(flask_srv):
    assert request(flask_srv.port, get(b"/boom"))[0] == 500
    assert request(flask_srv.port, get(b"/missing"))[0] == 404
    assert request(flask_srv.port, get(b"/"))[0] == 200


# --- Django --------------------------------------------------------------------------------------


def test_django_get(django_srv):
    assert request(django_srv.port, get(b"/"))[0::2] == (200, b"django says hi")


def test_django_request_info(django_srv):
    status, _, body = request(django_srv.port, get(b"/info"))
    assert json.loads(body) == {"path": "/info", "host": "app.test", "secure": False, "method": "GET"}


def test_django_multipart_upload(django_srv):
    ctype, body = multipart(b"bob", b"\x01" * 70000)
    assert request(django_srv.port, post(b"/form", ctype, body))[2] == b"bob:70000"


def test_django_chunked_upload_reaches_request_body(django_srv):
    # Django reads CONTENT_LENGTH bytes: the server sets it for de-chunked bodies.
    assert request(django_srv.port, chunked_post(b"/raw", b"text/plain", b"q" * 5000))[2] == b"5000 bytes"


def test_django_streaming_response(django_srv):
    status, _, body = request(django_srv.port, get(b"/stream"))
    assert body == b"chunk 0;chunk 1;chunk 2;chunk 3;"


def test_django_file_response(django_srv):
    status, headers, body = request(django_srv.port, get(b"/download"))
    assert status == 200 and body == b"0123456789" * 100000
    assert headers["content-length"] == "1000000"


def test_django_error_is_500_and_server_lives(django_srv):
    assert request(django_srv.port, get(b"/boom"))[0] == 500
    assert request(django_srv.port, get(b"/nope"))[0] == 404
    assert request(django_srv.port, get(b"/"))[0] == 200


# --- Bottle --------------------------------------------------------------------------------------


def test_bottle_routes(bottle_srv):
    assert request(bottle_srv.port, get(b"/"))[0::2] == (200, b"bottle says hi")
    assert request(bottle_srv.port, get(b"/hello/world"))[2] == b"hello world"


def test_bottle_json_and_form(bottle_srv):
    status, _, body = request(bottle_srv.port, post(b"/json", b"application/json", b'{"k": "v"}'))
    assert json.loads(body) == {"got": {"k": "v"}}
    ctype, body = multipart(b"cy", b"abc" * 1000)
    assert request(bottle_srv.port, post(b"/form", ctype, body))[2] == b"cy:3000"


def test_bottle_error(bottle_srv):
    assert request(bottle_srv.port, get(b"/boom"))[0] == 500
    assert request(bottle_srv.port, get(b"/"))[0] == 200


def test_keep_alive_with_a_framework(flask_srv):
    from tests.server.harness import connect

    with connect(flask_srv.port) as s:
        reader = Reader(s)
        for _ in range(3):
            s.sendall(get(b"/"))
            assert reader.response()[2] == b"flask says hi"


# --- Django's database layer in the synchronous app call ------------------------------------------

DJANGO_ORM_APP = '''
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_orm_app")

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "django_orm_app"
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.path.join(os.path.dirname(os.path.abspath(__file__)), "db.sqlite3")}}
USE_TZ = True

from django.db import connection
from django.http import HttpResponse, StreamingHttpResponse
from django.urls import path

def query():
    # connection.cursor() is guarded by async_unsafe: it raises SynchronousOnlyOperation when
    # asyncio reports a running event loop in this thread.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 40 + 2")
        return cursor.fetchone()[0]

def answer(request):
    return HttpResponse("answer %d" % query())

def stream(request):
    return StreamingHttpResponse("row %d;" % query() for _ in range(3))

urlpatterns = [path("answer", answer), path("stream", stream)]

from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
'''


def test_django_orm_query_answers_200_in_either_dispatch_model(tmp_path_factory, threads):
    # Inline (--threads 1) the app runs inside the worker's event-loop callback: Django must still
    # see a plain synchronous context, in the view and while a streamed body is iterated.
    with serve_source(tmp_path_factory, "django_orm_app", DJANGO_ORM_APP, "application", threads) as srv:
        assert request(srv.port, get(b"/answer"))[0::2] == (200, b"answer 42")
        assert request(srv.port, get(b"/stream"))[0::2] == (200, b"row 42;" * 3)
        assert "SynchronousOnlyOperation" not in srv.errors()
