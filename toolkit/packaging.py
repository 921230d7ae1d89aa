"""Packaging, all local: the app as a tar (from its folder, or from git), the pronghorn server
wheel built from ./server (cached by the hash of its sources), and the venv hash that says
when a host's virtualenv can be reused.

    package_source(cfg, prefix) -> Package   the app's files as tar.gz under `prefix/`, with a
                                             content hash (the same tree gives the same hash);
                                             which files: toolkit/ignore.py (.gitignore honoured,
                                             secret-like files left out unless included)
    server_wheel() -> Path                   the wheel, built once per server source hash
    wheel_key(wheel)                         HASH/NAME: its place under cfg.layout.wheels_dir
    venv_hash(requirements, wheel, ...)      names the venv (cfg.layout.venv_dir)
    requirements(cfg) -> Requirements        what pip installs (toolkit/lockfiles.py); a list made
                                             from a TOML file goes into the tar as lockfiles.GENERATED
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from toolkit import ignore, lockfiles
from toolkit.errors import DeployError

REPO = Path(__file__).resolve().parent.parent
SERVER_DIR = REPO / "server"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pronghorn"

# The server's own sources: what is hashed to name its wheel (never the app's upload rules).
EXCLUDE = ignore.ALWAYS + (".env",)


def excluded(rel_path: str, patterns=EXCLUDE) -> bool:
    return any(fnmatch.fnmatch(part, pat) for part in Path(rel_path).parts for pat in patterns)


def source_files(root: Path) -> list[Path]:
    """Files under `root` but the EXCLUDE ones, relative, sorted (so a hash over them is stable)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if not excluded(str(rel_dir / d)))
        for name in sorted(filenames):
            rel = rel_dir / name
            if not excluded(str(rel)):
                found.append(rel)
    return found


@dataclass
class Package:
    """The app's files as a tar.gz ready to unpack into a release directory."""

    tar: bytes
    sha256: str  # of the file list, modes and contents: the same tree gives the same hash
    files: int
    left_out: list[str] = field(default_factory=list)  # secret-like files present, not uploaded


def tar_mode(st_mode: int, is_dir: bool) -> int:
    """A release's modes: root owns every file, the app's group reads, others nothing (its code
    and settings are nobody else's business); executables stay executable."""
    if is_dir or st_mode & 0o100:
        return 0o750
    return 0o640


def package_dir(root: Path, prefix: str, group: str, include=(), extra: dict[str, bytes] | None = None) -> Package:
    """Tar the files of `root` to upload (toolkit/ignore.py) under `prefix/`, owned by root and
    in the app's group `group`: the app reads its code and never owns it. `extra`: files made
    here (name -> content) added at the top of the tree."""
    digest = hashlib.sha256()
    buf = io.BytesIO()
    selection = ignore.select_files(root, include)
    files = selection.files

    def entry(name: str) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.uname, info.gname = "root", group
        return info

    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        # Directories first (the release folder itself too): tar would make them 0755.
        dirs = {p for rel in files for p in rel.parents if str(p) != "."}
        for name in [prefix] + [f"{prefix}/{d.as_posix()}" for d in sorted(dirs)]:
            info = entry(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o750, int(time.time())
            tar.addfile(info)
        for rel in files:
            path = root / rel
            st = path.lstat()
            info = entry(f"{prefix}/{rel.as_posix()}")
            info.mtime = int(st.st_mtime)
            if path.is_symlink():
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                info.mode = 0o777
                data = None
                digest.update(f"L {rel.as_posix()} {info.linkname}\n".encode())
            else:
                info.mode = tar_mode(st.st_mode, is_dir=False)
                content = path.read_bytes()
                info.size = len(content)
                data = io.BytesIO(content)
                digest.update(f"F {rel.as_posix()} {info.mode:o} {len(content)}\n".encode())
                digest.update(content)
            tar.addfile(info, data)
        for name, content in sorted((extra or {}).items()):
            info = entry(f"{prefix}/{name}")
            info.mode, info.size, info.mtime = 0o640, len(content), int(time.time())
            digest.update(f"G {name} {len(content)}\n".encode() + content)
            tar.addfile(info, io.BytesIO(content))
    return Package(buf.getvalue(), digest.hexdigest(), len(files), selection.secret_like)


def checkout_git(url: str, ref: str, into: Path) -> Path:
    """A clean tree of `url` at `ref` (branch, tag or commit) in `into`."""
    def git(*args, cwd=None):
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
        if result.returncode != 0:
            raise DeployError(f"git {' '.join(args[:2])} failed: {result.stderr.strip()[:500]}",
                              f"check [source] git = \"{url}\" and ref = \"{ref}\" in deploy.toml")
        return result.stdout

    target = into / "src"
    clone = subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", ref, url, str(target)],
                           capture_output=True, text=True)
    if clone.returncode != 0:  # a commit hash cannot be cloned with --branch: full clone + checkout
        git("clone", "--quiet", url, str(target))
        git("checkout", "--quiet", ref, cwd=target)
    return target


def source_include(cfg) -> tuple:
    """[source] include: the secret-like paths to upload anyway."""
    return tuple(cfg.source.include)


def package_source(cfg, prefix: str) -> Package:
    """The app from its directory, or from git when deploy.toml has [source] git."""
    git_url = getattr(cfg.source, "git", "")
    reqs = requirements(cfg)
    extra = {lockfiles.GENERATED: reqs.text} if reqs.generated else None
    if git_url:
        with tempfile.TemporaryDirectory(prefix="pronghorn-src-") as tmp:
            tree = checkout_git(git_url, cfg.source.ref, Path(tmp))
            return package_dir(tree, prefix, cfg.name, source_include(cfg), extra)
    return package_dir(Path(cfg.app_dir), prefix, cfg.name, source_include(cfg), extra)


def server_sources_hash(server_dir: Path = SERVER_DIR) -> str:
    digest = hashlib.sha256()
    for rel in source_files(server_dir):
        if rel.parts[0] in ("build", "dist") or rel.parts[0].endswith(".egg-info"):
            continue
        digest.update(rel.as_posix().encode() + b"\0" + (server_dir / rel).read_bytes())
    return digest.hexdigest()


def server_wheel(server_dir: Path = SERVER_DIR, cache: Path = CACHE_DIR / "wheels") -> Path:
    """The pronghorn wheel built from ./server, cached by the hash of its sources."""
    out = cache / server_sources_hash(server_dir)[:16]
    wheels = sorted(out.glob("*.whl"))
    if wheels:
        return wheels[0]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        # A copy, so the build's own build/ and egg-info never land in the repository.
        src = Path(tmp) / "server"
        subprocess.run(["cp", "-a", str(server_dir), str(src)], check=True)
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                                 "-q", "-w", str(out), str(src)], capture_output=True, text=True)
        if result.returncode != 0:
            raise DeployError("building the pronghorn wheel from ./server failed:\n"
                              + result.stderr.strip()[-1500:],
                              "run scripts/bootstrap (it installs the build tools), then try again")
    wheels = sorted(out.glob("*.whl"))
    if not wheels:
        raise DeployError(f"pip wheel made no wheel in {out}", "run scripts/bootstrap, then try again")
    return wheels[0]


def wheel_key(wheel: Path) -> str:
    """HASH/NAME: where a wheel lives under cfg.layout.wheels_dir (HASH = its cache folder's name)."""
    return f"{wheel.parent.name}/{wheel.name}"


def venv_hash(requirements: bytes, wheel: bytes, python_version: str, python: str, app_path: str = "") -> str:
    """`app_path` ("src"): the venv carries a .pth naming current/src, so it is part of the name."""
    digest = hashlib.sha256()
    for part in (requirements, wheel, python_version.encode(), python.encode()):
        digest.update(hashlib.sha256(part).digest())
    if app_path:
        digest.update(hashlib.sha256(app_path.encode()).digest())
    return digest.hexdigest()[:16]


def requirements(cfg) -> lockfiles.Requirements:
    """What pip installs for this app (checked when deploy.toml was loaded: see config.py)."""
    return lockfiles.load(cfg.app_dir, cfg.requirements)


def read_requirements(cfg) -> bytes:
    return requirements(cfg).text


def with_wheel(tar_bytes: bytes, wheel: Path, arcname: str) -> bytes:
    """Add the server wheel (as `arcname`, owned by root) to the release tar."""
    src = tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:gz")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=6) as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        # Its folder explicitly: the upload unpacks with umask 027, and the build user reads it.
        folder = tarfile.TarInfo(arcname.rsplit("/", 1)[0])
        folder.type, folder.mode, folder.uname, folder.gname = tarfile.DIRTYPE, 0o755, "root", "root"
        folder.mtime = int(time.time())
        dst.addfile(folder)
        data = wheel.read_bytes()
        info = tarfile.TarInfo(arcname)
        info.size, info.mode, info.uname, info.gname = len(data), 0o644, "root", "root"
        info.mtime = int(time.time())
        dst.addfile(info, io.BytesIO(data))
    return out.getvalue()
