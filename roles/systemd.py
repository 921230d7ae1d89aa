"""The app's systemd units: NAME.socket (socket activation: systemd holds the listening
socket, so requests wait in its backlog while the server restarts) and NAME.service
(Type=notify, pronghorn). daemon-reload runs only when a unit file changed."""

from __future__ import annotations

from roles import facts as facts_mod
from roles.files import rendered_files, select, write_changed
from toolkit.remote import q, sh

UNIT_DIR = "/etc/systemd/system/"


def unit_files(files) -> list:
    return select(files, UNIT_DIR)


def activation_script(cfg, facts, changed_paths) -> tuple[list[str], str]:
    """(what will change, script): daemon-reload, enable and start the socket as needed."""
    socket, service = facts_mod.units_of(cfg)
    notes, script = [], []
    if changed_paths:
        script.append("systemctl daemon-reload")
    for unit in (socket, service):
        if facts.unit_enabled.get(unit) != "enabled":
            script.append(f"systemctl enable --quiet {q(unit)}")
            notes.append(f"enabled {unit}")
    socket_changed = any(p.endswith("/" + socket) for p in changed_paths)
    if facts.unit_active.get(socket) != "active":
        script.append(f"systemctl start {q(socket)}")
        notes.append(f"started {socket}")
    elif socket_changed:
        # A changed listener (path, mode) takes effect only when the socket is re-created.
        script.append(f"systemctl restart {q(socket)}")
        notes.append(f"restarted {socket}")
    return notes, " && ".join(script)


def ensure_units(c, cfg, rep, dry=False, facts=None, files=None) -> bool:
    """Install the app's systemd units; reload systemd only when they changed; enable the socket."""
    with rep.step("systemd units") as st:
        mine = unit_files(files if files is not None else rendered_files(cfg))
        if facts is None:
            facts = facts_mod.gather(c, cfg, paths=[f.path for f in mine],
                                     units=facts_mod.units_of(cfg))
        changed = write_changed(c, mine, st, dry, facts)
        notes, script = activation_script(cfg, facts, [p for p, _ in changed])
        if notes:
            st.changed(", ".join(filter(None, [st.note] + notes)))
        if script and not dry:
            sh(c, script, what="activating the systemd units")
        return bool(changed or notes)
