"""A bounded request loop: "no failed request while the site is redeployed, restarted, rolled back".

Plain Python (no pytest), so the integration tests (the `request_loop` fixture) and the deploy
benchmark (bench/deploy_times.py) count failed requests the same way.
"""

class RequestLoop:
    """GET `url` from `clients` threads until stopped, or `max_requests` in all, or `max_seconds`.

    Each client keeps its connection to nginx alive (as a browser does); nginx opens a new one to
    the app for every request, which is what a restart could break. Everything that is not the
    expected status - another status, a reset, a timeout - is recorded in `failures`.
    `data` (a dict) makes every request a POST of that form instead of a GET.
    `requests` keeps every request as (started, seconds, failure or None), `started` on
    time.monotonic(): a test can tell the requests sent before an event from those after it.
    """

    def __init__(self, url, clients=4, max_requests=6000, max_seconds=90, expect=200, data=None):
        import threading

        self.url, self.expect, self.data = url, expect, data
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.done, self.failures, self.requests = 0, [], []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self):
        import time

        import requests

        deadline = time.monotonic() + self.max_seconds
        with requests.Session() as session:
            while not self._stop.is_set() and time.monotonic() < deadline:
                with self._lock:
                    if self.done >= self.max_requests:
                        return
                    self.done += 1
                started = time.monotonic()
                try:
                    if self.data is None:
                        resp = session.get(self.url, timeout=30)
                    else:
                        resp = session.post(self.url, data=self.data, timeout=30)
                    failure = None if resp.status_code == self.expect else resp.status_code
                except requests.RequestException as exc:
                    failure = repr(exc)
                with self._lock:
                    self.requests.append((started, time.monotonic() - started, failure))
                    if failure is not None:
                        self.failures.append(failure)

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(self.max_seconds + 35)

    def summary(self) -> str:
        return f"{len(self.failures)} of {self.done} requests failed: {self.failures[:10]}"
