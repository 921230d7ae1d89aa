"""A WSGI app for the live nginx tests (tests/toolkit/test_nginx_site.py): answers the request
headers it received as JSON; /own-frame also sends its own X-Frame-Options, as Django does."""

import json


def app(environ, start_response):
    headers = [("Content-Type", "application/json")]
    if environ["PATH_INFO"] == "/own-frame":
        headers.append(("X-Frame-Options", "DENY"))
    received = {key[5:]: value for key, value in environ.items() if key.startswith("HTTP_")}
    start_response("200 OK", headers)
    return [json.dumps(received).encode()]
