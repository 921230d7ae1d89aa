"""`pronghorn ctl` and /metrics while wrk loads the server: the answers an operator reads during
real traffic add up, and steering the workers drops no request.

wrk runs bounded (a fixed duration, or SIGINT once the steering is done, with -d as the bound) on
a few connections. What wrk reports is compared with what the server counts:

* wrk counts a request when its whole response arrived. When wrk stops, each connection can
  have one more request that the server answered but wrk did not read (wrk does not pipeline), so
  the server's count lies in [wrk's, wrk's + connections]; that is the tolerance used here.
* Workers publish their counters once a second; a count is read as "settled" when two reads more
  than a second apart agree.
"""

import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "server"))

from tests.server.harness import serve  # noqa: E402
from tests.server.test_arbiter import wait_for  # noqa: E402
from tests.server.test_control import serving_pids, show  # noqa: E402
from tests.server.test_metrics import free_port, samples, scrape  # noqa: E402

CONNECTIONS = 8
TOTAL = 'pronghorn_request_duration_seconds_count'
CLASSES = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")
# One request in four is a 404: the status classes must be told apart under load.
MIX_LUA = """
local n = 0
request = function()
  n = n + 1
  if n % 4 == 0 then return wrk.format("GET", "/no-such-page") end
  return wrk.format("GET", "/")
end
"""


@dataclass
class WrkResult:
    requests: int
    non_2xx_3xx: int
    socket_errors: dict
    mean_latency: float  # seconds, request written to response read
    text: str


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def start_wrk(url, seconds, script=None):
    cmd = ["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--timeout", "10s"]
    if script is not None:
        cmd += ["-s", str(script)]
    return subprocess.Popen(cmd + [url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_result(proc, timeout):
    text = proc.communicate(timeout=timeout)[0]
    assert proc.returncode == 0, text
    found = re.search(r"(\d+) requests in ", text)
    assert found, text
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    socket_errors = dict(zip(("connect", "read", "write", "timeout"),
                             (int(v) for v in errors.groups()) if errors else (0, 0, 0, 0)))
    latency = re.search(r"Latency\s+([\d.]+)(us|ms|s|m)\s", text)
    assert latency, text
    mean = float(latency.group(1)) * _UNITS[latency.group(2)]
    return WrkResult(int(found.group(1)), int(non.group(1)) if non else 0, socket_errors, mean, text)


def consistent(scraped):
    """What must hold in any one scrape, under load or not."""
    classes = [scraped[f'pronghorn_requests_total{{status="{c}"}}'] for c in CLASSES]
    buckets = [v for k, v in scraped.items() if k.startswith("pronghorn_request_duration_seconds_bucket")]
    assert buckets == sorted(buckets), buckets  # cumulative
    # every counted response has a status class and a place in the histogram
    assert sum(classes) == buckets[-1] == scraped[TOTAL], scraped
    assert 0 <= scraped["pronghorn_requests_in_flight"] <= CONNECTIONS + 2
    assert scraped["pronghorn_request_duration_seconds_sum"] >= 0


def settled(port, sock=None, at_least=0):
    """A scrape (and `show stats`) once the workers' counts stopped moving."""
    last = {}

    def check():
        scraped = samples(scrape(port)[2])
        requests = show(sock, "show", "stats")["requests"] if sock else None
        key = (scraped[TOTAL], requests)
        if key == last.get("key") and scraped[TOTAL] >= at_least:
            return scraped, requests
        last["key"] = key
        return None

    return wait_for(check, timeout=60, interval=1.3)  # workers publish once a second


def test_metrics_and_stats_under_wrk_load_add_up_to_what_wrk_counted(tmp_path):
    port, sock, script = free_port(), tmp_path / "ctl.sock", tmp_path / "mix.lua"
    script.write_text(MIX_LUA)
    with serve("tests.server.apps:app", "-w", "2", "--metrics-bind", f"127.0.0.1:{port}",
               "--control-socket", str(sock)) as srv:
        wait_for(lambda: serving_pids(sock, 2))
        before, stats_before = settled(port, sock, at_least=1)  # (the harness's readiness probe)
        load = start_wrk(srv.url, 4, script)
        scrapes, stats = [before], [stats_before]
        while load.poll() is None:  # bounded by wrk's -d
            scrapes.append(samples(scrape(port)[2]))
            consistent(scrapes[-1])
            stats.append(show(sock, "show", "stats")["requests"])
            time.sleep(0.2)
        result = wrk_result(load, timeout=60)
        after, stats_after = settled(port, sock, at_least=before[TOTAL] + result.requests)

    assert result.requests > 0 and result.socket_errors == dict.fromkeys(result.socket_errors, 0), result.text
    assert len(scrapes) > 1, "the load ended before it was observed"
    for earlier, later in zip(scrapes, scrapes[1:] + [after]):  # counters never go down
        for key, value in earlier.items():
            if "_total" in key or key.endswith(("_count", "_sum")) or "_bucket" in key:
                assert later[key] >= value, key
    assert stats == sorted(stats)  # no worker was replaced: the live workers' sum only grows

    def delta(key):
        return after[key] - before[key]

    served, missing = result.requests - result.non_2xx_3xx, result.non_2xx_3xx
    assert result.requests <= delta(TOTAL) <= result.requests + CONNECTIONS
    assert served <= delta('pronghorn_requests_total{status="2xx"}') <= served + CONNECTIONS
    assert missing <= delta('pronghorn_requests_total{status="4xx"}') <= missing + CONNECTIONS
    assert missing > 0 and served > missing  # the mix: a 404 in four
    assert delta('pronghorn_requests_total{status="5xx"}') == 0
    assert delta('pronghorn_requests_total{status="other"}') == 0
    # `show stats` counts the same responses of the same two workers (each counts both ways in
    # the same place, published together)
    assert stats_after - stats_before == delta(TOTAL)
    # The server's latency (app call to the response handed to the kernel) lies inside what wrk
    # measured for the same request (written to read): the means compare, whatever the speed.
    # (1 % for wrk's two printed decimals, a little for the few requests wrk did not count.)
    server_mean = delta("pronghorn_request_duration_seconds_sum") / delta(TOTAL)
    assert 0 < server_mean <= result.mean_latency * 1.01 + 1e-4, (server_mean, result.text)
    consistent(after)


def test_worker_add_remove_and_reload_under_wrk_load_drop_no_request(tmp_path):
    port, sock = free_port(), tmp_path / "ctl.sock"
    with serve("tests.server.apps:hello", "-w", "2", "--metrics-bind", f"127.0.0.1:{port}",
               "--control-socket", str(sock)) as srv:
        first = wait_for(lambda: serving_pids(sock, 2))
        before, _ = settled(port, at_least=1)
        load = start_wrk(srv.url, 180)  # stopped below once the steering is done; -d is the bound
        totals = [before[TOTAL]]

        def watched(predicate):
            """Wait for predicate while checking each scrape under the load."""
            def check():
                scraped = samples(scrape(port)[2])
                consistent(scraped)
                assert scraped[TOTAL] >= totals[-1]  # never goes down, workers come and go
                totals.append(scraped[TOTAL])
                return predicate()
            return wait_for(check, timeout=60, interval=0.2)

        assert show(sock, "worker", "add") == {"added": 1, "previous": 2, "total": 3}
        three = watched(lambda: serving_pids(sock, 3))
        assert set(first) < set(three)
        stats = show(sock, "show", "stats")
        assert stats["workers"] == 3 and stats["workers_wanted"] == 3

        assert show(sock, "worker", "remove") == {"removed": 1, "previous": 3, "total": 2}
        two = watched(lambda: serving_pids(sock, 2))
        assert set(two) < set(three)

        assert show(sock, "reload") == {"status": "reloading"}
        renewed = watched(lambda: (lambda p: p if p and not set(p) & set(two) else None)(
            serving_pids(sock, 2)))
        workers = show(sock, "show", "workers")["workers"]
        assert {w["generation"] for w in workers} == {1}
        time.sleep(1)  # the new workers serve some of the load too
        still_running = load.poll() is None
        load.send_signal(signal.SIGINT)  # wrk prints its summary and exits
        result = wrk_result(load, timeout=60)
        after, _ = settled(port, at_least=totals[-1])
        stats = show(sock, "show", "stats")

    assert still_running, "wrk ended before the steering was done: the load did not cover it"
    assert result.requests > 0 and result.non_2xx_3xx == 0, result.text
    assert result.socket_errors == dict.fromkeys(result.socket_errors, 0), result.text
    assert len(renewed) == 2
    # the replaced workers' counts stay in the totals (the master keeps what exited ones counted)
    counted = after[TOTAL] - before[TOTAL]
    assert result.requests <= counted <= result.requests + CONNECTIONS
    assert after['pronghorn_requests_total{status="2xx"}'] - before['pronghorn_requests_total{status="2xx"}'] == counted
    assert after["pronghorn_workers"] == 2 and after["pronghorn_workers_wanted"] == 2
    assert stats["restarts"] == dict.fromkeys(stats["restarts"], 0)  # chosen stops, not restarts
    consistent(after)
