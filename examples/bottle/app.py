"""The Bottle example app: a page, a health check, a POST endpoint, static files.

Run it locally with `pronghorn app:app`.
"""

import json
import os

import bottle
from bottle import Bottle, request, response, static_file

app = Bottle()

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


@app.get("/")
def index():
    return ("<!doctype html><html><head><title>Pronghorn Bottle example</title>"
            '<link rel="stylesheet" href="/static/style.css"></head>'
            "<body><h1>Hello from Bottle on pronghorn</h1></body></html>")


@app.get("/healthz")
def healthz():
    response.content_type = "text/plain"
    return "ok"


@app.post("/echo")
def echo():
    """Echo a JSON body back with its size: shows request bodies reach the app intact."""
    try:
        data = json.loads(request.body.read() or b"null")
    except ValueError:
        response.status = 400
        response.content_type = "text/plain"
        return "expected a JSON body\n"
    response.content_type = "application/json"
    return json.dumps({"received": data, "bytes": request.content_length})


@app.get("/static/<path:path>")
def static(path):
    # nginx serves /static/ itself on a deployed host; this route is for running locally.
    return static_file(path, root=STATIC_DIR)


if __name__ == "__main__":
    bottle.run(app, host="127.0.0.1", port=8080)
