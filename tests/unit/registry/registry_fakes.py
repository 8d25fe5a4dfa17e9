"""An in-memory Registry V2 behind `httpx.MockTransport`, for unit tests only.

It answers the way the distribution spec says a registry answers; it makes no claim about how any real
registry behaves (tests/integration/test_registry_real.py does that against the real one).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from wharf.config import Settings

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

HOST = "registry.example.com"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def image_config(
    *,
    ports: list[str] | None = None,
    user: str | None = None,
    entrypoint: list[str] | None = None,
    cmd: list[str] | None = None,
    workdir: str | None = None,
    env: list[str] | None = None,
    labels: dict[str, str] | None = None,
    created: str = "2024-05-01T12:00:00Z",
    os: str = "linux",
    architecture: str = "amd64",
    variant: str | None = None,
) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if ports is not None:
        config["ExposedPorts"] = {p: {} for p in ports}
    if user is not None:
        config["User"] = user
    if entrypoint is not None:
        config["Entrypoint"] = entrypoint
    if cmd is not None:
        config["Cmd"] = cmd
    if workdir is not None:
        config["WorkingDir"] = workdir
    if env is not None:
        config["Env"] = env
    if labels is not None:
        config["Labels"] = labels
    doc: dict[str, Any] = {"created": created, "os": os, "architecture": architecture, "config": config}
    if variant:
        doc["variant"] = variant
    return doc


@dataclass
class FakeRegistry:
    """Repositories of manifests and blobs; optional auth; every request is recorded in `requests`."""

    host: str = HOST
    auth: str = "none"  # "none" | "basic" | "bearer"
    users: dict[str, str] = field(default_factory=lambda: {"alice": "wonderland"})
    realm: str = "https://auth.example.com/token"
    token_lifetime: int = 300
    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    token_requests: list[httpx.Request] = field(default_factory=list)
    issued: int = 0
    # The spec allows NAME_UNKNOWN here; distribution 2.8 answers MANIFEST_UNKNOWN instead. Both are tested.
    name_unknown_on_manifests: bool = True
    # A hook run before normal handling; return a response to override it.
    intercept: Callable[[httpx.Request], httpx.Response | None] | None = None

    # -- content ---------------------------------------------------------------------------------------
    def add_blob(self, data: bytes) -> str:
        digest = digest_of(data)
        self.blobs[digest] = data
        return digest

    def add_manifest(self, repo: str, tag: str | None, media_type: str, body: bytes) -> str:
        digest = digest_of(body)
        self.manifests[(repo, digest)] = (media_type, body)
        if tag is not None:
            self.manifests[(repo, tag)] = (media_type, body)
        return digest

    def push(
        self,
        repo: str,
        tag: str | None,
        config: dict[str, Any],
        *,
        manifest_type: str = OCI_MANIFEST,
        config_type: str = OCI_CONFIG,
    ) -> str:
        config_bytes = dumps(config)
        config_digest = self.add_blob(config_bytes)
        layer = self.add_blob(b"layer-bytes")
        manifest = {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": config_digest, "size": len(config_bytes)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 11}],
        }
        return self.add_manifest(repo, tag, manifest_type, dumps(manifest))

    def push_index(self, repo: str, tag: str, configs: list[dict[str, Any]], *, index_type: str = OCI_INDEX) -> str:
        entries = []
        for config in configs:
            digest = self.push(repo, None, config)
            _, body = self.manifests[(repo, digest)]
            platform = {"os": config["os"], "architecture": config["architecture"]}
            if config.get("variant"):
                platform["variant"] = config["variant"]
            entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body), "platform": platform})
        # buildkit-style attestation entry: must never be chosen
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": entries[0]["digest"],
                "size": 1,
                "platform": {"os": "unknown", "architecture": "unknown"},
            }
        )
        return self.add_manifest(
            repo, tag, index_type, dumps({"schemaVersion": 2, "mediaType": index_type, "manifests": entries})
        )

    # -- serving ---------------------------------------------------------------------------------------
    def _token_for(self, user: str | None) -> str:
        self.issued += 1
        return f"token-{user or 'anon'}-{self.issued}"

    def _authorized(self, request: httpx.Request) -> bool:
        header: str = request.headers.get("authorization", "")
        if self.auth == "none":
            return True
        if self.auth == "basic":
            if not header.startswith("Basic "):
                return False
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return bool(self.users.get(user) == password)
        return header.startswith("Bearer token-")

    def _challenge(self, request: httpx.Request) -> str:
        if self.auth == "basic":
            return 'Basic realm="fake"'
        parts = request.url.path.split("/")
        scope = ""
        if len(parts) > 3 and parts[-2] in ("manifests", "blobs"):
            scope = f',scope="repository:{"/".join(parts[2:-2])}:pull"'
        return f'Bearer realm="{self.realm}",service="fake-registry"{scope}'

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests.append(request)
        header = request.headers.get("authorization", "")
        user = None
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if self.users.get(user) != password:
                return httpx.Response(401, json={"details": "incorrect username or password"})
        return httpx.Response(200, json={"token": self._token_for(user), "expires_in": self.token_lifetime})

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.intercept is not None:
            override = self.intercept(request)
            if override is not None:
                self.requests.append(request)
                return override
        if request.url.host == httpx.URL(self.realm).host:
            return self._token(request)
        self.requests.append(request)
        if request.url.host != self.host.split(":")[0]:
            return httpx.Response(404)
        path = request.url.path
        if path == "/v2/":
            if self.auth != "none" and not self._authorized(request):
                return httpx.Response(
                    401,
                    headers={
                        "WWW-Authenticate": self._challenge(request),
                        "Docker-Distribution-API-Version": "registry/2.0",
                    },
                    json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                )
            return httpx.Response(200, json={}, headers={"Docker-Distribution-API-Version": "registry/2.0"})
        if not self._authorized(request):
            return httpx.Response(
                401,
                headers={"WWW-Authenticate": self._challenge(request)},
                json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            )
        parts = path.split("/")
        kind, target, repo = parts[-2], parts[-1], "/".join(parts[2:-2])
        known_repo = any(key[0] == repo for key in self.manifests)
        name_unknown = {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}]}
        if (kind, target) == ("tags", "list"):
            if not known_repo:
                return httpx.Response(404, json=name_unknown)
            return httpx.Response(200, json={"name": repo, "tags": [t for r, t in self.manifests if r == repo]})
        if kind == "manifests":
            if not known_repo and self.name_unknown_on_manifests:
                return httpx.Response(404, json=name_unknown)
            found = self.manifests.get((repo, target))
            if found is None:
                return httpx.Response(
                    404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
                )
            media_type, body = found
            return httpx.Response(
                200, content=body, headers={"Content-Type": media_type, "Docker-Content-Digest": digest_of(body)}
            )
        if kind == "blobs":
            blob = self.blobs.get(target)
            if blob is None:
                return httpx.Response(
                    404, json={"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry"}]}
                )
            return httpx.Response(200, content=blob, headers={"Content-Type": "application/octet-stream"})
        return httpx.Response(404)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


async def public_resolver(host: str, port: int) -> list[str]:
    """Every name resolves to a public address (TEST-NET would be refused as non-global)."""
    return ["93.184.216.34"]


def settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
