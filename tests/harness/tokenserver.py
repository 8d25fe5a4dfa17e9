"""A test token service for Registry V2 Bearer auth, shaped like Docker Hub's `auth.docker.io/token`.

The real `docker-registry` (distribution 2.8, `auth.token`) trusts a token when its JWT header carries an `x5c`
chain ending at a certificate in `rootcertbundle`; so the signing certificate here is issued by the test CA and
the registry's rootcertbundle is that CA's certificate. Flow (the one every client follows):

1. client -> registry: 401 `WWW-Authenticate: Bearer realm=<this>/token,service=..,scope=repository:R:pull`
2. client -> GET realm?service=..&scope=.. (Basic credentials, or none for anonymous); POST with
   `grant_type=password` (the OAuth2 form docker uses) works too
3. client -> registry with `Authorization: Bearer <token>`

Valid users get the actions they ask for (restricted to their repository prefixes, if `grants` says so);
anonymous callers get `pull` on repositories under `public_prefixes` and nothing else, so a private repository
answers 401 `insufficient_scope` exactly as Docker Hub does. Wrong credentials at the realm get 401.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.certs import CA

TOKEN_LIFETIME_S = 300  # Docker Hub's tokens also live 300 s; long enough for any one test step


@dataclass
class TokenRequest:
    """One call to the realm, recorded so tests can assert how a client authenticated."""

    method: str
    username: str | None  # None: anonymous
    authenticated: bool  # credentials given and valid
    service: str | None
    scopes: list[str]
    granted: list[dict[str, Any]] = field(default_factory=list)


def parse_scope(scope: str) -> tuple[str, str, list[str]] | None:
    """`repository:team/app:pull,push` -> (type, name, actions). The name itself never holds a colon's last
    segment, so split on the first and the last colon (names may not contain `:`, but be lenient)."""
    head, sep, actions = scope.rpartition(":")
    kind, sep2, name = head.partition(":")
    if not sep or not sep2 or not name:
        return None
    return kind, name, [a for a in actions.split(",") if a]


class TokenServer:
    """Threaded HTTP(S) token service on a free loopback port; `realm` is what the registry advertises."""

    def __init__(
        self,
        ca: CA,
        *,
        users: Mapping[str, str],
        service: str = "wharf-test-registry",
        issuer: str = "wharf-test-token-issuer",
        grants: Mapping[str, Sequence[str]] | None = None,
        public_prefixes: Sequence[str] = ("public/",),
        tls: bool = True,
    ) -> None:
        self.ca = ca
        self.users = dict(users)
        self.service = service
        self.issuer = issuer
        # user -> repository name prefixes they may touch; users not listed may touch everything
        self.grants = {u: tuple(p) for u, p in (grants or {}).items()}
        self.public_prefixes = tuple(public_prefixes)
        self.tls = tls
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        # unique file names: several token servers may share one CA directory
        tag = uuid.uuid4().hex[:8]
        signer = ca.issue(f"token-signer-{tag}")
        key = serialization.load_pem_private_key(signer.key.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self._signing_key = key
        cert = x509.load_pem_x509_certificate(signer.cert.read_bytes())
        # x5c: standard (padded) base64 of DER, leaf first; the registry verifies it against rootcertbundle
        self._x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self._tls_pair = ca.issue(f"token-server-{tag}") if tls else None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None, "token server not started"
        return int(self._httpd.server_address[1])

    @property
    def realm(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/token"

    def start(self) -> None:
        if self._httpd is not None:
            return
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        httpd.daemon_threads = True
        if self._tls_pair is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self._tls_pair.cert, self._tls_pair.key)
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="wharf-token-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> TokenServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- policy ----------------------------------------------------------------------------------------------
    def check(self, username: str | None, password: str | None) -> bool:
        return username is not None and self.users.get(username) == password

    def allowed_actions(self, username: str | None, kind: str, name: str, wanted: list[str]) -> list[str]:
        if username is None:  # anonymous: Docker Hub lets anyone pull public repositories, nothing else
            public = kind == "repository" and name.startswith(self.public_prefixes)
            return [a for a in wanted if a == "pull"] if public else []
        prefixes = self.grants.get(username)
        if prefixes is not None and not name.startswith(tuple(prefixes)):
            return []
        return list(wanted)

    def issue(self, username: str | None, scopes: list[str]) -> tuple[str, list[dict[str, Any]]]:
        access: list[dict[str, Any]] = []
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None:
                continue
            kind, name, wanted = parsed
            actions = self.allowed_actions(username, kind, name, wanted)
            if actions:
                access.append({"type": kind, "name": name, "actions": actions})
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": username or "",
            "aud": self.service,  # a string: distribution 2.8 compares aud with `service` as one string
            "exp": now + TOKEN_LIFETIME_S,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        token = jwt.encode(claims, self._signing_key, algorithm="RS256", headers={"x5c": self._x5c})
        return token, access


def _first(params: dict[str, list[str]], key: str) -> str | None:
    values = params.get(key)
    return values[0] if values else None


def _make_handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

        def _reply(self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _basic(self) -> tuple[str | None, str | None, bool]:
            header = self.headers.get("Authorization", "")
            if not header.lower().startswith("basic "):
                return None, None, False
            try:
                user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None, None, True
            return user, password, True

        def _serve(
            self,
            method: str,
            params: dict[str, list[str]],
            username: str | None,
            password: str | None,
            gave_creds: bool,
        ) -> None:
            if urlsplit(self.path).path != "/token":
                self._reply(404, {"details": "not found"})
                return
            ok = gave_creds and server.check(username, password)
            record = TokenRequest(
                method,
                username if gave_creds else None,
                ok,
                _first(params, "service"),
                [s for v in params.get("scope", []) for s in v.split(" ") if s],
            )
            with server._lock:
                server.requests.append(record)
            if gave_creds and not ok:  # Docker Hub: wrong credentials are refused, not downgraded to anonymous
                self._reply(
                    401,
                    {"details": "incorrect username or password"},
                    {"WWW-Authenticate": 'Basic realm="wharf-test-token"'},
                )
                return
            token, access = server.issue(username if ok else None, record.scopes)
            record.granted = access
            issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self._reply(
                200, {"token": token, "access_token": token, "expires_in": TOKEN_LIFETIME_S, "issued_at": issued}
            )

        def do_GET(self) -> None:
            params = parse_qs(urlsplit(self.path).query)
            user, password, gave = self._basic()
            self._serve("GET", params, user, password, gave)

        def do_POST(self) -> None:  # OAuth2 password grant, as `docker login` uses against Docker Hub
            length = int(self.headers.get("Content-Length") or 0)
            params = parse_qs(self.rfile.read(length).decode())
            user, password, gave = self._basic()
            if _first(params, "grant_type") == "password":
                user = _first(params, "username")
                password = _first(params, "password")
                gave = True
            self._serve("POST", params, user, password, gave)

    return Handler
