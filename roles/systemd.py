"""The app's systemd units: NAME.socket (socket activation: systemd holds the listening
socket, so requests wait in its backlog while the server restarts) and NAME.service
(Type=notify, pronghorn). daemon-reload runs only when a unit file changed."""

from __future__ import annotations

from roles.files import differing, file_changes
from toolkit.executor import Change
from toolkit.remote import q

STEP = "systemd units"
UNIT_DIR = "/etc/systemd/system/"


def unit_files(wanted) -> list:
    return wanted.select(UNIT_DIR)


def activation(wanted, facts, changed_paths) -> tuple[list[str], str]:
    """(what will change, script): daemon-reload, enable and start the socket as needed."""
    socket, service = wanted.layout.units
    notes, script = [], []
    if changed_paths:
        script.append("systemctl daemon-reload")
    for unit in (socket, service):
        if facts.unit(unit).enabled != "enabled":
            script.append(f"systemctl enable --quiet {q(unit)}")
            notes.append(f"enabled {unit}")
    if facts.unit(socket).active != "active":
        script.append(f"systemctl start {q(socket)}")
        notes.append(f"started {socket}")
    elif any(p.endswith("/" + socket) for p in changed_paths):
        # A changed listener (path, mode) takes effect only when the socket is re-created.
        script.append(f"systemctl restart {q(socket)}")
        notes.append(f"restarted {socket}")
    return notes, " && ".join(script)


def plan(facts, wanted) -> list:
    """Write the unit files that differ, then reload systemd (only then), enable, start."""
    files = unit_files(wanted)
    changes = file_changes(facts, files)
    notes, script = activation(wanted, facts, [f.path for f, _ in differing(facts, files)])
    if script:
        changes.append(Change(", ".join(notes), script=script, label="activating the systemd units"))
    return changes
