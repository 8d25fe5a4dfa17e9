"""The kopf registrations: thin, each hands the work to the Reconciler."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from prometheus_client import start_http_server

from wharf.api.app import GROUP, PLURAL, VERSION
from wharf.config import Settings
from wharf.handlers import metrics
from wharf.handlers.reconciler import Reconciler, RetryLaterError
from wharf.kube import Kube
from wharf.kube.client import http_client, load_configuration
from wharf.registry import RegistryClient
from wharf.render.names import APP_LABEL

log = logging.getLogger(__name__)
APP = (GROUP, VERSION, PLURAL)
SAFETY_NET_SECONDS = 60.0  # re-check every App now and then, in case an event was missed
SAFETY_NET_CONCURRENCY = 8

_state: dict[str, Any] = {}


def _reconciler() -> Reconciler:
    return _state["reconciler"]  # type: ignore[no-any-return]


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


def configure(settings: kopf.OperatorSettings, config: Settings) -> None:
    """kopf's settings for wharf."""
    # kopf's bookkeeping goes to annotations, never into the user's status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="wharf.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="wharf.dev")
    settings.posting.enabled = False  # wharf posts its own Events, only for meaningful transitions
    settings.watching.server_timeout = 300
    # The apiserver sends only wharf's pods and Deployments; the handlers' `labels=` filters alone would have every
    # pod and Deployment of the cluster streamed to and decoded by the operator.
    settings.watching.label_selectors["v1", "pods"] = APP_LABEL
    settings.watching.label_selectors["apps", "v1", "deployments"] = APP_LABEL
    # Sharding: this replica is sent only the Apps its selector matches (the other replicas serve the rest).
    if config.app_selector:
        settings.watching.label_selectors[APP] = config.app_selector
    # With peering, a standby replica takes over once the active one's keep-alive is this old (kopf's default,
    # 60 s, would leave the Apps unserved for a minute after the active replica dies).
    settings.peering.lifetime = config.peering_lifetime_seconds


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    config = Settings.from_env()
    configure(settings, config)
    kube = Kube(http_client(load_configuration()))
    registry = RegistryClient(config, on_request=metrics.registry_request)
    reconciler = Reconciler(kube, registry, config)
    _state.update(kube=kube, registry=registry, reconciler=reconciler)
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


@kopf.index(*APP)
def served_apps(namespace: str | None, name: str | None, **_: Any) -> dict[tuple[str, str], bool]:
    """The Apps this replica serves: kopf is sent only those (every App, or those the App selector matches)."""
    return {(namespace or "", name or ""): True}


@kopf.on.event(*APP)
def app_event(type: str, namespace: str | None, name: str | None, **_: Any) -> None:
    # DELETED also when an App leaves this replica's slice (relabelled to another shard): the safety net must
    # stop refreshing it here.
    if type == "DELETED" and "reconciler" in _state:
        _reconciler().forget(namespace or "", name or "")


@kopf.on.event("", "v1", "pods", labels={APP_LABEL: kopf.PRESENT})
async def pod_changed(labels: kopf.Labels, namespace: str | None, **kwargs: Any) -> None:
    await _refresh_if_served(namespace or "", labels[APP_LABEL], kwargs["served_apps"])


@kopf.on.event("apps", "v1", "deployments", labels={APP_LABEL: kopf.PRESENT})
async def deployment_changed(labels: kopf.Labels, namespace: str | None, **kwargs: Any) -> None:
    # Status moves and hand edits alike: the reconcile re-applies (no-op when nothing drifted) and reports.
    await _refresh_if_served(namespace or "", labels[APP_LABEL], kwargs["served_apps"])


async def _refresh_if_served(namespace: str, name: str, served: kopf.Index[tuple[str, str], bool]) -> None:
    # Not another shard's App (nor one deleted: the safety net forgets those).
    if (namespace, name) in served:
        await _reconciler().refresh(namespace, name)
