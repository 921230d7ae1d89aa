"""What roles/postgres.py needs to know about the host's PostgreSQL: whether the server answers,
where it listens, and the app's role (its stored password verifier) and database.

The verifier (`SCRAM-SHA-256$...`) is read so the role can tell, on the deploy machine, whether
the password in .env still opens it (`scram_matches`): the password itself never travels to
the server as text, and the server never sends it back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from toolkit.facts import Fact
from toolkit.remote import q


@dataclass(frozen=True)
class PostgresState:
    running: bool = False      # the server answered psql as the postgres user
    listen: str = ""           # listen_addresses
    role_verifier: str = ""    # the app role's rolpassword ("" when it has none)
    role_exists: bool = False
    db_owner: str = ""         # the owner of the app's database ("" when there is none)
    public_connect: bool = False  # PUBLIC may still connect to the app's database


class Postgres(Fact[PostgresState]):
    """One psql call as the postgres user (peer authentication), one line per answer."""

    key = "postgres"

    def __init__(self, name: str):
        self.name = name  # the app's role and database

    def command(self):
        lit = "'" + self.name.replace("'", "''") + "'"
        queries = [
            "select 'listen', setting from pg_settings where name = 'listen_addresses'",
            f"select 'role', coalesce(rolpassword, '') from pg_authid where rolname = {lit}",
            f"select 'db', pg_get_userbyid(datdba), has_database_privilege('public', datname, 'connect') "
            f"from pg_database where datname = {lit}",
        ]
        return ("command -v psql >/dev/null && cd / && runuser -u postgres -- psql -XAtq -F ' ' "
                + " ".join("-c " + q(s) for s in queries) + " 2>/dev/null")

    def parse(self, lines):
        state = {"running": False, "listen": "", "role_verifier": "", "role_exists": False,
                 "db_owner": "", "public_connect": False}
        for line in lines:
            kind, _, rest = line.partition(" ")
            if kind == "listen":
                state.update(running=True, listen=rest.strip())
            elif kind == "role":
                state.update(role_exists=True, role_verifier=rest.strip())
            elif kind == "db":
                owner, _, public = rest.strip().partition(" ")
                state.update(db_owner=owner, public_connect=public == "t")
        return PostgresState(**state)


# -- SCRAM-SHA-256 verifiers (RFC 5802/7677, as PostgreSQL stores them) ------------------------

def scram_verifier(password: str, salt: bytes, iterations: int = 4096) -> str:
    """`SCRAM-SHA-256$ITER:SALT$STOREDKEY:SERVERKEY`, what `ALTER ROLE ... PASSWORD` accepts
    as an already-hashed password (so the text of the password is never sent)."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored = hashlib.sha256(client_key).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored)}:{b64(server)}"


def scram_matches(password: str, verifier: str) -> bool:
    """Whether `password` opens the stored `verifier` (False for anything not SCRAM)."""
    try:
        method, rest = verifier.split("$", 1)
        params, _ = rest.split("$", 1)
        iterations, salt = params.split(":", 1)
        if method != "SCRAM-SHA-256":
            return False
        expected = scram_verifier(password, base64.b64decode(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(expected, verifier)


# -- the server's pg_hba.conf (the database host: toolkit/db_host.py) ----------------------------

@dataclass(frozen=True)
class PgHbaState:
    path: str = ""  # the server's hba_file ("" when the server does not answer)
    text: str = ""  # its content


class PgHba(Fact[PgHbaState]):
    """Where the server's pg_hba.conf is (`SHOW hba_file`: /etc/postgresql/15/main/pg_hba.conf on
    Debian 12) and what it says; roles/postgres.py rewrites only the app's block in it."""

    key = "pg_hba"

    def command(self):
        return ("f=$(cd / && runuser -u postgres -- psql -XAtq -c 'show hba_file' 2>/dev/null) "
                "&& test -f \"$f\" && echo \"$f\" && cat \"$f\"; true")

    def parse(self, lines):
        if not lines or not lines[0].strip():
            return PgHbaState()
        return PgHbaState(path=lines[0].strip(), text="".join(line + "\n" for line in lines[1:]))
