"""S11: routes become an Ingress or an HTTPRoute to the web Service's port, as the cluster admin enabled."""

from __future__ import annotations

import re

import pytest
from render_support import make_app, make_facts, of_kind, render_ok, schema_problems

from wharf.config import Routing, Settings

ROUTES = {"routes": [{"route": "shop.example.com"}, {"route": "www.example.com/store/cart"}]}
INGRESS = Settings(routing=Routing.INGRESS, ingress_class="nginx")
GATEWAY = Settings(routing=Routing.GATEWAY, gateway_name="edge", gateway_namespace="gateways")
ROUTING_KINDS = ("Ingress", "HTTPRoute")
DNS_HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _routing(settings: Settings, manifest: dict[str, object] = ROUTES) -> list[dict[str, object]]:
    rendered = render_ok(make_app(manifest), make_facts((3000,)), settings)
    return [o for o in rendered.objects if o["kind"] in ROUTING_KINDS]


def test_routing_none_renders_no_routing_objects_and_warns() -> None:
    # S11
    rendered = render_ok(make_app(ROUTES), settings=Settings(routing=Routing.NONE))
    assert not [o for o in rendered.objects if o["kind"] in ROUTING_KINDS]
    assert [w.reason for w in rendered.warnings if "not routed" in w.message] == ["RoutesNotRouted"]
    assert rendered.routes == ["shop.example.com", "www.example.com/store/cart"]


def test_ingress_routes_hosts_and_paths_to_the_web_service_port() -> None:
    # S11
    (ingress,) = _routing(INGRESS)
    assert ingress["kind"] == "Ingress"
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"  # type: ignore[index]
    rules = spec["rules"]  # type: ignore[index]
    assert [r["host"] for r in rules] == ["shop.example.com", "www.example.com"]
    paths = [r["http"]["paths"][0] for r in rules]
    assert [p["path"] for p in paths] == ["/", "/store/cart"]
    for path in paths:
        assert path["pathType"] == "Prefix"
        assert path["backend"] == {"service": {"name": "shop", "port": {"number": 3000}}}
    assert schema_problems(ingress) == []


def test_gateway_routes_with_one_httproute_per_hostname() -> None:
    # S11
    routes = _routing(GATEWAY)
    assert [r["kind"] for r in routes] == ["HTTPRoute", "HTTPRoute"]
    by_host = {r["spec"]["hostnames"][0]: r for r in routes}  # type: ignore[index]
    assert sorted(by_host) == ["shop.example.com", "www.example.com"]
    for route in routes:
        spec = route["spec"]
        assert len(spec["hostnames"]) == 1  # type: ignore[index]
        assert spec["parentRefs"] == [{"name": "edge", "namespace": "gateways"}]  # type: ignore[index]
        assert all(r["backendRefs"] == [{"name": "shop", "port": 3000}] for r in spec["rules"])  # type: ignore[index]
        assert schema_problems(route) == []
    paths = {h: [r["matches"][0]["path"]["value"] for r in o["spec"]["rules"]] for h, o in by_host.items()}  # type: ignore[index]
    assert paths == {"shop.example.com": ["/"], "www.example.com": ["/store/cart"]}


def test_gateway_routes_of_one_host_do_not_claim_another_hosts_paths() -> None:
    # S11: `a/api` and `b` must not make the gateway send `a/` or `b/api` to this App.
    manifest = {"routes": [{"route": "a.example.com/api"}, {"route": "b.example.com"}, {"route": "a.example.com/v2"}]}
    routes = _routing(GATEWAY, manifest)
    claimed = {
        (host, rule["matches"][0]["path"]["value"])
        for route in routes
        for host in route["spec"]["hostnames"]  # type: ignore[index]
        for rule in route["spec"]["rules"]  # type: ignore[index]
    }
    assert claimed == {("a.example.com", "/api"), ("a.example.com", "/v2"), ("b.example.com", "/")}
    names = [r["metadata"]["name"] for r in routes]  # type: ignore[index]
    assert len(set(names)) == 2
    # A route's name depends on its host only: adding a host leaves the others' objects in place.
    more = _routing(GATEWAY, {"routes": [*manifest["routes"], {"route": "0.example.com"}]})
    assert set(names) < {r["metadata"]["name"] for r in more}  # type: ignore[index]


@pytest.mark.parametrize("settings", [INGRESS, GATEWAY])
def test_no_route_means_no_routing_objects(settings: Settings) -> None:
    # S11
    assert _routing(settings, {"no-route": True}) == []
    assert render_ok(make_app({"no-route": True}), settings=settings).routes == []


@pytest.mark.parametrize("settings", [INGRESS, GATEWAY])
def test_no_routes_means_no_routing_objects(settings: Settings) -> None:
    # S11
    assert _routing(settings, {}) == []


@pytest.mark.parametrize("settings", [INGRESS, GATEWAY])
def test_route_port_and_case_do_not_reach_the_hostname(settings: Settings) -> None:
    # S11: a route may carry a port (`host:port`) and capitals; hostnames on Ingress/HTTPRoute are lowercase DNS names
    objs = _routing(settings, {"routes": [{"route": "Shop.Example.COM:8443/api"}, {"route": "*.example.com"}]})
    hosts = [
        host
        for obj in objs
        for host in (
            [r["host"] for r in obj["spec"]["rules"]] if obj["kind"] == "Ingress" else obj["spec"]["hostnames"]
        )  # type: ignore[index]
    ]
    assert sorted(hosts) == ["*.example.com", "shop.example.com"]
    assert all(DNS_HOST.match(h) for h in hosts)
    assert all(schema_problems(obj) == [] for obj in objs)


@pytest.mark.parametrize("settings", [INGRESS, GATEWAY])
def test_routing_follows_a_spec_port(settings: Settings) -> None:
    # S6, S11
    rendered = render_ok(make_app(ROUTES, ports=[9000]), make_facts((3000,)), settings)
    objs = [o for o in rendered.objects if o["kind"] in ROUTING_KINDS]
    assert objs
    assert all("9000" in repr(obj["spec"]) and "3000" not in repr(obj["spec"]) for obj in objs)
    assert of_kind(rendered, "Service")[0]["spec"]["ports"][0]["port"] == 9000
