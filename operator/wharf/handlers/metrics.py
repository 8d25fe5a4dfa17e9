"""Prometheus metrics: reconciles by result and duration, registry requests by result and latency, Apps by Ready
state, pull failures."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

RECONCILES = Counter("wharf_reconciles", "App reconciles by result", ["result"], registry=REGISTRY)
RECONCILE_SECONDS = Histogram("wharf_reconcile_duration_seconds", "Time per App reconcile", registry=REGISTRY)
REGISTRY_REQUESTS = Counter(
    "wharf_registry_requests",
    "Requests to image registries by registry and outcome",
    ["registry", "outcome"],
    registry=REGISTRY,
)
REGISTRY_SECONDS = Histogram(
    "wharf_registry_request_duration_seconds", "Registry request latency", ["registry"], registry=REGISTRY
)
APPS = Gauge("wharf_apps", "Apps by Ready condition status", ["ready"], registry=REGISTRY)
PULL_FAILURES = Counter(
    "wharf_pull_failures", "Transitions of an App into a pull failure, by reason", ["reason"], registry=REGISTRY
)


def registry_request(registry: str, outcome: str, seconds: float) -> None:
    REGISTRY_REQUESTS.labels(registry=registry, outcome=outcome).inc()
    REGISTRY_SECONDS.labels(registry=registry).observe(seconds)


KUBE_REQUESTS = Counter(
    "wharf_kube_requests",
    "Requests the reconcile makes to the apiserver, by verb, resource and HTTP status (0: no answer)",
    ["verb", "resource", "code"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge("wharf_queue_depth", "Apps waiting for or in a reconcile", registry=REGISTRY)


def kube_request(verb: str, resource: str, status: int) -> None:
    KUBE_REQUESTS.labels(verb=verb, resource=resource, code=str(status)).inc()
