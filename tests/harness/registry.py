"""The real Registry V2 server (Debian's `docker-registry`, distribution 2.8) on a free loopback port.

Modes (what wharf must talk to, S12):
- `plain`: HTTP, no auth (a registry the admin lists as insecure).
- `tls`:   HTTPS with a certificate from the test CA (SAN 127.0.0.1, localhost), no auth.
- `basic`: htpasswd (bcrypt) Basic auth. distribution 2.8 accepts Basic over plain HTTP without complaint
           (verified), but its docs say to use htpasswd only with TLS and real registries do; so `basic` is
           HTTPS by default. Pass `tls=False` for a plain-HTTP Basic registry.
- `token`: Bearer tokens as Docker Hub does (`auth.token`), from a `TokenServer` this object owns; HTTPS by
           default, and the token service is HTTPS with the same CA.

The storage root is a directory under `workdir` that survives `stop()`/`start()` (outage tests restart the
same registry on the same port with the same content). Processes run in their own process group, are killed
as a group, and are also cleaned up at interpreter exit, so none leaks even when a test run crashes.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Literal

import httpx
import yaml

from harness.certs import CA
from harness.ports import free_port
from harness.tokenserver import TokenServer

Mode = Literal["plain", "tls", "basic", "token"]
MODES: tuple[Mode, ...] = ("plain", "tls", "basic", "token")
BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"

# The fixed test account (the password is only ever a test value).
TEST_USERNAME = "wharf-tester"
TEST_PASSWORD = "s3cret-Pa55word"
# A second valid account the token service limits to `limited/...` repositories (for "denied" tests).
LIMITED_USERNAME = "limited-tester"
LIMITED_PASSWORD = "limited-Pa55word"

_LIVE: set[RegistryServer] = set()


@atexit.register
def _close_all() -> None:  # last line of defence: pytest killed mid-session, a fixture never finalised
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.close()


def _new_group_dying_with_parent() -> None:
    """preexec_fn: own process group (stop() kills the group), and SIGKILL when the parent dies, so a pytest
    killed with SIGKILL/SIGTERM (no atexit then) still leaves no registry behind. Linux-only prctl."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def htpasswd_line(username: str, password: str) -> str:
    """A bcrypt entry (the only hash distribution accepts), made by apache2-utils' htpasswd."""
    out = subprocess.run(["htpasswd", "-Bbn", username, password], check=True, capture_output=True, text=True)
    return out.stdout.strip()


class RegistryError(RuntimeError):
    pass


class RegistryServer:
    """One `docker-registry serve` process. Attributes: host ("127.0.0.1:PORT"), url, mode, tls, ca_file,
    cert_dir (a directory holding only the CA as `ca.crt`: what skopeo's --cert-dir and docker's certs.d
    want), username/password (None for modes without auth), token_server (token mode), storage."""

    def __init__(
        self,
        mode: Mode = "plain",
        *,
        ca: CA | None = None,
        tls: bool | None = None,
        workdir: Path | None = None,
        port: int | None = None,
        username: str = TEST_USERNAME,
        password: str = TEST_PASSWORD,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown registry mode {mode!r}")
        self.mode: Mode = mode
        self.tls = (mode != "plain") if tls is None else tls
        if mode == "tls" and not self.tls:
            raise ValueError("mode 'tls' needs tls=True")
        self._owns_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"wharf-registry-{mode}-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage = self.workdir / "storage"
        self.storage.mkdir(exist_ok=True)
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.auth = mode in ("basic", "token")
        self.username: str | None = username if self.auth else None
        self.password: str | None = password if self.auth else None

        self.ca: CA | None = None
        self.ca_file: Path | None = None
        self.cert_dir: Path | None = None
        self._tls_files: tuple[Path, Path] | None = None
        if self.tls or mode == "token":  # token mode needs a CA for the signing chain even over HTTP
            self.ca = ca or CA(self.workdir / "ca")
        if self.tls:
            assert self.ca is not None
            pair = self.ca.issue(f"registry-{mode}-{self.workdir.name}")
            self._tls_files = (pair.cert, pair.key)
            self.ca_file = self.ca.cert
            self.cert_dir = self.workdir / "certs.d"
            self.cert_dir.mkdir(exist_ok=True)
            shutil.copy(self.ca.cert, self.cert_dir / "ca.crt")

        self.token_server: TokenServer | None = None
        if mode == "token":
            assert self.ca is not None
            self.token_server = TokenServer(
                self.ca,
                users={username: password, LIMITED_USERNAME: LIMITED_PASSWORD},
                grants={LIMITED_USERNAME: ["limited/"]},
                tls=self.tls,
            )
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_file = self.workdir / "registry.log"

    # -- derived -----------------------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What to pass as httpx's `verify=`: the test CA for TLS registries (False is never needed)."""
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else True

    def __repr__(self) -> str:
        return f"RegistryServer(mode={self.mode!r}, url={self.url!r}, running={self.running})"

    # -- config ------------------------------------------------------------------------------------------
    def _write_config(self) -> Path:
        http: dict[str, object] = {
            "addr": self.host,
            "secret": "wharf-test-http-secret",  # fixed: upload state stays valid across restarts
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        if self._tls_files:
            http["tls"] = {"certificate": str(self._tls_files[0]), "key": str(self._tls_files[1])}
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http,
        }
        if self.mode == "basic":
            assert self.username is not None
            assert self.password is not None
            # written before start: a missing htpasswd file makes distribution invent a random user
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text(
                htpasswd_line(self.username, self.password)
                + "\n"
                + htpasswd_line(LIMITED_USERNAME, LIMITED_PASSWORD)
                + "\n"
            )
            config["auth"] = {"htpasswd": {"realm": "wharf-test-registry", "path": str(htpasswd)}}
        elif self.mode == "token":
            assert self.token_server is not None
            assert self.ca is not None
            config["auth"] = {
                "token": {
                    "realm": self.token_server.realm,
                    "service": self.token_server.service,
                    "issuer": self.token_server.issuer,
                    "rootcertbundle": str(self.ca.cert),
                }
            }
        path = self.workdir / "config.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> RegistryServer:
        """Start (or restart after stop) on the same port and storage; return once /v2/ answers as V2."""
        if self.running:
            return self
        if self.token_server is not None:
            self.token_server.start()
        # Retry only a never-seen port: once a test knows `host`, a restart must keep it.
        attempts = 1 if (self._fixed_port or self._started_once) else 3
        for attempt in range(attempts):
            try:
                self._spawn_and_wait(timeout)
                self._started_once = True
                return self
            except RegistryError:
                if attempt == attempts - 1 or "address already in use" not in self.log_tail():
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    _started_once = False

    def _spawn_and_wait(self, timeout: float) -> None:
        if not Path(BINARY).exists():  # fail loudly: a missing binary must never turn into skipped tests
            raise RegistryError(f"{BINARY} missing: apt-get install $(cat tests/harness/apt-packages.txt)")
        config = self._write_config()
        # REGISTRY_* variables override the config file in distribution; never let the caller's leak in
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                [BINARY, "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # PDEATHSIG follows the forking *thread*: only tie it to the main thread, which lives as long as
                # the process; from other threads, fall back to a plain new session (atexit still cleans up).
                preexec_fn=_new_group_dying_with_parent
                if threading.current_thread() is threading.main_thread()
                else os.setsid,
            )
        _LIVE.add(self)
        deadline = time.monotonic() + timeout
        verify = self.ssl_context()
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise RegistryError(f"docker-registry exited at start:\n{self.log_tail()}")
            try:
                r = httpx.get(f"{self.url}/v2/", verify=verify, timeout=1.0)
                if r.status_code in (200, 401) and r.headers.get("Docker-Distribution-Api-Version"):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RegistryError(f"docker-registry did not answer /v2/ within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the registry process group (storage and port are kept for a later start())."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def restart(self) -> RegistryServer:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop everything and remove the working directory if this object created it."""
        self.stop()
        if self.token_server is not None:
            self.token_server.stop()
        _LIVE.discard(self)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""
