"""Progress output a person can follow: each step named, timed and marked ok / changed / failed,
stage headings (starting, updating, publishing, finishing), and a final summary per host.

Usage:

    rep = Reporter()
    rep.begin_host("sandbox-dev1")
    with rep.step("apt packages") as st:
        if missing:
            install(missing)
            st.changed(f"installed {', '.join(missing)}")
    rep.end_host(url="http://10.77.1.2/")
    rep.summary()

A step that raises is marked `failed` and the exception goes on up; the caller decides what to
print next (`rep.fail_host(...)`). Colours are used only when the output is a terminal.

Several hosts at once (`tasking.run_on_hosts(..., parallel=N)`): each thread's `begin_host` makes
that host the thread's own current host, and with `parallel` set every line a host's thread
prints starts with the host's name (`sandbox-app1 | ...`), whole lines under one lock, so the
hosts' steps interleave but each line says whose it is; the summary lists the hosts in the order
they were given, not the order they finished.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

OK, CHANGED, FAILED, WOULD = "ok", "changed", "failed", "would change"

_COLOURS = {OK: "32", CHANGED: "33", WOULD: "36", FAILED: "31"}


@dataclass
class Step:
    """One named unit of work. Call `changed()` when it changed something on the host."""

    name: str
    dry: bool = False
    status: str = OK
    note: str = ""
    seconds: float = 0.0

    def changed(self, note: str = "") -> None:
        self.status = WOULD if self.dry else CHANGED
        if note:
            self.note = note

    def info(self, note: str) -> None:
        """Add a short detail shown after the step (without marking it changed)."""
        self.note = note

    @property
    def did_change(self) -> bool:
        return self.status in (CHANGED, WOULD)


@dataclass
class HostResult:
    """What happened on one host: counts, time, the URL, and on failure what to do next."""

    host: str
    steps: list[Step] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    url: str = ""
    error: str = ""
    next_step: str = ""
    skipped: bool = False

    def count(self, status: str) -> int:
        return sum(1 for s in self.steps if s.status == status)

    @property
    def failed(self) -> bool:
        return bool(self.error) or self.count(FAILED) > 0

    @property
    def failures(self) -> int:
        """Failed steps, or 1 for a host that failed between steps (e.g. a rollback that finds
        no release to go back to fails after an ok "deploy lock" step): a failed host never
        reads "0 failed"."""
        return self.count(FAILED) or (1 if self.error else 0)

    @property
    def reason(self) -> str:
        """Why the host failed, in one line: the error's first line, else the failed steps."""
        if self.error:
            return self.error.strip().splitlines()[0]
        names = ", ".join(s.name for s in self.steps if s.status == FAILED)
        return f"failed step: {names}" if names else ""


class Reporter:
    """Prints steps as they finish and keeps per-host results for the final summary."""

    def __init__(self, out=None, colour: bool | None = None, dry: bool = False):
        self.out = out if out is not None else sys.stdout
        if colour is None:
            colour = hasattr(self.out, "isatty") and self.out.isatty()
        self.colour = colour
        self.dry = dry
        self.hosts: list[HostResult] = []
        self.parallel = False  # lines carry their host's name (several hosts at once)
        self._local = threading.local()  # each thread's current host
        self._print_lock = threading.Lock()

    @property
    def current(self) -> HostResult | None:
        return getattr(self._local, "host", None)

    @current.setter
    def current(self, host: HostResult | None) -> None:
        self._local.host = host

    # -- printing -------------------------------------------------------------------------------

    def _paint(self, text: str, status: str) -> str:
        code = _COLOURS.get(status)
        if not self.colour or not code:
            return text
        return f"\033[{code}m{text}\033[0m"

    def line(self, text: str = "") -> None:
        host = self.current if self.parallel else None
        if host is not None:
            text = "\n".join(f"{host.host} | {part}" for part in text.split("\n"))
        with self._print_lock:
            print(text, file=self.out, flush=True)

    def stage(self, name: str) -> None:
        """A heading for a group of steps (the release stages: starting, updating, ...)."""
        self.line(f"  {name}")

    # -- hosts ----------------------------------------------------------------------------------

    def begin_host(self, host: str, slot: int | None = None) -> HostResult:
        """Start reporting on `host` (in this thread). `slot`: its place in the summary, for hosts
        run at once (`reserve`)."""
        self.current = HostResult(host)
        if slot is None:
            self.hosts.append(self.current)
        else:
            self.hosts[slot] = self.current
        title = f"{host} (dry run: nothing will be changed)" if self.dry else host
        self.line(f"== {title}")
        return self.current

    def _host(self) -> HostResult:
        # Steps outside begin_host (e.g. a task run without hosts) still get recorded.
        if self.current is None:
            self.current = HostResult("local")
            self.hosts.append(self.current)
        return self.current

    def end_host(self, url: str = "") -> None:
        host = self._host()
        host.seconds = time.monotonic() - host.started
        host.url = url or host.url

    def fail_host(self, error: str, next_step: str = "") -> None:
        """Record that this host failed; `next_step` is the command or fix the person should try."""
        host = self._host()
        host.seconds = time.monotonic() - host.started
        host.error = error
        host.next_step = next_step
        self.line(self._paint(f"  error: {error}", FAILED))
        if next_step:
            self.line(f"  next: {next_step}")

    def resume(self, host: HostResult) -> None:
        """Report on `host` again (from this thread): a rolling deploy comes back to each app host
        for each of its phases."""
        self.current = host

    def reserve(self, hosts) -> int:
        """Places in the summary for hosts about to run at once, in the order given; returns the
        first one's index (begin_host(host, slot=index + i))."""
        first = len(self.hosts)
        self.hosts.extend(HostResult(h, skipped=True) for h in hosts)
        return first

    def skip_host(self, host: str) -> None:
        """A host not attempted because an earlier one failed."""
        self.hosts.append(HostResult(host, skipped=True))

    # -- steps ----------------------------------------------------------------------------------

    @contextmanager
    def step(self, name: str):
        st = Step(name, dry=self.dry)
        host = self._host()
        host.steps.append(st)
        start = time.monotonic()
        try:
            yield st
        except BaseException:
            st.status = FAILED
            raise
        finally:
            st.seconds = time.monotonic() - start
            self._print_step(st)

    def _print_step(self, st: Step) -> None:
        width = 12 if self.dry else 8  # room for "would change"
        label = self._paint(f"{st.status:<{width}}", st.status)
        note = f"  {st.note}" if st.note else ""
        self.line(f"    {label} {st.name:<32} {st.seconds:6.2f}s{note}")

    # -- summary --------------------------------------------------------------------------------

    def summary(self) -> None:
        self.line()
        self.line("Summary")
        for h in self.hosts:
            if h.skipped:
                self.line(f"  {h.host}: not attempted (an earlier host failed)")
                continue
            changed = h.count(CHANGED) + h.count(WOULD)
            word = "would change" if self.dry else "changed"
            counts = f"{h.count(OK)} ok, {changed} {word}, {h.failures} failed  in {h.seconds:.1f}s"
            if not h.failed:
                self.line(f"  {h.host}: {self._paint(OK, OK)}  {counts}")
                if h.url:
                    self.line(f"    site: {h.url}")
                continue
            # A failed host says so and why on its own line; the counts follow.
            self.line(f"  {h.host}: {self._paint(FAILED + ':', FAILED)} {h.reason}")
            rest = h.error.strip().splitlines()[1:]
            for extra in rest:
                self.line(f"    {extra}")
            self.line(f"    {counts}")
            if h.next_step:
                self.line(f"    next: {h.next_step}")

    @property
    def failed(self) -> bool:
        return any(h.failed for h in self.hosts)
