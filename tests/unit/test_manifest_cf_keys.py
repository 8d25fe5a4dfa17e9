"""S20: the App accepts what the cf CLI accepts (lifecycle, route protocol and options, random-route, the v6 route
keys) and refuses the rest saying what to write, in CF terms."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from render_support import make_app, make_facts, render_ok

from wharf.api.app import AppSpec
from wharf.api.routes import RouteKeysError, cf_routes, hostname
from wharf.config import Routing, Settings
from wharf.render import render
from wharf.render.errors import RenderError

IMAGE = "registry.example.com/team/app:1"


def _manifest(**keys: object) -> AppSpec:
    return AppSpec.model_validate({"dockerImage": IMAGE, "manifest": keys})


def _error(**keys: object) -> str:
    with pytest.raises(ValidationError) as caught:
        _manifest(**keys)
    return str(caught.value)


@pytest.mark.parametrize("key", ["memory", "disk_quota"])
@pytest.mark.parametrize("value", [1024, "1024", "512"])
def test_a_size_without_a_unit_is_refused_in_the_cf_api_words(key: str, value: object) -> None:
    # S20
    message = _error(**{key: value})
    assert f"{key}: '{value}' must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB" in message


@pytest.mark.parametrize("value", ["1b", "1K", "1kb", "1M", "1mb", "1G", "1gb", "1T", "1TB", "0.5g"])
def test_every_cf_unit_in_either_case_is_accepted(value: str) -> None:
    # S20
    assert _manifest(memory=value).manifest.memory == value


def test_a_route_host_with_an_underscore_is_refused_saying_what_to_write() -> None:
    # S20: no bare regular expression
    message = _error(routes=[{"route": "fortune_teller.example.com"}])
    assert "route fortune_teller.example.com is not a route Kubernetes can carry" in message
    assert "write fortune-teller.example.com" in message
    assert "^" not in message


@pytest.mark.parametrize(
    ("lifecycle", "ignored"), [("docker", []), ("buildpack", ["lifecycle: buildpack"]), ("cnb", ["lifecycle: cnb"])]
)
def test_lifecycle_docker_fits_and_the_others_are_ignored_with_the_s2_warning(
    lifecycle: str, ignored: list[str]
) -> None:
    # S20, S2
    rendered = render_ok(make_app({"lifecycle": lifecycle}))
    assert [w.message for w in rendered.warnings if w.reason == "IgnoredKeys"] == [
        f"{k} is ignored for image apps" for k in ignored
    ]


def test_route_protocol_and_options_are_accepted_and_an_unapplied_option_is_reported() -> None:
    # S20
    app = make_app(
        {
            "routes": [
                {"route": "a.example.com", "protocol": "http2", "options": {"loadbalancing": "round-robin"}},
                {"route": "b.example.com", "options": {"loadbalancing": "least-request"}},
            ]
        }
    )
    rendered = render_ok(app, settings=Settings(routing=Routing.INGRESS))
    messages = [w.message for w in rendered.warnings]
    assert any("loadbalancing is not applied to b.example.com (least-request)" in m for m in messages), messages
    assert not any("a.example.com" in m for m in messages)  # round-robin is what the backends do


def test_random_route_is_accepted() -> None:
    # S20
    assert _manifest(**{"random-route": True}).manifest.random_route


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"host": "shop"}, ["shop.apps.example.com"]),
        ({"hosts": ["a", "b"], "domain": "example.org"}, ["a.example.org", "b.example.org"]),
        ({"domains": ["x.com", "y.com"]}, ["fortune-teller.x.com", "fortune-teller.y.com"]),
        ({"domain": "example.org", "no-hostname": True}, ["example.org"]),
        ({"host": "www", "domains": ["x.com"], "domain": "y.com"}, ["www.y.com", "www.x.com"]),
    ],
)
def test_v6_route_keys_become_routes_with_a_warning_saying_what_to_write(
    keys: dict[str, object], expected: list[str]
) -> None:
    # S20: host/hosts/domain/domains/no-hostname as cf v6 read them; the default domain where none is given
    manifest = _manifest(name="fortune_teller", **keys).manifest
    routes = cf_routes(manifest, "fortune_teller", "apps.example.com")
    assert [r.route for r in routes.routes] == expected
    (warning,) = routes.warnings
    assert "cf CLI v6 route keys (deprecated): write routes: [" in warning
    assert f"{{route: {expected[0]}}}" in warning


def test_v6_host_without_a_domain_on_a_cluster_without_default_domain_is_refused_naming_routes() -> None:
    # S20
    manifest = _manifest(host="shop").manifest
    with pytest.raises(
        RouteKeysError, match=r"host need a domain, and this cluster has no default domain: write routes"
    ):
        cf_routes(manifest, "shop", "")
    app = make_app({"host": "shop"})
    with pytest.raises(RenderError) as caught:
        render(app, make_facts((8080,)), Settings())
    assert caught.value.reason == "InvalidSpec"
    assert "routes: [{route: shop.example.com}]" in caught.value.message


def test_v6_keys_with_routes_are_refused_as_the_cf_cli_refuses_them() -> None:
    # S20
    message = _error(host="a", routes=[{"route": "b.example.com"}])
    assert "routes and host cannot both be given" in message
    assert "move them into routes" in message


def test_v6_routes_are_rendered_as_routing_objects() -> None:
    # S20, S11
    app = make_app({"host": "shop", "domain": "example.org"})
    rendered = render_ok(app, settings=Settings(routing=Routing.INGRESS))
    (ingress,) = [o for o in rendered.objects if o["kind"] == "Ingress"]
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["shop.example.org"]
    assert rendered.routes == ["shop.example.org"]


def test_hostname_of_a_cf_name_is_what_cf_v6_made_of_it() -> None:
    # S20
    assert hostname("Fortune_Teller") == "fortune-teller"
    assert hostname("my.app") == "my-app"
