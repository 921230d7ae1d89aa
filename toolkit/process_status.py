"""`invoke status` for the app's [processes] and [schedule] units: each process's state, each
job's timer with its last run (and how it ended) and its next run, read with one
`systemctl show` (`show_command`) and turned into lines (`describe`).

A process that is not running or that systemd keeps restarting, or a job whose last run failed,
is a `problem`: status says so and ends with the `invoke logs --process NAME` that shows why.

A deploy (and a rollback, a restart) also asks, right after restarting the processes, whether
they stay up (`settle_command`, `not_staying_up`): a process that exits or that systemd had to
restart within SETTLE_SECONDS fails the release, with its journal (`journal_command`).
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.process_units import process_unit, schedule_unit, timer_unit
from toolkit.remote import q

PROPERTIES = ("Id", "LoadState", "UnitFileState", "ActiveState", "SubState", "Result", "ExecMainStatus",
              "NRestarts", "LastTriggerUSec", "NextElapseUSecRealtime")


# How long a restarted process must stay up to count as started: long enough for a Python
# program to import its code and reach its main loop (where a bad import or a missing setting
# ends it), short enough not to slow every deploy much.
SETTLE_SECONDS = 5
SETTLE_PROPERTIES = ("Id", "ActiveState", "SubState", "Result", "ExecMainStatus", "NRestarts")


def units(cfg) -> list[str]:
    names = [process_unit(cfg.name, n) for n in sorted(cfg.processes)]
    for name in sorted(cfg.schedules):
        names += [timer_unit(cfg.name, name), schedule_unit(cfg.name, name)]
    return names


def show_command(cfg) -> str:
    """One `systemctl show` for every extra unit ("" when the app has none)."""
    names = units(cfg)
    if not names:
        return ""
    props = " ".join(f"-p {p}" for p in PROPERTIES)
    return f"systemctl show {props} " + " ".join(q(u) for u in names) + " 2>/dev/null; true"


def settle_command(cfg, seconds: int = SETTLE_SECONDS) -> str:
    """Watch the [processes] units for `seconds` (a look each half second) and print their
    `systemctl show` as soon as one is not active or was restarted by systemd (Restart=always
    brings a crashing process back, so "active" alone would hide a crash loop), else at the end.
    "" when the app has no processes."""
    names = " ".join(q(process_unit(cfg.name, n)) for n in sorted(cfg.processes))
    if not names:
        return ""
    show = "systemctl show " + " ".join(f"-p {p}" for p in SETTLE_PROPERTIES) + " " + names
    # A line other than ActiveState=active or NRestarts=0 among those two: someone is not up.
    down = "grep -E '^(ActiveState|NRestarts)=' | grep -qvxE 'ActiveState=active|NRestarts=0'"
    return (f"i=0; while [ $i -lt {seconds * 2} ]; do {show} | {down} && break; "
            f"sleep 0.5; i=$((i+1)); done; {show}")


def not_staying_up(cfg, shown: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    """[(process name, what happened)] for each process `settle_command` saw down or restarted."""
    out = []
    for name in sorted(cfg.processes):
        props = shown.get(process_unit(cfg.name, name), {})
        restarts = props.get("NRestarts", "0")
        if props.get("ActiveState") == "active" and restarts in ("0", ""):
            continue
        status = props.get("ExecMainStatus", "")
        if props.get("SubState") == "auto-restart":
            what = ["it exited" + (f" with status {status}" if status and status != "0" else "")
                    + ", systemd is restarting it"]
        else:
            what = [f"{props.get('ActiveState', '?')} ({props.get('SubState', '?')})"]
        if restarts not in ("0", ""):
            what.append(f"restarted {restarts} time(s) by systemd")
        out.append((name, "; ".join(what)))
    return out


def journal_command(cfg, name: str, lines: int = 20) -> str:
    """The last lines a process wrote (its traceback, when it crashed)."""
    return (f"journalctl -u {q(process_unit(cfg.name, name))} -n {int(lines)} --no-pager -o short-iso 2>&1"
            " || true")


def parse(output: str) -> dict[str, dict[str, str]]:
    """`systemctl show` of several units (blocks separated by blank lines) -> {unit: {prop: value}}."""
    found, block = {}, {}
    for line in output.splitlines() + [""]:
        if not line.strip():
            if block.get("Id"):
                found[block["Id"]] = block
            block = {}
            continue
        key, _, value = line.partition("=")
        block[key] = value.strip()
    return found


@dataclass(frozen=True)
class Line:
    text: str
    problem: str = ""  # the process or job's name when it needs looking at


def _state(props: dict) -> str:
    if not props or props.get("LoadState") == "not-found":
        return "not installed"
    active = props.get("ActiveState", "?")
    sub = props.get("SubState", "")
    return f"{props.get('UnitFileState') or '?'} / {active}" + (f" ({sub})" if sub and sub != "running" else "")


def _when(value: str) -> str:
    return "" if not value or value == "n/a" else value


def describe(cfg, shown: dict[str, dict[str, str]]) -> list[Line]:
    out = []
    for name in sorted(cfg.processes):
        unit = process_unit(cfg.name, name)
        props = shown.get(unit, {})
        # NRestarts counts systemd's restarts since the last deploy or `invoke restart`: a process
        # that keeps exiting is "active" between two crashes, so that alone would hide it.
        restarts = props.get("NRestarts", "0") or "0"
        crashed = f"; systemd restarted it {restarts} time(s) since its last start: it exits" if restarts != "0" else ""
        running = props.get("ActiveState") == "active" and not crashed
        out.append(Line(f"{unit:<28} {_state(props)}{crashed}", "" if running else name))
    for name in sorted(cfg.schedules):
        timer, service = timer_unit(cfg.name, name), schedule_unit(cfg.name, name)
        tprops, sprops = shown.get(timer, {}), shown.get(service, {})
        last = _when(tprops.get("LastTriggerUSec", ""))
        result = sprops.get("Result", "")
        failed = bool(last) and (result not in ("", "success") or sprops.get("ExecMainStatus", "0") != "0")
        ended = (f"failed: {result}, exit {sprops.get('ExecMainStatus', '?')}" if failed
                 else "running" if sprops.get("ActiveState") == "activating" else "ok")
        out.append(Line(f"{timer:<28} {_state(tprops)}; last run: "
                        + (f"{last} ({ended})" if last else "never")
                        + f"; next: {_when(tprops.get('NextElapseUSecRealtime', '')) or '-'}",
                        name if failed or tprops.get("ActiveState") != "active" else ""))
    return out
