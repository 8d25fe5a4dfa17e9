"""A real root filesystem for test images that run on the real node (harness.node): Debian's busybox (test-only).

Debian's `busybox` package (tests/harness/apt-packages.txt) is dynamically linked; the layer holds it with the
shared libraries `ldd` names, one symlink per applet the tests use (`sh`, `httpd`, `id`, ...), `/etc/passwd` and
`/etc/group` with the users the test images name, an `/www/index.html` for `httpd`, and an empty, world-writable
`/tmp`. The tar is byte-for-byte reproducible (mtime 0, owner root), so an image's digest depends on its config only.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

BUSYBOX = Path(shutil.which("busybox") or "/bin/busybox")
APPLETS = (
    "sh", "httpd", "id", "cat", "echo", "printf", "sleep", "env", "ls", "mkdir", "touch", "rm", "dd", "df", "wc",
    "grep", "head", "tail", "sort", "cut", "tr", "test", "[", "true", "false", "kill", "nc", "wget", "hostname",
    "stat", "sed", "seq",
)  # fmt: skip
# uid/gid and name of every user a test image may name (S7: a named USER, and the uid wharf runs it as)
USERS = {"root": 0, "nginx": 101, "app": 1001, "nobody": 65534}
INDEX_HTML = b"hello from a wharf test image\n"


class RootfsError(RuntimeError):
    pass


def _libraries(binary: Path) -> list[Path]:
    """The shared libraries (and the dynamic loader) `binary` needs, as `ldd` resolves them."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    if "not a dynamic executable" in out.stdout + out.stderr or "statically linked" in out.stdout:
        return []
    if out.returncode != 0:
        raise RootfsError(f"ldd {binary} failed: {out.stderr}")
    return [Path(p) for p in re.findall(r"(/\S+)\s+\(0x", out.stdout)]


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 0
    tar.addfile(info)


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def _add_link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, 0
    tar.addfile(info)


@functools.cache
def busybox_tar() -> bytes:
    """The uncompressed layer tar."""
    if not BUSYBOX.is_file():
        raise RootfsError(f"{BUSYBOX} missing: apt-get install $(cat tests/harness/apt-packages.txt)")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        libraries = _libraries(BUSYBOX)  # kept at the paths ldd names (the loader's own path included)
        dirs = {"bin", "dev", "etc", "proc", "sys", "www"}
        for lib in libraries:
            dirs.update(str(parent).lstrip("/") for parent in lib.parents if str(parent) != "/")
        for name in sorted(dirs):
            _add_dir(tar, name)
        _add_dir(tar, "tmp", 0o1777)
        _add_file(tar, "bin/busybox", BUSYBOX.read_bytes(), 0o755)
        for applet in APPLETS:
            _add_link(tar, f"bin/{applet}", "busybox")
        for lib in sorted(set(libraries)):
            _add_file(tar, str(lib).lstrip("/"), lib.read_bytes(), 0o755)  # read through symlinks
        passwd = "".join(f"{n}:x:{u}:{u}:{n}:/tmp:/bin/sh\n" for n, u in USERS.items())
        _add_file(tar, "etc/passwd", passwd.encode())
        _add_file(tar, "etc/group", "".join(f"{n}:x:{u}:\n" for n, u in USERS.items()).encode())
        _add_file(tar, "www/index.html", INDEX_HTML)
    return raw.getvalue()


@functools.cache
def busybox_layer() -> tuple[bytes, str]:
    """(gzip bytes, diff_id) of the layer, as an image's `layers` and `rootfs.diff_ids` want them."""
    tar_bytes = busybox_tar()
    return gzip.compress(tar_bytes, mtime=0), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
