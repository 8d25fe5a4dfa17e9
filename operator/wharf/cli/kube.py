"""The CLI's apiserver access: a synchronous httpx client, configured like kubectl (KUBECONFIG or --kubeconfig,
--context, -n). The CLI is a plain process, not on kopf's event loop, so blocking calls are right here."""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import httpx

from wharf.api.app import GROUP, PLURAL, VERSION

APPS = f"/apis/{GROUP}/{VERSION}"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class KubeError(Exception):
    """An apiserver answer the command cannot go on with; `status` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Target:
    """Where the CLI works: the kubeconfig context and namespace (like kubectl)."""

    context: str
    namespace: str


def _raise_for_status(response: httpx.Response) -> None:
    """The apiserver's own `message` (a Status object) when it sent one, else the body's start."""
    if response.status_code < 400:
        return
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        message = None
    raise KubeError(str(message or response.text[:500] or response.reason_phrase), response.status_code)


def _load(kubeconfig: str | None, context: str | None) -> tuple[Any, Target]:
    # Imported here: the `kubernetes` package takes a second to import, and `wharf convert` never needs it.
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    configuration = k8s.Configuration()
    try:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
        contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (k8s_config.ConfigException, OSError) as error:
        raise KubeError(f"no usable kubeconfig ({error}): set KUBECONFIG or --kubeconfig, as for kubectl") from None
    chosen = next((c for c in contexts if c["name"] == context), active) if context else active
    namespace = (chosen.get("context") or {}).get("namespace") or "default"
    return configuration, Target(context=chosen["name"], namespace=namespace)


class Kube:
    """The apiserver calls the commands make."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None):
        configuration, target = _load(kubeconfig, context)
        self.target = Target(target.context, namespace or target.namespace)
        verify: ssl.SSLContext | bool = False
        if configuration.verify_ssl:
            verify = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
            if configuration.cert_file:
                verify.load_cert_chain(configuration.cert_file, configuration.key_file)
        headers = {"Accept": "application/json", "User-Agent": "wharf-cli"}
        token = configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        if token:
            headers["Authorization"] = str(token)
        self._http = httpx.Client(base_url=configuration.host, verify=verify, timeout=TIMEOUT, headers=headers)

    @property
    def namespace(self) -> str:
        return self.target.namespace

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Content-Type": content_type} if content_type else {}
        response = self._send(method, path, params=dict(query or {}), json=body, headers=headers)
        return cast(dict[str, Any], response.json() if response.content else {})

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; an apiserver refusal becomes a KubeError carrying its status and message."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise KubeError(f"cannot reach the cluster ({self.target.context}): {error}") from None
        _raise_for_status(response)
        return response

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            return self.call("GET", path)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    def apply(self, path: str, obj: Mapping[str, Any], manager: str) -> dict[str, Any]:
        """Server-side apply under `manager`, without forcing: fields another manager (a GitOps tool) owns are a
        conflict to report, not to take."""
        return self.call(
            "PATCH", path, body=dict(obj), query={"fieldManager": manager}, content_type="application/apply-patch+yaml"
        )

    def merge_patch(self, path: str, patch: Mapping[str, Any], manager: str) -> dict[str, Any]:
        return self.call(
            "PATCH",
            path,
            body=dict(patch),
            query={"fieldManager": manager},
            content_type="application/merge-patch+json",
        )

    def delete(self, path: str) -> bool:
        try:
            self.call("DELETE", path, query={"propagationPolicy": "Background"})
        except KubeError as error:
            if error.status == 404:
                return False
            raise
        return True

    def items(self, path: str, selector: str | None = None) -> list[dict[str, Any]]:
        result = self.call("GET", path, query={"labelSelector": selector} if selector else None)
        return cast(list[dict[str, Any]], result.get("items") or [])

    def stream_lines(self, path: str, query: Mapping[str, str]) -> Iterator[str]:
        """The lines of a streamed answer (pod logs with follow=true)."""
        try:
            with self._http.stream("GET", path, params=dict(query), timeout=httpx.Timeout(None, connect=5.0)) as r:
                if r.status_code >= 400:
                    r.read()
                    _raise_for_status(r)
                yield from r.iter_lines()
        except httpx.HTTPError as error:
            raise KubeError(f"log stream ended: {error}") from None

    def text(self, path: str, query: Mapping[str, str]) -> str:
        return self._send("GET", path, params=dict(query)).text

    # -- paths ---------------------------------------------------------------------------------------------------
    def app_path(self, name: str | None = None) -> str:
        base = f"{APPS}/namespaces/{self.namespace}/{PLURAL}"
        return f"{base}/{name}" if name else base

    def core_path(self, plural: str, name: str | None = None) -> str:
        base = f"/api/v1/namespaces/{self.namespace}/{plural}"
        return f"{base}/{name}" if name else base

    def apps_v1_path(self, plural: str, name: str | None = None) -> str:
        base = f"/apis/apps/v1/namespaces/{self.namespace}/{plural}"
        return f"{base}/{name}" if name else base
