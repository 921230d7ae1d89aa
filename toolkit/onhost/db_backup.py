"""The app's database backups, run ON the host as root: by `invoke db.backup/db.backups/
db.restore` (as `python3 -c SOURCE ...`) and by the daily APP-backup.timer (as the file
layout.backup_program, the same source written there by roles/postgres.py).

    db_backup.py backup  --engine E --db DB --app APP --data DIR --to BACKUPS --keep-days N
    db_backup.py list    --to BACKUPS
    db_backup.py restore --engine E --db DB --app APP --data DIR --to BACKUPS --name NAME
    db_backup.py files   --app APP --data DIR          (the sqlite databases, for db.shell)

A backup is a folder BACKUPS/TIMESTAMP (UTC, e.g. 20261202T024500Z; made as
TIMESTAMP.partial and renamed when complete, so a half-made one is never listed), 0700,
its files 0600, all root's:
- postgresql: DB.dump, `pg_dump -Fc` run as the postgres user (its output written by root);
  restored with `pg_restore --clean --if-exists --single-transaction` (all or nothing; tables
  made after the backup are left alone);
- sqlite: every SQLite file under the data folder (found by its header), by SQLite's online
  backup API, so a backup taken while the app writes is consistent.

Whatever touches the app's data folder runs as the app user (a forked child that drops to it):
the folder is the app's, and root must not follow a link the app planted there. The child
sends each database as `serialize()`d bytes (sqlite's backup API into memory) and gets them
back the same way on restore: memory bounded by the database's size, fine for sqlite's scale.

Backups older than --keep-days go after each backup; the newest one is always kept.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import sys

STAMP = "%Y%m%dT%H%M%SZ"
NAME_RE = re.compile(r"^\d{8}T\d{6}Z(-\d+)?\Z")
SQLITE_HEADER = b"SQLite format 3\0"
SIDECARS = ("-wal", "-shm", "-journal")


class Failed(Exception):
    """A message for the person running the backup (printed as `error: ...`, exit 1)."""


# -- sqlite, as the app user ------------------------------------------------------------------

def sqlite_files(data_dir: str) -> list[str]:
    """Paths (relative to data_dir) of the SQLite databases in it; links are not followed."""
    found = []
    for root, dirs, files in os.walk(data_dir):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if name.endswith(SIDECARS) or not os.path.isfile(path) or os.path.islink(path):
                continue
            try:
                with open(path, "rb") as fh:
                    if fh.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                        continue
            except OSError:
                continue
            found.append(os.path.relpath(path, data_dir))
    return found


def snapshot(path: str) -> bytes:
    """A consistent copy of the database at `path` (the online backup API, into memory)."""
    # Not mode=ro: a WAL database nobody has open needs its -shm file made to be read.
    src = sqlite3.connect(path)
    mem = sqlite3.connect(":memory:")
    try:
        src.backup(mem)
        data = bytearray(mem.serialize())
    finally:
        src.close()
        mem.close()
    # A WAL database's header (bytes 18-19 = 2) makes an image that cannot be opened in memory
    # (it looks for a -wal file): the backup is an ordinary rollback-journal database.
    if data[18:20] == b"\x02\x02":
        data[18:20] = b"\x01\x01"
    return bytes(data)


def load(path: str, data: bytes) -> None:
    """Replace the database at `path` with `data` (a snapshot), through SQLite, so a -wal file
    left behind cannot bring the old pages back."""
    mem = sqlite3.connect(":memory:")
    dst = sqlite3.connect(path)
    try:
        mem.deserialize(data)
        mem.backup(dst)
    finally:
        mem.close()
        dst.close()


def as_app(app: str, work, *args):
    """Run `work(*args)` in a child that is the app user; its result (bytes or None) back."""
    try:
        user = pwd.getpwnam(app) if app else None
    except KeyError:
        raise Failed(f"no user {app} on this host: the app is not deployed here yet") from None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the app user, work, send the result, exit
        code = 0
        try:
            os.close(read_end)
            if user and os.getuid() == 0:
                os.setgroups([])
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)
            result = work(*args)
            with os.fdopen(write_end, "wb") as out:
                out.write(result or b"")
        except BaseException as exc:  # noqa: BLE001 - reported by the parent
            print(f"error: {exc}", file=sys.stderr)
            code = 1
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise Failed(f"the sqlite step as user {app or 'root'} failed (see above)")
    return data


def _pack(data_dir: str) -> bytes:
    """Every database of data_dir as NAME\\0LENGTH\\0BYTES records (runs as the app user)."""
    out = bytearray()
    for rel in sqlite_files(data_dir):
        data = snapshot(os.path.join(data_dir, rel))
        out += rel.encode() + b"\0" + str(len(data)).encode() + b"\0" + data
    return bytes(out)


def _unpack(blob: bytes) -> list[tuple[str, bytes]]:
    items, at = [], 0
    while at < len(blob):
        name_end = blob.index(b"\0", at)
        size_end = blob.index(b"\0", name_end + 1)
        size = int(blob[name_end + 1:size_end])
        items.append((blob[at:name_end].decode(), blob[size_end + 1:size_end + 1 + size]))
        at = size_end + 1 + size
    return items


def _load_all(data_dir: str, items: list[tuple[str, bytes]]) -> None:
    for rel, data in items:
        load(os.path.join(data_dir, rel), data)


# -- the backup folder, as root ----------------------------------------------------------------

def new_backup_dir(backups: str, now: datetime.datetime) -> tuple[str, str]:
    """(name, path of its .partial folder) for a backup taken `now`."""
    os.makedirs(backups, mode=0o700, exist_ok=True)
    os.chmod(backups, 0o700)
    base = now.strftime(STAMP)
    for n in range(1, 100):
        name = base if n == 1 else f"{base}-{n}"
        if not os.path.exists(os.path.join(backups, name)):
            partial = os.path.join(backups, name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            os.mkdir(partial, 0o700)
            return name, partial
    raise Failed("too many backups in the same second")


def backup(args, now: datetime.datetime | None = None) -> str:
    """Take a backup; prune the old ones. Returns its name."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    name, partial = new_backup_dir(args.to, now)
    try:
        if args.engine == "postgresql":
            with open(os.path.join(partial, f"{args.db}.dump"), "wb") as out:
                done = subprocess.run(["runuser", "-u", "postgres", "--", "pg_dump", "-Fc", "-d", args.db],
                                      stdout=out, stderr=subprocess.PIPE, cwd="/")
            if done.returncode != 0:
                raise Failed("pg_dump failed: " + done.stderr.decode(errors="replace").strip())
        else:
            for rel, data in _unpack(as_app(args.app, _pack, args.data)):
                path = os.path.join(partial, rel)
                os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
                with open(path, "wb") as out:
                    out.write(data)
        os.rename(partial, os.path.join(args.to, name))
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    prune(args.to, args.keep_days, now)
    return name


def backups(folder: str) -> list[str]:
    """The complete backups' names, oldest first."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if NAME_RE.match(n) and os.path.isdir(os.path.join(folder, n)))


def taken_at(name: str) -> datetime.datetime:
    return datetime.datetime.strptime(name.split("-")[0], STAMP).replace(tzinfo=datetime.timezone.utc)


def prune(folder: str, keep_days: int, now: datetime.datetime) -> list[str]:
    """Remove backups older than keep_days (never the newest) and stale .partial folders."""
    names = backups(folder)
    cutoff = now - datetime.timedelta(days=keep_days)
    gone = [n for n in names[:-1] if taken_at(n) < cutoff]
    gone += [n for n in os.listdir(folder) if n.endswith(".partial") and NAME_RE.match(n[:-len(".partial")])
             and taken_at(n[:-len(".partial")]) < now - datetime.timedelta(days=1)]
    for name in gone:
        shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    return gone


def size_of(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def restore(args) -> None:
    """Put backup NAME back (the caller stopped the app)."""
    if not NAME_RE.match(args.name) or args.name not in backups(args.to):
        known = ", ".join(backups(args.to)[-5:]) or "none yet"
        raise Failed(f"no backup named {args.name!r} (the latest: {known})")
    folder = os.path.join(args.to, args.name)
    if args.engine == "postgresql":
        with open(os.path.join(folder, f"{args.db}.dump"), "rb") as dump:
            done = subprocess.run(["runuser", "-u", "postgres", "--", "pg_restore", "--clean", "--if-exists",
                                   "--single-transaction", "--exit-on-error", "-d", args.db],
                                  stdin=dump, stderr=subprocess.PIPE, cwd="/")
        if done.returncode != 0:
            raise Failed("pg_restore failed: " + done.stderr.decode(errors="replace").strip())
        return
    items = []
    for root, _, files in os.walk(folder):
        for name in sorted(files):
            with open(os.path.join(root, name), "rb") as fh:
                items.append((os.path.relpath(os.path.join(root, name), folder), fh.read()))
    as_app(args.app, _load_all, args.data, items)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="db_backup")
    parser.add_argument("command", choices=("backup", "list", "restore", "files"))
    for flag in ("--engine", "--db", "--app", "--data", "--to", "--name"):
        parser.add_argument(flag, default="")
    parser.add_argument("--keep-days", type=int, default=14)
    args = parser.parse_args(argv)
    os.umask(0o077)
    try:
        if args.command == "backup":
            name = backup(args)
            print(f"{name} {size_of(os.path.join(args.to, name))}")
        elif args.command == "list":
            for name in backups(args.to):
                path = os.path.join(args.to, name)
                print(f"{name} {size_of(path)} {' '.join(sorted(os.listdir(path)))}")
        elif args.command == "restore":
            restore(args)
        else:
            print("\n".join(_list_files(args)))
    except (Failed, OSError, sqlite3.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _list_files(args) -> list[str]:
    return as_app(args.app, lambda d: "\n".join(sqlite_files(d)).encode(), args.data).decode().split("\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
