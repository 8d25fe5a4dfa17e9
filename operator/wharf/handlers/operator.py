"""The kopf registrations: thin. kopf watches the Apps and what they own and keeps them in indexes (the caches,
filled before any handler runs); every change only puts the App's key on the work queue, whose workers run the
Reconciler. No kopf handler writes anything (no change-detection annotations, no finalizers, no kopf Events)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
from collections.abc import Mapping
from typing import Any

import kopf
from prometheus_client import start_http_server

from wharf.api.app import GROUP, PLURAL, VERSION
from wharf.config import Routing, Settings
from wharf.handlers import metrics
from wharf.handlers.cache import Caches, Key, app_key, owner_key, strip_app, strip_owned, strip_pod
from wharf.handlers.queue import WorkQueue
from wharf.handlers.reconciler import Reconciler
from wharf.handlers.routes import INDEX, RouteOwnership, route_claims
from wharf.kube import Kube
from wharf.kube.client import AiohttpTransport, load_configuration
from wharf.registry import RegistryClient
from wharf.render.names import APP_LABEL
from wharf.status.outcome import looked_at_periodically

log = logging.getLogger(__name__)
APP = (GROUP, VERSION, PLURAL)
OWNED = {APP_LABEL: kopf.PRESENT}  # the label selector of every object an App owns
SAFETY_NET_SECONDS = 60.0  # look again at Apps whose state may change where wharf does not watch
FULL_RESYNC_EVERY = 10  # safety-net rounds: every App is reconciled from the caches (writes nothing if all agree)
WORKERS = 32  # reconciles at a time: each waits mostly on the apiserver (at most MAX_IN_FLIGHT requests) or a registry
SETTINGS = Settings.from_env()  # the routing kinds decide which objects are watched
kopf.index(*APP, id=INDEX)(route_claims(SETTINGS.default_domain))  # S19's route claims

_state: dict[str, Any] = {}


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


def configure(settings: kopf.OperatorSettings, config: Settings) -> None:
    """kopf's settings for wharf."""
    # kopf's bookkeeping goes to annotations, never into the user's status (no handler of wharf's needs any).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="wharf.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="wharf.dev")
    settings.posting.enabled = False  # wharf posts its own Events, only for meaningful transitions
    settings.watching.server_timeout = 300
    # After a kube-apiserver restart, custom resources answer 429 "storage is (re)initializing" for a while: retry
    # every few seconds for about a minute, rather than waiting up to 21 s between tries (kopf's default).
    settings.networking.error_backoffs = (1, 1, 2, 2, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5)
    # The apiserver sends only wharf's objects; the handlers' `labels=` filters alone would have every pod and
    # Deployment of the cluster streamed to and decoded by the operator.
    # A shard (below) is sent only the objects of its own Apps too, when its selector is on the shard label that
    # wharf copies onto them.
    owned = ",".join(filter(None, [APP_LABEL, config.owned_selector]))
    settings.watching.label_selectors["v1", "pods"] = owned
    settings.watching.label_selectors["apps", "v1", "deployments"] = owned
    settings.watching.label_selectors["v1", "services"] = owned
    settings.watching.label_selectors["networking.k8s.io", "v1", "ingresses"] = owned
    settings.watching.label_selectors["gateway.networking.k8s.io", "v1", "httproutes"] = owned
    # Sharding: this replica is sent only the Apps its selector matches (the other replicas serve the rest). An App
    # not in its cache is not its to reconcile; one relabelled away leaves the cache as if deleted.
    if config.app_selector:
        settings.watching.label_selectors[APP] = config.app_selector
    # With peering, a standby replica takes over once the active one's keep-alive is this old (kopf's default,
    # 60 s, would leave the Apps unserved for a minute after the active replica dies).
    settings.peering.lifetime = config.peering_lifetime_seconds


# -- the caches (kopf indexes): one entry per object, stripped to what the reconcile reads -----------------------
@kopf.index(*APP)
def wharf_apps(body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]]:
    return {app_key(body): strip_app(body)}


@kopf.index("apps", "v1", "deployments", labels=OWNED)
def wharf_deployments(body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]]:
    return {owner_key(body): strip_owned(body)}


@kopf.index("v1", "services", labels=OWNED)
def wharf_services(body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]]:
    return {owner_key(body): strip_owned(body)}


@kopf.index("v1", "pods", labels=OWNED)
def wharf_pods(body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]]:
    return {owner_key(body): strip_pod(body)}


def _routing_index(body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]]:
    return {owner_key(body): strip_owned(body)}


ROUTING_KINDS = {
    Routing.INGRESS: ("Ingress", ("networking.k8s.io", "v1", "ingresses")),
    Routing.GATEWAY: ("HTTPRoute", ("gateway.networking.k8s.io", "v1", "httproutes")),
}
if SETTINGS.routing in ROUTING_KINDS:
    kopf.index(*ROUTING_KINDS[SETTINGS.routing][1], id="wharf_routes", labels=OWNED)(_routing_index)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
    config = SETTINGS
    configure(settings, config)
    owned = {"Deployment": kwargs["wharf_deployments"], "Service": kwargs["wharf_services"]}
    if config.routing in ROUTING_KINDS:
        owned[ROUTING_KINDS[config.routing][0]] = kwargs["wharf_routes"]
    caches = Caches(apps=kwargs["wharf_apps"], owned=owned, pods=kwargs["wharf_pods"])
    kube = Kube(AiohttpTransport(load_configuration()), on_request=metrics.kube_request)
    registry = RegistryClient(config, on_request=metrics.registry_request)
    routes = RouteOwnership(kwargs[INDEX], config, gone=caches.gone)
    reconciler = Reconciler(kube, registry, config, caches, route_conflict=routes.conflict)
    queue: WorkQueue[Key] = WorkQueue(reconciler.reconcile, WORKERS, on_depth=metrics.QUEUE_DEPTH.set)
    queue.start()
    _state.update(kube=kube, registry=registry, reconciler=reconciler, queue=queue, caches=caches, routes=routes)
    _state["safety_net"] = asyncio.create_task(safety_net(caches, queue), name="wharf safety net")
    start_http_server(config.metrics_port, registry=metrics.REGISTRY)
    log.info("wharf started; metrics on :%d", config.metrics_port)


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if "safety_net" in _state:
        _state["safety_net"].cancel()
    if "queue" in _state:
        await _state["queue"].stop()
    if "registry" in _state:
        await _state["registry"].aclose()
    if "kube" in _state:
        await _state["kube"].aclose()


def _enqueue(key: Key) -> None:
    queue: WorkQueue[Key] | None = _state.get("queue")
    if queue is not None and key[1]:
        queue.add(key)


async def safety_net(caches: Caches, queue: WorkQueue[Key]) -> None:
    """Every SAFETY_NET_SECONDS, the Apps whose state may change where wharf does not watch (status/outcome.py:
    looked_at_periodically); every FULL_RESYNC_EVERY rounds, all of them, in case an event was missed. A
    reconcile that finds the caches agreeing with what it renders writes nothing. One task, not a kopf timer: a
    kopf timer puts a finalizer on every App, which would block deleting Apps, their namespaces and the CRD
    whenever the operator is not running."""
    for round_ in itertools.count(1):
        await asyncio.sleep(SAFETY_NET_SECONDS)
        everything = round_ % FULL_RESYNC_EVERY == 0
        for key in caches.live_keys():  # not those known to be gone
            body = caches.app(key)
            if body is not None and (everything or looked_at_periodically(body)):
                queue.add(key)


# -- events: each only queues the App it concerns -----------------------------------------------------------------
@kopf.on.event(*APP)
async def app_changed(body: kopf.Body, event: kopf.RawEvent, **_: Any) -> None:
    key = app_key(body)
    _enqueue(key)
    # S19: when its route claims came, changed or went, the Apps of other namespaces they overlap may win or lose a
    # route.
    routes: RouteOwnership | None = _state.get("routes")
    if routes is not None:
        routes.changed(*key, event.get("type") is None, _enqueue)


@kopf.on.event("v1", "pods", labels=OWNED)
async def pod_changed(body: kopf.Body, **_: Any) -> None:
    _enqueue(owner_key(body))


@kopf.on.event("apps", "v1", "deployments", labels=OWNED)
async def deployment_changed(body: kopf.Body, **_: Any) -> None:
    # Status moves and hand edits alike: the reconcile re-applies only what differs, and reports.
    _enqueue(owner_key(body))


@kopf.on.event("v1", "services", labels=OWNED)
async def service_changed(body: kopf.Body, **_: Any) -> None:
    _enqueue(owner_key(body))


async def _routing_changed(body: kopf.Body, **_: Any) -> None:
    _enqueue(owner_key(body))


if SETTINGS.routing in ROUTING_KINDS:
    kopf.on.event(*ROUTING_KINDS[SETTINGS.routing][1], id="wharf_route_changed", labels=OWNED)(_routing_changed)
