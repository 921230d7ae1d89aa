"""Link paths of a new release to where they live in shared/, so data outlives the release:
`python3 link_shared.py RELEASE USER REL TARGET [REL TARGET ...]`, run as root right after the
upload, before any code of the release runs (Capistrano's linked_files and linked_dirs).

REL is a path in the release (a trailing / makes it a folder), TARGET the absolute path in
shared/ that REL becomes a symlink to. Prints one line per path: `REL -> TARGET (what happened)`.

- The shared side is made by a child process running as USER: shared/data is the app's to
  write, so root never creates or follows anything there (a link the app planted would lead
  root elsewhere).
- When TARGET does not exist yet and the release has a real copy of REL (a seed database, a
  folder with a .gitkeep), that copy becomes TARGET's first content; otherwise a folder is made
  empty, and a file is left for the app to create (sqlite creates its database through the link).
- On the release side a parent of REL that is a symlink is refused, not followed.
"""

import os
import pwd
import shutil
import sys


class Refused(Exception):
    pass


def as_user(user, fn, *args):
    """fn(*args) in a child process running as `user`; returns what it printed as its result."""
    entry = pwd.getpwnam(user)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            os.umask(0o027)
            os.write(write, ("ok " + fn(*args)).encode())
            code = 0
        except BaseException as exc:  # noqa: BLE001 - the parent reports it
            os.write(write, f"error {exc}".encode())
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    status, _, text = answer.partition(" ")
    if status != "ok":
        raise Refused(text or "the child process died")
    return text


def shared_side(target, is_dir, seed):
    """Make sure TARGET can be linked to (run as the app user). Returns what was done."""
    if os.path.lexists(target):
        if is_dir and not os.path.isdir(target):
            raise Refused(f"{target} exists and is not a folder")
        if not is_dir and os.path.isdir(target):
            raise Refused(f"{target} is a folder, but the release has a file there")
        return "kept"
    os.makedirs(os.path.dirname(target), mode=0o750, exist_ok=True)
    if seed:
        if os.path.isdir(seed):
            shutil.copytree(seed, target, symlinks=True)
        else:
            shutil.copy2(seed, target)
        return "new, with the release's copy"
    if is_dir:
        os.mkdir(target, 0o750)
    return "new"


def release_side(release, rel):
    """The release's path for REL, its parents made real folders; refuses symlinked parents."""
    parts = rel.split("/")
    path = release
    for part in parts[:-1]:
        path = os.path.join(path, part)
        if os.path.islink(path):
            raise Refused(f"{rel}: {os.path.relpath(path, release)} in the release is a symlink")
        if not os.path.isdir(path):
            os.mkdir(path, 0o755)
    return os.path.join(path, parts[-1])


def link(release, user, rel, target):
    is_dir = rel.endswith("/")
    rel = rel.rstrip("/")
    if os.path.normpath(rel) != rel or rel.startswith(("/", "..")) or rel in ("", "."):
        raise Refused("not a plain path inside the release")
    path = release_side(release, rel)
    real_copy = os.path.lexists(path) and not os.path.islink(path)
    seed = path if real_copy and not os.path.lexists(target) else ""
    done = as_user(user, shared_side, target, is_dir, seed)
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)
    os.symlink(os.path.relpath(target, os.path.dirname(path)), path)
    return f"{rel}{'/' if is_dir else ''} -> {target} ({done})"


def main(argv):
    if len(argv) < 5 or len(argv) % 2 == 0:
        sys.exit("usage: link_shared.py RELEASE USER REL TARGET [REL TARGET ...]")
    release, user, pairs = argv[1], argv[2], argv[3:]
    for rel, target in zip(pairs[::2], pairs[1::2]):
        try:
            print(link(release, user, rel, target), flush=True)
        except (Refused, OSError) as exc:
            sys.exit(f"error: cannot link {rel} into the release: {exc}")


if __name__ == "__main__":
    main(sys.argv)
