"""pronghorn: a fast, strict pre-fork WSGI (PEP 3333) HTTP/1.1 server."""

__version__ = "0.1.0"
SERVER_SOFTWARE = "pronghorn/" + __version__
