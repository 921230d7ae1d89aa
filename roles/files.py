"""Shared by the roles that install rendered config files (app_env, systemd, nginx):
picking a role's files out of render_all() and writing the ones that differ."""

from __future__ import annotations

from toolkit.remote import put_if_changed


def rendered_files(cfg, host=None) -> list:
    """Every file core's renderer produces for this app (and host)."""
    from toolkit.render import render_all

    return list(render_all(cfg, host))


def select(files, *prefixes) -> list:
    return [f for f in files if any(str(f.path).startswith(p) for p in prefixes)]


def write_changed(c, files, st, dry, facts=None) -> list[tuple[str, str]]:
    """Write the files that differ; mark the step changed, naming them. Returns [(path, why)]."""
    changed = put_if_changed(c, files, dry=dry, facts=facts.files if facts else None)
    if changed:
        st.changed(", ".join(f"{p.rsplit('/', 1)[-1]} ({why})" for p, why in changed))
    return changed
