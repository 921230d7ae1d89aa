"""Render the hardening roles' files from roles/hardening/templates/ (the tree mirrors the target
paths: templates/etc/ssh/sshd_config.d/X.conf.j2 -> /etc/ssh/sshd_config.d/X.conf).

Jinja2 with StrictUndefined, as toolkit/render.py: a template naming a value it was not given
fails here, not on the host."""

from __future__ import annotations

from pathlib import Path

import jinja2

from toolkit.render import RenderedFile

TEMPLATES = Path(__file__).with_name("templates")

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                          keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)


def render(target: str, mode: int = 0o644, **context) -> RenderedFile:
    """The file for `target` (an absolute path), owned by root."""
    content = _env.get_template(target.lstrip("/") + ".j2").render(context)
    return RenderedFile(target, content, mode, "root", "root")
