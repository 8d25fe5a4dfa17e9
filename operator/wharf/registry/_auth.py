"""Registry authentication: credentials, pull-secret lookup, and the httpx auth flow.

The flow is the one docker and the kubelet follow: send the request; on `401` read `WWW-Authenticate`; for
`Basic`, resend with the credentials; for `Bearer realm=...,service=...,scope=...`, fetch a token from the
realm (with the credentials as Basic auth, or anonymously) and resend with it. Challenges are remembered per
registry and tokens per (realm, service, scope, credentials) until shortly before they expire, so later
requests are authorized up front without another 401 round trip. Credentials and tokens are never logged and
never appear in a repr.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import json
import re
from collections.abc import AsyncGenerator, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from wharf.registry._cache import TTLCache
from wharf.registry._errors import RegistryErrorBody, Unauthorized, Unavailable

# A token is dropped this long before the registry would stop honouring it, so it never expires in flight.
_EXPIRY_MARGIN = 10.0
# The token spec's default lifetime when the response omits `expires_in`.
_DEFAULT_TOKEN_LIFETIME = 60.0
_DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_REPOSITORY_PATH = re.compile(r"^/v2/(?P<name>.+)/(?:manifests|blobs|tags)/[^/]*$")


@dataclass(frozen=True)
class Credentials:
    """A registry username and password (or access token used as the password). The password is hidden from
    repr, so logging a Credentials object never leaks it."""

    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def _normalize_hub(host: str) -> str:
    return "docker.io" if host in _DOCKER_HUB_HOSTS else host


def _split_key(key: str) -> tuple[str, int | None, str]:
    """A dockerconfigjson key (`https://host:5000/v1/`, `host`, `*.example.com/ns`) -> (host, port, path)."""
    try:
        parts = urlsplit(key if "://" in key else f"https://{key}")
    except ValueError:  # not a URL at all (`https://[bad`): a key that matches no registry
        return "", None, ""
    try:
        port = parts.port
    except ValueError:
        port = None
    host = (parts.hostname or "").lower()
    path = parts.path.strip("/")
    # docker's legacy API paths are not repository scopes.
    if path in ("v1", "v2"):
        path = ""
    return host, port, path


def _host_matches(pattern: str, host: str) -> bool:
    """Kubelet's rule: globs match one DNS label each (`*.gcr.io` matches `eu.gcr.io`, not `a.b.gcr.io`)."""
    pattern_labels, host_labels = pattern.split("."), host.split(".")
    if len(pattern_labels) != len(host_labels):
        return False
    return all(fnmatch.fnmatchcase(h, p) for p, h in zip(pattern_labels, host_labels, strict=True))


def _entry_credentials(entry: Mapping[str, Any]) -> Credentials | None:
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and (username or password):
        return Credentials(username, password)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=False).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as error:  # binascii.Error is a ValueError
            raise Unauthorized(
                "the pull secret's 'auth' field is not base64 of 'username:password'; recreate it with "
                "kubectl create secret docker-registry"
            ) from error
        user, sep, secret = decoded.partition(":")
        if sep:
            return Credentials(user, secret)
    return None


def credentials_from_dockerconfigjson(
    blob: bytes | str | Mapping[str, Any], host: str, repository: str = ""
) -> Credentials | None:
    """The credentials a `kubernetes.io/dockerconfigjson` (or legacy `.dockercfg`) secret holds for `host`.

    `host` is the registry as written in the image reference (`docker.io`, `ghcr.io`, `host:5000`); Docker
    Hub's aliases (`index.docker.io`, `registry-1.docker.io`, `https://index.docker.io/v1/`) all match it.
    As in the kubelet's keyring, keys may use per-label globs (`*.example.com`), a port must match exactly,
    and a key with a path (`host/team`) applies only to repositories under it, the most specific key winning.
    Returns None when nothing matches.
    """
    if isinstance(blob, bytes | str):
        try:
            data = json.loads(blob)
        except (ValueError, UnicodeDecodeError) as error:
            raise Unauthorized(
                "the pull secret is not valid JSON; it should be a kubernetes.io/dockerconfigjson secret"
            ) from error
    else:
        data = blob
    if not isinstance(data, Mapping):
        raise Unauthorized("the pull secret's JSON is not an object of registries")
    auths = data.get("auths", data)
    if not isinstance(auths, Mapping):
        raise Unauthorized("the pull secret's 'auths' is not an object of registries")

    want_host, want_port, _ = _split_key(host)
    want_host = _normalize_hub(want_host)
    want_repo = repository.strip("/")
    best: tuple[tuple[int, int], Credentials] | None = None
    for key, entry in auths.items():
        if not isinstance(key, str) or not isinstance(entry, Mapping):
            continue
        key_host, key_port, key_path = _split_key(key)
        key_host = _normalize_hub(key_host)
        if key_port != want_port or not _host_matches(key_host, want_host):
            continue
        if key_path and not (want_repo == key_path or want_repo.startswith(key_path + "/")):
            continue
        credentials = _entry_credentials(entry)
        if credentials is None:
            continue
        rank = (len(key_path), 0 if "*" in key_host else 1)
        if best is None or rank > best[0]:
            best = (rank, credentials)
    return best[1] if best else None


@dataclass(frozen=True)
class Challenge:
    """One `WWW-Authenticate` challenge: scheme (lowercase) and its parameters."""

    scheme: str
    params: Mapping[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# Values are quoted strings or, leniently (registries write bare URLs), anything up to a comma.
_AUTH_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s",]+))\s*(?:,|$)')
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse RFC 7235 challenges: `Bearer realm="https://auth/token",service="reg",scope="a b"`.

    Tolerant as clients must be: several challenges in one header, quoted or bare values, stray commas.
    """
    challenges: list[Challenge] = []
    position = 0
    while position < len(header):
        while position < len(header) and header[position] in ", \t":
            position += 1
        scheme_match = _SCHEME.match(header, position)
        if scheme_match is None:
            break
        position = scheme_match.end()
        params: dict[str, str] = {}
        while position < len(header):
            param = _AUTH_PARAM.match(header, position)
            if param is None:
                break
            value = param.group(2)
            value = re.sub(r"\\(.)", r"\1", value) if value is not None else param.group(3)
            params[param.group(1).lower()] = value
            position = param.end()
        challenges.append(Challenge(scheme_match.group(1).lower(), params))
    return challenges


def repository_scope(path: str) -> str | None:
    """The pull scope a V2 API path needs: `/v2/library/nginx/manifests/1` -> `repository:library/nginx:pull`."""
    match = _REPOSITORY_PATH.match(path)
    return f"repository:{match.group('name')}:pull" if match else None


TokenKey = tuple[str, str, str, Credentials | None]


class AuthState:
    """What the client learns about registries' auth and shares across requests: the last challenge seen per
    registry, cached bearer tokens, and one lock per token so concurrent requests fetch it once."""

    def __init__(self, *, max_tokens: int = 4096) -> None:
        self.challenges: dict[str, Challenge] = {}
        self.tokens: TTLCache[TokenKey, str] = TTLCache(maxsize=max_tokens, ttl=_DEFAULT_TOKEN_LIFETIME)
        self._locks: dict[TokenKey, asyncio.Lock] = {}

    def lock(self, key: TokenKey) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            if len(self._locks) > 4096:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def clear(self) -> None:
        self.challenges.clear()
        self.tokens.clear()


class RegistryAuth(httpx.Auth):
    """The httpx auth flow for one set of credentials (or anonymous), sharing `AuthState` with the client."""

    def __init__(self, state: AuthState, credentials: Credentials | None = None) -> None:
        self._state = state
        self._credentials = credentials

    def __repr__(self) -> str:
        user = self._credentials.username if self._credentials else "anonymous"
        return f"RegistryAuth({user})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("RegistryAuth works with httpx.AsyncClient only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        registry = request.url.netloc.decode("ascii")
        # A challenge already seen from this registry lets the first attempt carry authorization; otherwise the
        # first attempt goes out bare and its 401 says what to send.
        challenge = self._state.challenges.get(registry)
        scopes = self._path_scopes(request)
        for attempt in range(2):
            sent: TokenKey | bool = False  # what this attempt carries: a token's cache key, True for Basic
            if challenge is not None and challenge.scheme == "basic":
                if self._credentials is not None:
                    request.headers["Authorization"] = self._credentials.basic_header()
                    sent = True
            elif challenge is not None and scopes:
                key = self._token_key(challenge, scopes)
                token = self._state.tokens.get(key)
                if token is None:
                    async with self._state.lock(key):  # concurrent requests fetch one token
                        token = self._state.tokens.get(key)
                        if token is None:
                            token_response = yield self._token_request(challenge, scopes)
                            token = await self._read_token(token_response, key)
                request.headers["Authorization"] = f"Bearer {token}"
                sent = key
            response = yield request
            if response.status_code != 401:
                return
            if isinstance(sent, tuple):
                # The token was refused (expired, revoked, or too narrow): never offer it again.
                self._state.tokens.discard(sent)
            challenges = parse_www_authenticate(response.headers.get("www-authenticate", ""))
            challenge = next((c for c in challenges if c.scheme == "bearer"), None) or next(
                (c for c in challenges if c.scheme == "basic"), None
            )
            if challenge is None:
                return  # the caller turns the 401 into Unauthorized
            self._state.challenges[registry] = challenge
            if attempt == 1:
                return
            if challenge.scheme == "basic" and (self._credentials is None or sent):
                return  # nothing (more) to offer
            await response.aread()
            scopes = challenge.params.get("scope", "").split() or scopes

    @staticmethod
    def _path_scopes(request: httpx.Request) -> list[str]:
        scope = repository_scope(request.url.path)
        return [scope] if scope else []

    def _token_key(self, challenge: Challenge, scopes: list[str]) -> TokenKey:
        return (challenge.realm, challenge.params.get("service", ""), " ".join(sorted(scopes)), self._credentials)

    def _token_request(self, challenge: Challenge, scopes: list[str]) -> httpx.Request:
        if not challenge.realm:
            raise Unauthorized("the registry asked for a bearer token but named no token service (realm)")
        params: list[tuple[str, str | int | float | bool | None]] = []
        if "service" in challenge.params:
            params.append(("service", challenge.params["service"]))
        params.extend(("scope", scope) for scope in scopes)
        headers: dict[str, str] = {}
        if self._credentials is not None:
            params.append(("account", self._credentials.username))
            headers["Authorization"] = self._credentials.basic_header()
        url = httpx.URL(challenge.realm)
        return httpx.Request("GET", url.copy_merge_params(params), headers=headers)

    async def _read_token(self, response: httpx.Response, key: TokenKey) -> str:
        body = await response.aread()
        realm_host = response.request.url.host
        if response.status_code in (401, 403):
            detail = RegistryErrorBody.parse(body)
            who = f"user {self._credentials.username!r}" if self._credentials else "anonymous access"
            raise Unauthorized(
                f"the token service at {realm_host} refused {who}; check the username and the password "
                "secret the App refers to",
                registry_message=detail.message,
                registry_code=detail.code,
                status_code=response.status_code,
            )
        if response.status_code != 200:
            detail = RegistryErrorBody.parse(body)
            raise Unavailable(
                f"the token service at {realm_host} answered HTTP {response.status_code}",
                registry_message=detail.message,
                registry_code=detail.code,
                status_code=response.status_code,
            )
        try:
            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError) as error:
            raise Unavailable(f"the token service at {realm_host} sent a response that is not JSON") from error
        if not isinstance(token, str) or not token:
            raise Unavailable(f"the token service at {realm_host} sent no token")
        lifetime = data.get("expires_in")
        if not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = _DEFAULT_TOKEN_LIFETIME
        ttl = max(float(lifetime) - _EXPIRY_MARGIN, min(float(lifetime), _EXPIRY_MARGIN) / 2)
        self._state.tokens.put(key, token, ttl=ttl)
        return token
