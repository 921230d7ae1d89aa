"""Wait until this app host's nginx answers no request but our own (a rolling deploy, after the
host went out of the load balancer's rotation: its in-flight requests finish before the switch).

    python3 nginx_drain.py URL TIMEOUT

Reads nginx's stub_status at URL (the app site's /.pronghorn/nginx-status, loopback only) every
0.1 s: "Writing" counts the requests nginx is answering, this one included. Prints `drained` once
it is 1 (exit 0), or `busy N` when TIMEOUT seconds pass (exit 0 too: the switch is safe anyway,
the restart lets pronghorn finish what it accepted; the deploy only says so).
"""

import re
import sys
import time
import urllib.request


def writing(url):
    with urllib.request.urlopen(url, timeout=5) as resp:
        match = re.search(r"Writing: (\d+)", resp.read().decode("ascii", "replace"))
    return int(match.group(1)) if match else 0


def main(url, timeout):
    deadline = time.monotonic() + timeout
    busy = 0
    while time.monotonic() < deadline:
        try:
            busy = writing(url) - 1
        except OSError as exc:
            print(f"no status: {exc}")
            return 0
        if busy <= 0:
            print("drained")
            return 0
        time.sleep(0.1)
    print(f"busy {busy}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2])))
