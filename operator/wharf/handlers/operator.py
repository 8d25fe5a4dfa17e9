"""The kopf registrations: thin, each hands the work to the Reconciler."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

import kopf
from prometheus_client import start_http_server

from wharf.api.app import GROUP, PLURAL, VERSION
from wharf.config import Settings
from wharf.handlers import metrics
from wharf.handlers.reconciler import Reconciler, RetryLaterError
from wharf.handlers.routes import INDEX, RouteOwnership, route_claims
from wharf.kube import Kube
from wharf.kube.client import http_client, load_configuration
from wharf.registry import RegistryClient
from wharf.render.names import APP_LABEL

log = logging.getLogger(__name__)
APP = (GROUP, VERSION, PLURAL)
SAFETY_NET_SECONDS = 60.0  # re-check every App now and then, in case an event was missed
SAFETY_NET_CONCURRENCY = 8
__all__ = ["route_claims"]  # registered with kopf on import (S19's index of route claims)

_state: dict[str, Any] = {}


def _reconciler() -> Reconciler:
    return _state["reconciler"]  # type: ignore[no-any-return]


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    in_pod = kopf.login_with_service_account(**kwargs)
    if in_pod is None:
        return kopf.login_with_kubeconfig(**kwargs)
    # kopf names the apiserver https://kubernetes.default.svc, which needs cluster DNS. The kubelet gives every pod
    # the apiserver's address in KUBERNETES_SERVICE_HOST/PORT, which the kubernetes client's in-cluster config
    # (wharf.kube.client) and client-go use: one apiserver for both of wharf's clients, and no DNS needed
    # (hostNetwork pods, a cluster whose DNS is down).
    return dataclasses.replace(in_pod, server=in_cluster_server(os.environ) or in_pod.server)


def in_cluster_server(environ: Mapping[str, str]) -> str | None:
    """https://HOST:PORT from the kubelet's KUBERNETES_SERVICE_HOST/PORT (IPv6 in brackets), None without them."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf's settings for wharf."""
    # kopf's bookkeeping goes to annotations, never into the user's status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="wharf.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="wharf.dev")
    settings.posting.enabled = False  # wharf posts its own Events, only for meaningful transitions
    settings.watching.server_timeout = 300
    # After a kube-apiserver restart, custom resources answer 429 "storage is (re)initializing" for a while: retry
    # every few seconds for about a minute, rather than waiting up to 21 s between tries (kopf's default).
    settings.networking.error_backoffs = (1, 1, 2, 2, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5)
    # The apiserver sends only wharf's pods and Deployments; the handlers' `labels=` filters alone would have every
    # pod and Deployment of the cluster streamed to and decoded by the operator.
    settings.watching.label_selectors["v1", "pods"] = APP_LABEL
    settings.watching.label_selectors["apps", "v1", "deployments"] = APP_LABEL


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
    config = Settings.from_env()
    configure(settings)
    kube = Kube(http_client(load_configuration()))
    registry = RegistryClient(config, on_request=metrics.registry_request)
    routes = RouteOwnership(kwargs[INDEX], config)
    reconciler = Reconciler(kube, registry, config, route_conflict=routes.conflict)
    _state.update(kube=kube, registry=registry, reconciler=reconciler, routes=routes)
    _state["safety_net"] = asyncio.create_task(safety_net(reconciler), name="wharf safety net")
    start_http_server(config.metrics_port, registry=metrics.REGISTRY)
    log.info("wharf started; metrics on :%d", config.metrics_port)


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if "safety_net" in _state:
        _state["safety_net"].cancel()
    if "registry" in _state:
        await _state["registry"].aclose()
    if "kube" in _state:
        await _state["kube"].aclose()


@kopf.on.resume(*APP)
@kopf.on.create(*APP)
@kopf.on.update(*APP)
async def reconcile(body: kopf.Body, **_: Any) -> None:
    try:
        await _reconciler().reconcile(dict(body))
    except RetryLaterError as retry:
        raise kopf.TemporaryError(str(retry), delay=retry.delay) from retry


@kopf.on.event(*APP)
async def app_event(event: kopf.RawEvent, namespace: str | None, name: str | None, **_: Any) -> None:
    """S19: a route claim came, changed or went: the Apps of other namespaces it overlaps may win or lose a route."""
    routes: RouteOwnership = _state["routes"]
    await routes.changed(namespace or "", name or "", event.get("type") is None, _reconciler().refresh)


async def safety_net(reconciler: Reconciler) -> None:
    """Every SAFETY_NET_SECONDS, refresh each App this operator has reconciled: fixes made where wharf does not
    watch (a Secret, a tag pushed again) are noticed, and deleted Apps are forgotten (owner references make the
    garbage collector remove what they created, S15). One task, not a kopf timer: a kopf timer puts a finalizer on
    every App, which would block deleting Apps, their namespaces and the CRD whenever the operator is not running.
    A few Apps at a time, so one App waiting on a slow registry does not hold back the others."""
    room = asyncio.Semaphore(SAFETY_NET_CONCURRENCY)

    async def refresh(namespace: str, name: str) -> None:
        async with room:
            try:
                await reconciler.refresh(namespace, name)
            except Exception:  # one App's trouble must not stop the others' refresh
                log.exception("safety-net refresh of %s/%s failed", namespace, name)

    while True:
        await asyncio.sleep(SAFETY_NET_SECONDS)
        await asyncio.gather(*(refresh(namespace, name) for namespace, name in reconciler.known()))


@kopf.on.event("", "v1", "pods", labels={APP_LABEL: kopf.PRESENT})
async def pod_changed(labels: kopf.Labels, namespace: str | None, **_: Any) -> None:
    await _reconciler().refresh(namespace or "", labels[APP_LABEL])


@kopf.on.event("apps", "v1", "deployments", labels={APP_LABEL: kopf.PRESENT})
async def deployment_changed(labels: kopf.Labels, namespace: str | None, **_: Any) -> None:
    # Status moves and hand edits alike: the reconcile re-applies (no-op when nothing drifted) and reports.
    await _reconciler().refresh(namespace or "", labels[APP_LABEL])
