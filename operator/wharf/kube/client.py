"""Async access to the apiserver on kopf's event loop, with the credentials the `kubernetes` package loads
(kubeconfig or in-cluster service account). Writes of owned objects use server-side apply with wharf's field manager.

The wire is aiohttp (kopf's own client library): measured against httpx (bounded or over HTTP/2) and lightkube under
many concurrent callers, it spends about a tenth of httpx's CPU per request (docs/performance.md, "The kube
client"). `Kube` takes any `Transport`; the in-process tests hand it an httpx client over httpx.MockTransport."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import logging
import ssl
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any, Protocol, cast

import aiohttp
import httpx
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from wharf.api.app import GROUP, PLURAL, VERSION
from wharf.kube.errors import ConflictError, KubeError, NotFoundError
from wharf.render.names import FIELD_MANAGER, selector_text

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30.0, connect=5.0)
# Requests in flight to the apiserver at most (docs/performance.md, "The kube client"). The reconcile's workers
# are fewer than this, so a request waits on nothing but the apiserver; without a bound, every waiting request
# sits in the connection pool's queue, whose bookkeeping (httpcore's) grew with queue length x connections.
MAX_IN_FLIGHT = 16

# Plural resource names of the kinds wharf writes or reads (no discovery round-trips needed).
_PLURALS = {
    "Deployment": "deployments",
    "Service": "services",
    "Secret": "secrets",
    "Pod": "pods",
    "Event": "events",
    "Ingress": "ingresses",
    "HTTPRoute": "httproutes",
    "App": PLURAL,
}
APP_API_VERSION = f"{GROUP}/{VERSION}"


def collection_path(api_version: str, kind: str, namespace: str) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{_PLURALS[kind]}"


def _resource(path: str) -> str:
    """The resource (plural, with a subresource) a request path names: metrics by resource, not by object."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    if "namespaces" in parts:
        rest = parts[parts.index("namespaces") + 2 :]
        return "/".join([rest[0], *rest[2:]]) if rest else "namespaces"
    return parts[-1]


def _error(status: int, content: bytes, what: str) -> KubeError:
    try:
        message = json.loads(content).get("message") or f"HTTP {status}"
    except (ValueError, AttributeError):
        message = content[:500].decode("utf-8", "replace") or f"HTTP {status}"
    text = f"{what}: {message}"
    if status == 404:
        return NotFoundError(text, status=404, detail=message)
    if status == 409:
        return ConflictError(text, status=409, detail=message)
    return KubeError(text, status=status, detail=message)


def load_configuration(kubeconfig: str | None = None) -> k8s.Configuration:
    """In-cluster service account when running in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    configuration = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


TOKEN_REFRESH_SECONDS = 60.0  # in-cluster tokens rotate hourly; the kubelet renews them long before expiry


class _Token:
    """Bearer token from the configuration, re-read at most every TOKEN_REFRESH_SECONDS: in-cluster tokens rotate.
    The read runs in a thread: the refresh hook reads files and, for a kubeconfig `exec` credential plugin, runs a
    process, and the event loop never waits on that."""

    def __init__(self, configuration: k8s.Configuration) -> None:
        self._configuration = configuration
        self._cached: tuple[float, str | None] | None = None

    def _read(self) -> str | None:
        # The kubernetes client stores a kubeconfig or in-cluster token under "BearerToken" (already "Bearer ...");
        # older versions and hand-made configurations used "authorization". get_api_key_with_prefix runs the
        # refresh hook itself.
        token = self._configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        return str(token) if token else None

    async def get(self) -> str | None:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] >= TOKEN_REFRESH_SECONDS:
            self._cached = (now, await asyncio.to_thread(self._read))
        return self._cached[1]


class _ConfigurationAuth(httpx.Auth):
    """_Token for an httpx client."""

    def __init__(self, configuration: k8s.Configuration) -> None:
        self._token = _Token(configuration)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("the apiserver client is an httpx.AsyncClient")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._token.get()
        if token:
            request.headers["Authorization"] = token
        yield request


def _tls(configuration: k8s.Configuration) -> ssl.SSLContext | bool:
    if not configuration.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


class Transport(Protocol):
    """One request to the apiserver: (HTTP status, body). Raises KubeError when no answer came."""

    async def request(
        self, method: str, path: str, *, params: Mapping[str, str], body: Any, headers: Mapping[str, str]
    ) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


class AiohttpTransport:
    """The operator's transport: aiohttp, at most MAX_IN_FLIGHT connections."""

    def __init__(self, configuration: k8s.Configuration) -> None:
        self._base = configuration.host.rstrip("/")
        self._tls = _tls(configuration)
        self._token = _Token(configuration)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use, on the running event loop (aiohttp binds a session to the loop that makes it).
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT, ssl=self._tls),
                timeout=REQUEST_TIMEOUT,
                headers={"Accept": "application/json", "User-Agent": "wharf-operator"},
            )
        return self._session

    async def request(
        self, method: str, path: str, *, params: Mapping[str, str], body: Any, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        sent = dict(headers)
        token = await self._token.get()
        if token:
            sent["Authorization"] = token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        try:
            async with self._open().request(
                method, self._base + path, params=dict(params), data=data, headers=sent
            ) as response:
                return response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise KubeError(f"{method} {path}: {exc!r}") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class HttpxTransport:
    """An httpx client as the transport: the in-process tests' (httpx.MockTransport)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def request(
        self, method: str, path: str, *, params: Mapping[str, str], body: Any, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        try:
            response = await self._http.request(method, path, params=dict(params), json=body, headers=dict(headers))
        except httpx.HTTPError as exc:
            raise KubeError(f"{method} {path}: {exc}") from exc
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self._http.aclose()


def http_client(configuration: k8s.Configuration) -> httpx.AsyncClient:
    """An httpx client with the configuration's credentials (the kube client benchmark's bounded httpx)."""
    return httpx.AsyncClient(
        base_url=configuration.host,
        verify=_tls(configuration),
        auth=_ConfigurationAuth(configuration),
        timeout=httpx.Timeout(30.0, connect=5.0, pool=None),
        limits=httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT),
        headers={"Accept": "application/json", "User-Agent": "wharf-operator"},
    )


RequestHook = Callable[[str, str, int], None]  # (verb, kind's plural, HTTP status or 0 for no answer)


class Kube:
    """The few apiserver calls wharf makes. At most MAX_IN_FLIGHT at a time: the others wait on a semaphore, which
    costs nothing per waiter, not in the connection pool's queue. `on_request` counts them (the metrics)."""

    def __init__(self, transport: Transport | httpx.AsyncClient, on_request: RequestHook | None = None) -> None:
        self._transport = HttpxTransport(transport) if isinstance(transport, httpx.AsyncClient) else transport
        self._room = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._on_request = on_request

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Content-Type": content_type} if content_type else {}
        status = 0
        try:
            async with self._room:
                status, content = await self._transport.request(
                    method, path, params=query or {}, body=body, headers=headers
                )
        finally:
            log.debug("%s %s -> %s", method, path, status or "no answer")
            if self._on_request is not None:
                self._on_request(method, _resource(path), status)
        if status >= 400:
            raise _error(status, content, f"{method} {path}")
        return cast(dict[str, Any], json.loads(content) if content else {})

    async def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply, forcing wharf's ownership of the fields it sets."""
        meta = obj["metadata"]
        path = f"{collection_path(obj['apiVersion'], obj['kind'], meta['namespace'])}/{meta['name']}"
        return await self._call(
            "PATCH",
            path,
            body=dict(obj),
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            content_type="application/apply-patch+yaml",
        )

    async def put_managed_fields(
        self, api_version: str, kind: str, namespace: str, name: str, managed: list[dict[str, Any]], version: str
    ) -> dict[str, Any]:
        """Replace an object's managedFields (render/ownership.py: take_over), only if it is still at `version`."""
        return await self._call(
            "PATCH",
            f"{collection_path(api_version, kind, namespace)}/{name}",
            body={"metadata": {"managedFields": managed, "resourceVersion": version}},
            query={"fieldManager": FIELD_MANAGER},
            content_type="application/merge-patch+json",
        )

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self._call(
                "DELETE",
                f"{collection_path(api_version, kind, namespace)}/{name}",
                query={"propagationPolicy": "Background"},
            )

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._call("GET", f"{collection_path(api_version, kind, namespace)}/{name}")
        except NotFoundError:
            return None

    async def list(
        self, api_version: str, kind: str, namespace: str, selector: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        result = await self._call(
            "GET", collection_path(api_version, kind, namespace), query={"labelSelector": selector_text(selector)}
        )
        return cast(list[dict[str, Any]], result.get("items") or [])

    async def get_app(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.get(APP_API_VERSION, "App", namespace, name)

    async def patch_app_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of `status` (see merge_patch): `null` deletes a key, lists are written whole. Returns
        the App as written."""
        path = f"{collection_path(APP_API_VERSION, 'App', namespace)}/{name}/status"
        return await self._call(
            "PATCH", path, body={"status": dict(status)}, content_type="application/merge-patch+json"
        )

    async def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data, decoded; None when it does not exist."""
        secret = await self.get("v1", "Secret", namespace, name)
        if secret is None:
            return None
        data = secret.get("data") or {}
        return {key: base64.b64decode(value).decode("utf-8", "replace") for key, value in data.items()}

    async def create_event(
        self, namespace: str, app_name: str, app_uid: str, type_: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event about the App, as `kubectl describe app` shows them."""
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{app_name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": APP_API_VERSION,
                "kind": "App",
                "name": app_name,
                "namespace": namespace,
                "uid": app_uid,
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "wharf"},
            "reportingComponent": "wharf.dev/operator",
            "reportingInstance": "wharf",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._call("POST", collection_path("v1", "Event", namespace), body=event)
