"""S19 on the real control plane, with Ingress routing and with Gateway API HTTPRoutes (the Gateway API's own
standard-channel CRDs, harness `gateway_api`): a route belongs to one namespace, and Apps of one namespace share it.

An operator of its own (harness solo_operator) with WHARF_ROUTING=ingress or gateway and the cluster admin's routing
annotations, watching three namespaces: the oldest claim keeps a host, a later App in another namespace is
Ready=False RouteConflict naming the owner and gets no routing object, a wildcard never takes a host another
namespace claims, Apps of one namespace share a route, and the route passes to the next in line when its owner goes.
The manifest's annotations (an nginx server-snippet, an auth-url at the metadata service) reach the pods, never the
routing objects. Apps of one namespace on one route (CF blue-green) each have their own Service for it, and each of
these Services selects the instances of both: their EndpointSlices list the pods of both Apps, then of the one left.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from harness.apps import app_resource
from harness.fixtures_operator import Operator, SoloOperator
from harness.images import STANDARD_IMAGES, push_image
from harness.registry import RegistryServer
from wharf.render.names import APPLIED_HASH_ANNOTATION, ROUTE_ANNOTATION, route_label

pytestmark = [pytest.mark.cluster, pytest.mark.registry]

ADMIN_ANNOTATIONS = {"cert-manager.io/cluster-issuer": "edge-ca"}
INJECTED = {
    "nginx.ingress.kubernetes.io/server-snippet": "location / { proxy_pass http://169.254.169.254; }",
    "nginx.ingress.kubernetes.io/auth-url": "http://169.254.169.254/latest/meta-data/",
}
Routed = tuple[str, str, str, int]  # (host, path, backend Service, its port)


@dataclass(frozen=True)
class Mode:
    """How the cluster admin routes (S11), and how to read the routing objects of that kind."""

    resource: str  # what kubectl calls the routing objects
    env: dict[str, str]

    def routed(self, obj: dict[str, Any]) -> list[Routed]:
        spec = obj["spec"]
        if obj["kind"] == "Ingress":
            return [
                (rule["host"], p["path"], p["backend"]["service"]["name"], p["backend"]["service"]["port"]["number"])
                for rule in spec["rules"]
                for p in rule["http"]["paths"]
            ]
        # The admin's Gateway (the Gateway API's CRD fills in the defaults: group, kind, a backend's weight).
        assert [(p["kind"], p["name"]) for p in spec["parentRefs"]] == [("Gateway", "edge")], spec
        return [
            (host, rule["matches"][0]["path"]["value"], ref["name"], ref["port"])
            for host in spec["hostnames"]
            for rule in spec["rules"]
            for ref in rule["backendRefs"]
        ]


INGRESS = Mode("ingresses", {"WHARF_ROUTING": "ingress"})
GATEWAY = Mode("httproutes", {"WHARF_ROUTING": "gateway", "WHARF_GATEWAY_NAME": "edge"})
MODES = [pytest.param(INGRESS, id="ingress"), pytest.param(GATEWAY, id="httproute")]


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> Mode:
    chosen: Mode = request.param
    if chosen is GATEWAY:
        request.getfixturevalue("gateway_api")
    return chosen


def _app(name: str, namespace: str, image: str, *routes: str, **manifest: Any) -> dict[str, Any]:
    return app_resource(name, namespace, image, memory="64M", routes=[{"route": r} for r in routes], **manifest)


def _objects(op: Operator, mode: Mode, namespace: str, app: str) -> list[dict[str, Any]]:
    out = op.cluster.kubectl("get", mode.resource, "-n", namespace, "-l", f"wharf.dev/app={app}", "-o", "json")
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return items


def _routed(op: Operator, mode: Mode, namespace: str, app: str) -> list[Routed]:
    """What the App's routing objects route, each backend checked: a Service of the App's own for that route,
    selecting the route's label (S19), on the port the App routes to."""
    routed = sorted(r for obj in _objects(op, mode, namespace, app) for r in mode.routed(obj))
    for host, path, backend, port in routed:
        service = op.get("service", backend, namespace) or {}
        assert [o["name"] for o in service["metadata"]["ownerReferences"]] == [app], service
        assert service["metadata"]["annotations"][ROUTE_ANNOTATION] == host + path
        assert service["spec"]["selector"] == {route_label(host, path): "true"}
        assert service["spec"]["ports"][0]["port"] == port
    return routed


def _ready(op: Operator, name: str, namespace: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        condition = op.condition(name, namespace)
        return condition if condition.get("status") == "True" else None

    found: dict[str, Any] = op.wait_for(f"{namespace}/{name} Ready", ready, timeout=90)
    return found


def _conflict(op: Operator, name: str, namespace: str, owner: str) -> dict[str, Any]:
    def said() -> dict[str, Any] | None:
        ready = op.condition(name, namespace)
        return ready if ready.get("reason") == "RouteConflict" and owner in ready.get("message", "") else None

    ready: dict[str, Any] = op.wait_for(f"{namespace}/{name} RouteConflict naming {owner}", said, timeout=60)
    return ready


@pytest.mark.parametrize("mode", MODES, indirect=True)
def test_routes_are_owned_by_the_first_namespace(
    mode: Mode, solo_operator: SoloOperator, registry_plain: RegistryServer
) -> None:
    op, _ = solo_operator({**mode.env, "WHARF_ROUTING_ANNOTATIONS": json.dumps(ADMIN_ANNOTATIONS)}, count=3)
    team_a, team_b, team_c = op.namespaces
    push_image(registry_plain, "s19/app", "v1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/s19/app:v1"

    # S11, S19: the first claim is routed (hosts, paths, backends), with the admin's annotations only; the
    # manifest's annotations are on the pods.
    op.apply(
        _app("shop", team_a, image, "shop.example.com", "shop.example.com/api", metadata={"annotations": INJECTED})
    )
    _ready(op, "shop", team_a)
    assert [(host, path, port) for host, path, _, port in _routed(op, mode, team_a, "shop")] == [
        ("shop.example.com", "/", 8080),
        ("shop.example.com", "/api", 8080),
    ]
    for obj in _objects(op, mode, team_a, "shop"):
        # wharf's own bookkeeping (the hash of what it applied) aside, only the admin's annotations.
        annotations = dict(obj["metadata"].get("annotations") or {})
        assert annotations.pop(APPLIED_HASH_ANNOTATION, None) is not None
        assert annotations == ADMIN_ANNOTATIONS
    deployment = op.get("deployment", "shop-web", team_a) or {}
    template = deployment["spec"]["template"]["metadata"]["annotations"]
    assert {key: template.get(key) for key in INJECTED} == INJECTED

    # Another namespace asks for the same host: not Ready, named owner, no routing object; the App itself runs.
    op.apply(_app("shop", team_b, image, "Shop.Example.com"))
    ready = _conflict(op, "shop", team_b, f"belongs to App shop in namespace {team_a}")
    assert ready["status"] == "False"
    assert op.condition("shop", team_b, "Stalled")["reason"] == "RouteConflict"
    # The App itself runs all the same (its instances come up after the conflict is first reported).
    op.wait_for(
        f"{team_b}/shop InstancesAvailable",
        lambda: op.condition("shop", team_b, "InstancesAvailable").get("status") == "True",
        timeout=60,
    )
    assert _objects(op, mode, team_b, "shop") == []
    services = op.cluster.kubectl("get", "services", "-n", team_b, "-l", "wharf.dev/app=shop", "-o", "name")
    assert services.stdout.split() == ["service/shop"]  # its own Service only: no route Service either
    assert any(e["reason"] == "RouteConflict" and e["type"] == "Warning" for e in op.app_events(team_b, "shop"))

    # A wildcard in a third namespace never takes the hosts the others claim.
    op.apply(_app("all", team_c, image, "*.example.com"))
    _conflict(op, "all", team_c, f"belongs to App shop in namespace {team_a}")
    assert _objects(op, mode, team_c, "all") == []

    # Within the owning namespace, a second App may share the route (CF blue-green).
    op.apply(_app("shop-green", team_a, image, "shop.example.com"))
    _ready(op, "shop-green", team_a)
    assert [(host, path) for host, path, _, _ in _routed(op, mode, team_a, "shop-green")] == [("shop.example.com", "/")]

    # The owner's Apps go: the next in line (team-b, older than the wildcard) gets the route by itself.
    op.cluster.kubectl("delete", "app", "shop", "shop-green", "-n", team_a)
    _ready(op, "shop", team_b)
    op.wait_for(f"{team_b}'s routing object", lambda: len(_objects(op, mode, team_b, "shop")) == 1, timeout=30)
    assert [(host, path) for host, path, _, _ in _routed(op, mode, team_b, "shop")] == [("shop.example.com", "/")]
    _conflict(op, "all", team_c, f"belongs to App shop in namespace {team_b}")
    assert _objects(op, mode, team_c, "all") == []


def _pods(op: Operator, namespace: str, app: str) -> set[tuple[str, int]]:
    """(pod, port its web container is routed on) of the App's running pods that have an IP."""
    out = op.cluster.kubectl("get", "pods", "-n", namespace, "-l", f"wharf.dev/app={app}", "-o", "json")
    found = set()
    for pod in json.loads(out.stdout)["items"]:
        if pod["metadata"].get("deletionTimestamp") or not (pod.get("status") or {}).get("podIP"):
            continue
        ports = pod["spec"]["containers"][0]["ports"]
        found |= {(pod["metadata"]["name"], p["containerPort"]) for p in ports if p.get("name") == "http"}
    return found


def _endpoints(op: Operator, namespace: str, service: str) -> set[tuple[str, int]]:
    """(pod, port) of the ready endpoints in the Service's EndpointSlices (one slice per port number)."""
    out = op.cluster.kubectl(
        "get", "endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={service}", "-o", "json"
    )
    return {
        (endpoint["targetRef"]["name"], port["port"])
        for item in json.loads(out.stdout)["items"]
        for port in item.get("ports") or []
        for endpoint in item.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready") and endpoint.get("targetRef")
    }


@pytest.mark.parametrize("mode", MODES, indirect=True)
def test_apps_of_one_namespace_on_one_route_share_its_traffic(
    mode: Mode, solo_operator: SoloOperator, registry_plain: RegistryServer
) -> None:
    # S19 blue-green: blue (2 instances, port 8080) and green (port 9000) route shop.example.com in one namespace.
    op, namespace = solo_operator(mode.env)
    push_image(registry_plain, "s19/blue-green", "v1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/s19/blue-green:v1"
    op.apply(_app("blue", namespace, image, "shop.example.com", instances=2))
    green = _app("green", namespace, image, "shop.example.com")
    green["spec"]["ports"] = [9000]
    op.apply(green)
    _ready(op, "blue", namespace)
    _ready(op, "green", namespace)
    # Each App's routing object names its own Service for the route (S17: nothing is owned by two Apps).
    services = {}
    for app, port in (("blue", 8080), ("green", 9000)):
        ((host, path, service, service_port),) = _routed(op, mode, namespace, app)
        assert (host, path, service_port) == ("shop.example.com", "/", port)
        services[app] = service
    assert services["blue"] != services["green"]

    # Whichever routing object the ingress controller or gateway honours, its Service reaches the instances of both
    # Apps, each on the port it listens on.
    def three() -> set[tuple[str, int]] | None:
        found = _pods(op, namespace, "blue") | _pods(op, namespace, "green")
        return found if len(found) == 3 else None

    both: set[tuple[str, int]] = op.wait_for("3 instances with IPs", three)
    assert {port for _, port in both} == {8080, 9000}
    for app, service in services.items():
        op.wait_for(f"{app}'s route Service to reach both Apps", lambda s=service: _endpoints(op, namespace, s) == both)

    # Blue goes, its routing object and Service with it; green's Service now reaches green's instances only.
    op.cluster.kubectl("delete", "app", "blue", "-n", namespace, "--wait=true")
    only_green = _pods(op, namespace, "green")
    assert len(only_green) == 1
    op.wait_for(
        "green's route Service to reach green only",
        lambda: _endpoints(op, namespace, services["green"]) == only_green,
        timeout=60,
    )
    assert [service for _, _, service, _ in _routed(op, mode, namespace, "green")] == [services["green"]]
