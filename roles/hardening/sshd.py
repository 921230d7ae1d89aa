"""sshd: public keys only, and no root login once the toolkit connects as a deploy user.

The settings go in a drop-in, /etc/ssh/sshd_config.d/01-pronghorn-hardening.conf: sshd keeps
the FIRST value it reads for a setting and reads the drop-ins in name order where
sshd_config includes them (at its top on Debian and Ubuntu), so "01-" wins over a cloud
image's "50-cloud-init.conf" that turns passwords back on.

Never a lock-out:
- PasswordAuthentication stays as it is while the toolkit itself logged in with a password
  (the note says to add a key first);
- PermitRootLogin is `no` only when the toolkit connects as another user (its commands ran
  through `sudo -n`, so that user has sudo); connected as root it is `prohibit-password`;
- sshd_dropin.sh runs `sshd -t` before the reload and puts the old file back when it fails.
"""

from __future__ import annotations

from pathlib import Path

from roles.files import differing
from roles.hardening.render import render
from toolkit.executor import Change
from toolkit.remote import q

STEP = "ssh login (sshd)"
SWITCH = "ssh"
DROP_IN = "/etc/ssh/sshd_config.d/01-pronghorn-hardening.conf"
PATHS = (DROP_IN,)
UNITS = ()
SCRIPT = Path(__file__).with_name("sshd_dropin.sh")
MOVE_TO_DEPLOY_USER = ("root may still log in with a key: to turn root login off, make a deploy user "
                       "with sudo (README: \"On a rented Ubuntu server\") and deploy as it (--host deploy@HOST)")


def packages(hardening) -> tuple[str, ...]:
    return ()


def by_key(wanted) -> bool:
    """The toolkit's own login used a key: passwords can go without locking it out."""
    return wanted.login_method == "publickey"


def root_login(wanted) -> str:
    return "prohibit-password" if wanted.login_user in ("", "root") else "no"


def drop_in(wanted):
    return render(DROP_IN, root_login=root_login(wanted), key_only=by_key(wanted))


def plan(facts, wanted) -> list:
    """Write the drop-in when it differs; sshd_dropin.sh checks it with `sshd -t`, then reloads."""
    todo = differing(facts, [drop_in(wanted)])
    if not todo:
        return []
    f, why = todo[0]
    return [Change(f"{Path(DROP_IN).name} (PermitRootLogin {root_login(wanted)})", why, files=(f,),
                   tar_on_stdin=True, script=f"sh -c {q(SCRIPT.read_text())} sshd_dropin.sh {q(DROP_IN)}",
                   label="installing the sshd settings")]


def notes(facts, wanted) -> list[str]:
    out = []
    if not by_key(wanted):
        out.append("passwords still allowed: the toolkit logged in with a password; add your key "
                   "(ssh-copy-id) and provision again to turn passwords off")
    if root_login(wanted) != "no":
        out.append(MOVE_TO_DEPLOY_USER)
    effective = facts.hardening.sshd_setting("passwordauthentication")
    if by_key(wanted) and effective == "yes" and not differing(facts, [drop_in(wanted)]):
        out.append(f"sshd -T still allows passwords: /etc/ssh/sshd_config does not include "
                   f"{Path(DROP_IN).parent}/*.conf at its top; add `Include {Path(DROP_IN).parent}/*.conf` there")
    return out
