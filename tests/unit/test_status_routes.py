"""S19: routes are owned. Who owns a route (the pure verdict), what an App in conflict renders and reports, and
the routing objects' annotations (the cluster admin's only)."""

from __future__ import annotations

from typing import Any

from render_support import make_app, make_facts, render_ok

from wharf.api.app import App, AppSpec, AppStatus, ResolvedImage
from wharf.api.conditions import ConditionType, Reason
from wharf.config import Routing, Settings
from wharf.handlers.routes import RouteOwnership
from wharf.status.compute import Observation, ProcessObservation, Resolution, compute
from wharf.status.conditions import find
from wharf.status.routes import RouteClaim, claim_of, overlapping, route_conflict

T = [f"2024-05-01T10:00:0{i}Z" for i in range(10)]
INGRESS = Settings(routing=Routing.INGRESS, routing_annotations={"cert-manager.io/cluster-issuer": "letsencrypt"})
GATEWAY = Settings(routing=Routing.GATEWAY, gateway_name="edge")


def _claim(namespace: str, name: str, created: str, *routes: str) -> RouteClaim:
    app = App(
        name=name,
        namespace=namespace,
        uid="u",
        spec=AppSpec.model_validate({"dockerImage": "nginx", "manifest": {"routes": [{"route": r} for r in routes]}}),
    )
    return claim_of(app, created)


def test_the_oldest_claim_keeps_a_host_and_the_later_one_names_it() -> None:
    first = _claim("team-a", "shop", T[0], "shop.example.com")
    later = _claim("team-b", "shop", T[1], "Shop.Example.com")  # hostnames are case-insensitive
    assert route_conflict(first, [first, later]) is None
    message = route_conflict(later, [first, later])
    assert message is not None
    assert "route shop.example.com belongs to App shop in namespace team-a" in message
    assert "nothing is routed to this App" in message


def test_ties_in_age_go_by_namespace_then_name() -> None:
    a = _claim("a", "x", T[0], "shop.example.com")
    b = _claim("b", "x", T[0], "shop.example.com")
    assert route_conflict(a, [a, b]) is None
    assert route_conflict(b, [a, b]) is not None


def test_apps_of_one_namespace_share_a_route_blue_green() -> None:
    blue = _claim("team-a", "blue", T[0], "shop.example.com")
    green = _claim("team-a", "green", T[1], "shop.example.com")
    intruder = _claim("team-b", "shop", T[2], "shop.example.com")
    claims = [blue, green, intruder]
    assert route_conflict(blue, claims) is None
    assert route_conflict(green, claims) is None  # the namespace owns it, whichever of its Apps came first
    assert route_conflict(intruder, claims) is not None


def test_another_path_on_the_same_host_is_another_route() -> None:
    root = _claim("team-a", "shop", T[0], "shop.example.com")
    api = _claim("team-b", "api", T[1], "shop.example.com/api")
    assert route_conflict(api, [root, api]) is None


def test_a_wildcard_never_takes_a_host_another_namespace_claims() -> None:
    exact = _claim("team-a", "shop", T[0], "shop.example.com/api")
    wildcard = _claim("team-b", "all", T[1], "*.example.com")
    message = route_conflict(wildcard, [exact, wildcard])
    assert message is not None
    assert "route *.example.com belongs to App shop in namespace team-a" in message
    assert route_conflict(exact, [exact, wildcard]) is None


def test_an_older_wildcard_keeps_its_hosts_from_later_exact_claims() -> None:
    wildcard = _claim("team-b", "all", T[0], "*.example.com")
    exact = _claim("team-a", "shop", T[1], "deep.shop.example.com")
    assert route_conflict(wildcard, [wildcard, exact]) is None
    assert route_conflict(exact, [wildcard, exact]) is not None
    elsewhere = _claim("team-a", "other", T[2], "shop.example.org")
    assert route_conflict(elsewhere, [wildcard, exact, elsewhere]) is None


def test_the_next_in_line_gets_the_route_when_the_owner_goes() -> None:
    owner = _claim("team-a", "shop", T[0], "shop.example.com")
    second = _claim("team-b", "shop", T[1], "shop.example.com")
    third = _claim("team-c", "shop", T[2], "shop.example.com")
    assert route_conflict(second, [owner, second, third]) is not None
    assert route_conflict(second, [second, third]) is None
    assert "namespace team-b" in (route_conflict(third, [second, third]) or "")
    # overlapping() names whose verdict may move when a claim changes
    assert {(c.namespace, c.name) for c in overlapping(owner, [owner, second, third])} == {
        ("team-b", "shop"),
        ("team-c", "shop"),
    }


def test_no_route_claims_nothing() -> None:
    app = App(
        name="quiet",
        namespace="team-a",
        uid="u",
        spec=AppSpec.model_validate({"dockerImage": "nginx", "manifest": {"no-route": True}}),
    )
    assert claim_of(app, T[0]).routes == frozenset()


def _routing_objects(settings: Settings, conflict: str | None = None, **manifest: Any) -> list[dict[str, Any]]:
    app = make_app({"routes": [{"route": "shop.example.com"}], **manifest})
    rendered = render_ok(app, make_facts((3000,)), settings, route_conflict=conflict)
    return [o for o in rendered.objects if o["kind"] in ("Ingress", "HTTPRoute")]


def test_an_app_in_conflict_renders_no_routing_object_and_is_not_ready() -> None:
    assert _routing_objects(INGRESS, "route shop.example.com belongs to App shop in namespace team-a") == []
    assert _routing_objects(GATEWAY, "taken") == []
    app = make_app({"routes": [{"route": "shop.example.com"}], "instances": 1})
    rendered = render_ok(
        app,
        make_facts((3000,)),
        INGRESS,
        route_conflict="route shop.example.com belongs to App shop in namespace team-a",
    )
    assert [o["kind"] for o in rendered.objects] == ["Deployment", "Service"]  # the App still runs
    process = ProcessObservation(type="web", desired=1, ready=1, available=1, updated=1, rolled_out=True)
    image = ResolvedImage(**make_facts((3000,)).model_dump(), resolved_at=T[0])
    status = compute(
        app,
        AppStatus(),
        now=T[0],
        resolution=Resolution(image),
        rendered=rendered,
        blocked=None,
        observation=Observation(processes=[process]),
    )
    ready = find(status.conditions, ConditionType.READY)
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", Reason.ROUTE_CONFLICT)
    assert "belongs to App shop in namespace team-a" in ready.message
    stalled = find(status.conditions, ConditionType.STALLED)
    assert stalled is not None
    assert (stalled.status, stalled.reason) == ("True", Reason.ROUTE_CONFLICT)
    available = find(status.conditions, ConditionType.INSTANCES_AVAILABLE)
    assert available is not None
    assert available.status == "True"


def test_routing_objects_carry_the_admins_annotations_never_the_manifests() -> None:
    injected = {
        "nginx.ingress.kubernetes.io/server-snippet": "location / { proxy_pass http://169.254.169.254; }",
        "nginx.ingress.kubernetes.io/auth-url": "http://169.254.169.254/latest/meta-data",
        "example.com/team": "shop",
    }
    for settings in (INGRESS, GATEWAY):
        objects = _routing_objects(settings, metadata={"annotations": injected})
        assert objects
        for obj in objects:
            assert obj["metadata"].get("annotations", {}) == dict(settings.routing_annotations), obj["metadata"]
    # The manifest's annotations go on the pods instead (S19), under wharf's own.
    app = make_app({"metadata": {"annotations": injected}})
    (deployment,) = [o for o in render_ok(app, make_facts((3000,))).objects if o["kind"] == "Deployment"]
    template = deployment["spec"]["template"]["metadata"]["annotations"]
    assert {k: template[k] for k in injected} == injected
    assert "wharf.dev/image-digest" in template


def test_the_routing_annotations_setting_reads_a_json_object() -> None:
    settings = Settings.from_env({"WHARF_ROUTING_ANNOTATIONS": '{"a.example.com/x": "1, 2"}'})
    assert settings.routing_annotations == {"a.example.com/x": "1, 2"}
    assert Settings.from_env({}).routing_annotations == {}


def test_cf_v6_route_keys_claim_the_routes_they_become() -> None:
    # S19 with S20: `host` + `domain` claim the route cf v6 made of them
    app = App(
        name="shop",
        namespace="team-a",
        uid="u",
        spec=AppSpec.model_validate({"dockerImage": "nginx", "manifest": {"host": "Shop", "domain": "example.com"}}),
    )
    assert claim_of(app, T[0]).routes == frozenset({("shop.example.com", "/")})
    no_domain = App(
        name="shop",
        namespace="team-a",
        uid="u",
        spec=AppSpec.model_validate({"dockerImage": "nginx", "manifest": {"host": "shop"}}),
    )
    assert claim_of(no_domain, T[0]).routes == frozenset()  # cannot become routes here: claims nothing
    assert claim_of(no_domain, T[0], "apps.example.org").routes == frozenset({("shop.apps.example.org", "/")})


def test_the_claim_of_an_app_known_to_be_gone_is_no_ones() -> None:
    # An App deleted while no watch saw it stays in kopf's index of claims (handlers.cache: buried): it must not keep
    # a route from the next App in line.
    ghost = _claim("team-a", "shop", T[0], "shop.example.com")
    later = _claim("team-b", "shop", T[1], "shop.example.com")
    index = {("team-a", "shop"): [ghost], ("team-b", "shop"): [later]}
    buried: set[tuple[str, str]] = set()
    routes = RouteOwnership(index, INGRESS, gone=buried.__contains__)  # type: ignore[arg-type]
    app = App(
        name="shop",
        namespace="team-b",
        uid="u",
        spec=AppSpec.model_validate({"dockerImage": "nginx", "manifest": {"routes": [{"route": "shop.example.com"}]}}),
    )
    assert "belongs to App shop in namespace team-a" in (routes.conflict(app) or "")
    buried.add(("team-a", "shop"))
    assert routes.conflict(app) is None
