"""The Flask example app that `make demo` deploys: a page, a health check, a form, static files.

Run it locally with `pronghorn app:app` (or `flask --app app run`).
"""

import html
import os

from flask import Flask, request

app = Flask(__name__)
# Errors you can read: an exception in a view answers a bare 500 and Flask logs its traceback
# (app.logger, "Exception on /path [GET]") to the WSGI error stream, which pronghorn writes to
# its error log: stderr, kept by systemd in the journal, where `invoke logs` shows it. (If you
# configure logging yourself, keep a handler on stderr for app.logger or the root logger.)

# Messages posted through the form; per worker process and lost on restart, which is fine for a
# demo (a real app keeps them in a database under APP_DATA_DIR).
MESSAGES = []

PAGE = """<!doctype html>
<html><head><title>Pronghorn Flask example</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body><h1>Hello from Flask on pronghorn</h1>
<p>Served by worker {pid}.</p>
<form method="post" action="/messages"><input name="text"><button>Post</button></form>
<ul>{items}</ul></body></html>
"""


@app.get("/")
def index():
    items = "".join(f"<li>{html.escape(m)}</li>" for m in MESSAGES)
    return PAGE.format(pid=os.getpid(), items=items)


@app.get("/healthz")
def healthz():
    return "ok", 200, {"Content-Type": "text/plain"}


@app.post("/messages")
def post_message():
    text = request.form.get("text", "").strip()
    if not text:
        return "the form field 'text' is empty\n", 400, {"Content-Type": "text/plain"}
    MESSAGES.append(text[:200])
    return f"posted: {text[:200]}\n", 201, {"Content-Type": "text/plain"}
