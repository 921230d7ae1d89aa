"""HTTP/1.1 for pronghorn: a sans-I/O strict request parser (`parser`) and its errors (`errors`)."""

from .errors import HTTPError
from .parser import BODY, HEAD, IDLE, Limits, Request, RequestParser

__all__ = ["HTTPError", "RequestParser", "Limits", "Request", "IDLE", "HEAD", "BODY"]
