"""A Git server over HTTP on loopback: git's own `git http-backend` (smart HTTP) behind a small HTTP server.

What a GitOps controller clones from in harness.flux (Flux's source-controller speaks smart HTTP only, through
go-git). `GitServer(root)` serves every bare repository under `root` at http://127.0.0.1:PORT/<name>.git;
`GitRepo` makes one, commits a folder's files to a branch and pushes them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from harness.ports import free_port

_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "wharf harness",
    "GIT_AUTHOR_EMAIL": "harness@wharf.invalid",
    "GIT_COMMITTER_NAME": "wharf harness",
    "GIT_COMMITTER_EMAIL": "harness@wharf.invalid",
}


def git(*args: str, cwd: Path) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **_GIT_IDENTITY}, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return out.stdout.strip()


class _Backend(BaseHTTPRequestHandler):
    root: Path  # set on the subclass GitServer makes

    def do_GET(self) -> None:
        self._cgi()

    def do_POST(self) -> None:
        self._cgi()

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the controllers poll

    def _cgi(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REMOTE_ADDR": self.client_address[0],
        }
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False)
        head, sep, payload = out.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = out.stdout.partition(b"\n\n")
        if out.returncode != 0 or not sep:
            self.send_error(500, f"git http-backend failed: {out.stderr.decode(errors='replace')[:200]}")
            return
        status = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            else:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class GitServer:
    """Serves the bare repositories under `root` over smart HTTP until close()."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        handler = type("Backend", (_Backend,), {"root": root})
        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="git-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class GitRepo:
    """A bare repository `name.git` under a GitServer's root, and a work tree beside it to commit from."""

    def __init__(self, server: GitServer, name: str, work: Path, branch: str = "main") -> None:
        self.url = f"{server.url}/{name}.git"
        self.bare = server.root / f"{name}.git"
        self.work = work
        self.branch = branch
        git("init", "--bare", "--initial-branch", branch, str(self.bare), cwd=server.root)
        git("config", "http.receivepack", "true", cwd=self.bare)
        work.mkdir(parents=True, exist_ok=True)
        git("init", "--initial-branch", branch, cwd=work)
        git("remote", "add", "origin", str(self.bare), cwd=work)

    def copy_in(self, source: Path, dest: str) -> Path:
        """Copy the folder `source` to `dest` (a path inside the repository); return where it landed."""
        target = self.work / dest
        shutil.copytree(source, target, dirs_exist_ok=True)
        return target

    def commit(self, message: str) -> str:
        """Commit everything in the work tree and push it; return the commit's sha."""
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", message, cwd=self.work)
        git("push", "-q", "origin", self.branch, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)
