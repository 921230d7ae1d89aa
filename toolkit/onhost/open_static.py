"""Let nginx read the folders it serves from a release: `python3 open_static.py RELEASE DIR...`,
run as root after the release's files are in place (upload, collectstatic).

A release is root's and closed to others (root:APP, 0750/0640: the app's code and settings are
nobody else's business), but nginx runs as www-data: each DIR (relative to RELEASE, a [static]
folder of deploy.toml) is opened to everyone (folders o+rx, files o+r: they are public, nginx
serves them to anyone) and each folder above it, up to RELEASE, only to pass through (o+x, no
listing). A DIR may be a link (e.g. to STATIC_ROOT elsewhere in the release), but where it leads
must lie inside the release: a link leading out is refused (exit 3), never followed. Links met
inside a DIR are left alone. A DIR that does not exist is skipped. The release is root's, so
nothing here can be raced by the app.
"""

import os
import stat
import sys


def inside(path, folder):
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def open_dir(release, rel):
    real_release = os.path.realpath(release)
    target = os.path.realpath(os.path.join(release, rel))
    if not inside(target, real_release):
        raise SystemExit(f"refused: the static folder {rel} of the release leads to {target}, "
                         "outside the release; make it a folder of the app")
    if not os.path.isdir(target):
        return False
    parent = os.path.dirname(target)
    while inside(parent, real_release):
        os.chmod(parent, stat.S_IMODE(os.lstat(parent).st_mode) | stat.S_IXOTH)
        if parent == real_release:
            break
        parent = os.path.dirname(parent)
    for dirpath, dirnames, filenames in os.walk(target):  # never into linked folders
        add(dirpath, stat.S_IROTH | stat.S_IXOTH)
        for name in filenames:
            add(os.path.join(dirpath, name), stat.S_IROTH)
    return True


def add(path, bits):
    st = os.lstat(path)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(path, stat.S_IMODE(st.st_mode) | bits)  # not a link (lstat); root's tree: no race


def main(argv):
    release = argv[1]
    for rel in argv[2:]:
        if open_dir(release, rel):
            print("opened", rel)


if __name__ == "__main__":
    main(sys.argv)
