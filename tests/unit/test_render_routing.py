"""S11: routes become an Ingress or an HTTPRoute, as the cluster admin enabled. S19: each names, per route, the App's
route Service, which selects the web instances of every App of the namespace on that route (CF blue-green)."""

from __future__ import annotations

import re

import pytest
from render_support import deployment, make_app, make_facts, of_kind, render_ok, schema_problems

from wharf.config import Routing, Settings
from wharf.render import names

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


def _service_of(host: str, path: str, app: str = "shop") -> str:
    return names.route_service_name(make_app(name=app), host, path)


def test_ingress_routes_hosts_and_paths_to_the_route_services() -> None:
    # S11, S19
    (ingress,) = _routing(INGRESS)
    assert ingress["kind"] == "Ingress"
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"  # type: ignore[index]
    rules = spec["rules"]  # type: ignore[index]
    assert [r["host"] for r in rules] == ["shop.example.com", "www.example.com"]
    paths = [r["http"]["paths"][0] for r in rules]
    assert [p["path"] for p in paths] == ["/", "/store/cart"]
    for rule, path in zip(rules, paths, strict=True):
        assert path["pathType"] == "Prefix"
        service = _service_of(rule["host"], path["path"])
        assert path["backend"] == {"service": {"name": service, "port": {"number": 3000}}}
    assert schema_problems(ingress) == []


def test_gateway_routes_with_one_httproute_per_hostname() -> None:
    # S11, S19
    routes = _routing(GATEWAY)
    assert [r["kind"] for r in routes] == ["HTTPRoute", "HTTPRoute"]
    by_host = {r["spec"]["hostnames"][0]: r for r in routes}  # type: ignore[index]
    assert sorted(by_host) == ["shop.example.com", "www.example.com"]
    for route in routes:
        spec = route["spec"]
        assert len(spec["hostnames"]) == 1  # type: ignore[index]
        assert spec["parentRefs"] == [{"name": "edge", "namespace": "gateways"}]  # type: ignore[index]
        (host,) = spec["hostnames"]  # type: ignore[index]
        for rule in spec["rules"]:  # type: ignore[index]
            path = rule["matches"][0]["path"]["value"]
            assert rule["backendRefs"] == [{"name": _service_of(host, path), "port": 3000}]
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


def _blue_green(
    settings: Settings, name: str, manifest: dict[str, object], ports: tuple[int, ...]
) -> dict[str, object]:
    rendered = render_ok(make_app(manifest, name=name), make_facts(ports), settings)
    return {
        "web": deployment(rendered),
        "services": {s["metadata"]["name"]: s for s in of_kind(rendered, "Service")},
        "routing": [o for o in rendered.objects if o["kind"] in ROUTING_KINDS],
    }


@pytest.mark.parametrize("settings", [INGRESS, GATEWAY])
def test_apps_on_one_route_each_route_to_the_instances_of_both(settings: Settings) -> None:
    # S19: blue and green share shop.example.com; green listens on another port. Each App's routing object names
    # its own Service for the route (S17: each App owns only its objects), and each of the two Services selects
    # the web instances of both Apps, on the port each one listens on (by name).
    shared = {"route": "Shop.example.com"}
    blue = _blue_green(settings, "blue", {"routes": [shared, {"route": "blue.example.com"}]}, (3000,))
    green = _blue_green(settings, "green", {"routes": [shared]}, (8080, 9000))
    for app, other in ((blue, green), (green, blue)):
        (route_service,) = [
            s
            for s in app["services"].values()
            if s["metadata"].get("annotations", {}).get(names.ROUTE_ANNOTATION) == "shop.example.com/"
        ]  # type: ignore[union-attr]
        backends = repr(app["routing"])
        assert f"'{route_service['metadata']['name']}'" in backends
        selector = route_service["spec"]["selector"]
        assert selector == {names.route_label("shop.example.com", "/"): "true"}
        assert route_service["spec"]["ports"][0]["targetPort"] == names.ROUTED_PORT_NAME
        for pods in (app["web"], other["web"]):  # type: ignore[index]
            template = pods["spec"]["template"]
            assert selector.items() <= template["metadata"]["labels"].items()
            (main,) = [c for c in template["spec"]["containers"] if c["name"] == "app"]
            assert [p["name"] for p in main["ports"] if p["name"] == names.ROUTED_PORT_NAME] == ["http"]
    assert [
        p["containerPort"]
        for p in green["web"]["spec"]["template"]["spec"]["containers"][0]["ports"]  # type: ignore[index]
        if p["name"] == "http"
    ] == [8080]
    # blue's own route is blue's alone: green's instances do not carry its label.
    blue_only = names.route_label("blue.example.com", "/")
    assert blue_only in blue["web"]["spec"]["template"]["metadata"]["labels"]  # type: ignore[index]
    assert blue_only not in green["web"]["spec"]["template"]["metadata"]["labels"]  # type: ignore[index]
    for app in (blue, green):
        assert all(schema_problems(s) == [] for s in app["services"].values())  # type: ignore[union-attr]


@pytest.mark.parametrize("settings", [INGRESS, GATEWAY])
def test_a_route_service_per_host_and_path_and_nothing_new_without_routes(settings: Settings) -> None:
    # S19: one Service per (host, path), a route listed twice (another case, a port) once; an App without routes, or
    # with routing off, renders what it did before: one Service, no route label, ports named by number (its pods
    # do not restart when wharf is upgraded).
    manifest = {
        "routes": [{"route": "a.example.com/api"}, {"route": "A.example.com:8443/api"}, {"route": "a.example.com"}]
    }
    rendered = render_ok(make_app(manifest), make_facts((3000,)), settings)
    assert sorted(s["metadata"]["name"] for s in of_kind(rendered, "Service")) == sorted(
        ["shop", _service_of("a.example.com", "/api"), _service_of("a.example.com", "/")]
    )
    for plain in (
        render_ok(make_app({}), make_facts((3000,)), settings),
        render_ok(make_app({"no-route": True}), make_facts((3000,)), settings),
        render_ok(make_app(manifest), make_facts((3000,)), Settings(routing=Routing.NONE)),
    ):
        assert [s["metadata"]["name"] for s in of_kind(plain, "Service")] == ["shop"]
        template = deployment(plain)["spec"]["template"]
        assert not [k for k in template["metadata"]["labels"] if k.startswith(names.ROUTE_LABEL_PREFIX)]
        assert [p["name"] for p in template["spec"]["containers"][0]["ports"]] == ["p3000"]


@pytest.mark.parametrize("settings", [INGRESS, GATEWAY])
def test_a_route_conflict_renders_no_route_service_but_keeps_the_pod_labels(settings: Settings) -> None:
    # S19: nothing is routed for an App another namespace's claim refuses; its pods keep their route labels so that
    # winning the route later (the owner goes) restarts nothing.
    manifest = {"routes": [{"route": "shop.example.com"}]}
    free = render_ok(make_app(manifest), make_facts((3000,)), settings)
    refused = render_ok(make_app(manifest), make_facts((3000,)), settings, route_conflict="taken")
    assert [s["metadata"]["name"] for s in of_kind(refused, "Service")] == ["shop"]
    assert not [o for o in refused.objects if o["kind"] in ROUTING_KINDS]
    assert deployment(refused)["spec"]["template"] == deployment(free)["spec"]["template"]


def test_route_service_names_are_dns_labels_even_for_long_app_names() -> None:
    # S19: a Service's name is at most 63 characters; two long App names that start alike still get two names.
    long_a, long_b = "a" * 59 + "-one", "a" * 59 + "-two"  # 63 characters, the most an App name has
    found = {names.route_service_name(make_app(name=n), "shop.example.com", "/") for n in (long_a, long_b)}
    assert len(found) == 2
    assert all(len(n) <= 63 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", n) for n in found)
    assert names.route_service_name(make_app(name="shop"), "shop.example.com", "/").startswith("shop-r")
