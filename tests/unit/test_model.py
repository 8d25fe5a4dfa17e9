"""S1, S2, S9, S10, S11: the App model refuses what CF refuses, with a message that says what to change."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from wharf.api.app import App, AppSpec, State
from wharf.api.manifest import Manifest

IMAGE = "registry.example.com/team/shop:1"


def _spec(manifest: dict[str, Any] | None = None, **spec: Any) -> AppSpec:
    body: dict[str, Any] = {"dockerImage": IMAGE, **spec}
    if manifest is not None:
        body["manifest"] = manifest
    return AppSpec.model_validate(body)


def _refused(match: str, manifest: dict[str, Any] | None = None, **spec: Any) -> None:
    with pytest.raises(ValidationError, match=re.escape(match)):
        _spec(manifest, **spec)


def test_a_pasted_cf_manifest_entry_is_accepted() -> None:
    # S1
    spec = _spec(
        {
            "name": "shop",
            "instances": 2,
            "memory": "512M",
            "disk_quota": "1G",
            "health-check-type": "http",
            "health-check-http-endpoint": "/health",
            "timeout": 120,
            "env": {"DEBUG": "true", "WORKERS": 4},
            "routes": [{"route": "shop.example.com"}],
            "processes": [{"type": "worker", "instances": 1, "command": "./work"}],
        }
    )
    assert spec.manifest.instances == 2
    assert spec.manifest.health_check_http_endpoint == "/health"
    assert spec.state is State.STARTED
    assert spec.image == IMAGE


@pytest.mark.parametrize("kind", ["port", "process", "none", None])
def test_endpoint_without_http_type_is_refused(kind: str | None) -> None:
    # S10
    manifest: dict[str, Any] = {"health-check-http-endpoint": "/health"}
    if kind:
        manifest["health-check-type"] = kind
    _refused("health-check-http-endpoint is only used with health-check-type: http", manifest)
    _refused("health-check-http-endpoint", {"processes": [{"type": "worker", **manifest}]})


def test_readiness_endpoint_without_http_type_is_refused() -> None:
    # S10
    _refused("readiness-health-check-http-endpoint", {"readiness-health-check-http-endpoint": "/ready"})


@pytest.mark.parametrize("key", ["VCAP_SERVICES", "VCAP_APPLICATION", "VCAP_ANYTHING", "VMC_APP_ID", "PORT"])
def test_reserved_env_keys_are_refused(key: str) -> None:
    # S9
    _refused(f"env keys {key} are set by the platform", {"env": {key: "x", "OK": "y"}})


@pytest.mark.parametrize("value", [True, False, 1.5, {"nested": 1}, ["a"]])
def test_env_values_are_strings_or_integers_as_in_the_crd(value: object) -> None:
    # S9: the CRD's int-or-string refuses other YAML scalars; the model says to quote them
    _refused("env values are strings or integers: quote the value of FLAG", {"env": {"FLAG": value}})


def test_an_env_key_without_a_value_is_refused_saying_what_to_write() -> None:
    # S9, S20: `KEY:` with nothing after it (YAML null), common in real manifests
    _refused('env FLAG have no value: give each a value (write "" for empty) or remove it', {"env": {"FLAG": None}})


def test_env_keys_that_merely_contain_reserved_words_are_fine() -> None:
    # S9
    assert _spec({"env": {"MY_VCAP_THING": "1", "PORTS": "2", "port": "3"}}).manifest.env["PORTS"] == "2"


@pytest.mark.parametrize("where", ["top", "process"])
def test_negative_instances_are_refused(where: str) -> None:
    # S4
    manifest: dict[str, Any] = {"instances": -1} if where == "top" else {"processes": [{"type": "w", "instances": -1}]}
    _refused("greater than or equal to 0", manifest)


def test_duplicate_process_types_are_refused() -> None:
    # S4
    _refused("process types must be unique; repeated: worker", {"processes": [{"type": "worker"}, {"type": "worker"}]})


def test_no_route_with_routes_is_refused() -> None:
    # S11
    _refused("no-route: true and routes cannot both be given", {"no-route": True, "routes": [{"route": "a.b.c"}]})


def test_image_in_both_places_must_agree() -> None:
    # S1
    _refused("differ: keep one", {"docker": {"image": "other/image:2"}})
    assert _spec({"docker": {"image": IMAGE}}).image == IMAGE


def test_image_only_in_the_manifest_is_enough() -> None:
    # S1
    spec = AppSpec.model_validate(
        {"manifest": {"docker": {"image": IMAGE, "username": "amy"}}, "dockerPasswordSecretRef": {"name": "pw"}}
    )
    assert spec.image == IMAGE
    assert spec.username == "amy"


@pytest.mark.parametrize("where", ["spec", "manifest"])
def test_a_username_needs_the_password_secret(where: str) -> None:
    # S1: without the password, resolution would silently go anonymous
    body: dict[str, object] = {"manifest": {"docker": {"image": IMAGE, "username": "amy"}}}
    if where == "spec":
        body = {"dockerImage": IMAGE, "dockerUsername": "amy"}
    with pytest.raises(ValidationError, match=re.escape("needs dockerPasswordSecretRef")):
        AppSpec.model_validate(body)


def test_sidecar_names_are_unique() -> None:
    # S4: two sidecars of one name would be two containers of one name
    sidecars = [{"name": "s", "process_types": ["web"], "command": "a"}] * 2
    _refused("sidecar names must be unique; repeated: s", {"sidecars": sidecars})


@pytest.mark.parametrize(
    ("labels", "bad"),
    [
        ({"team": "a b"}, "labels"),
        ({"-team": "a"}, "-team"),
        ({"Example.com/x": "a"}, "Example.com/x"),
        ({"x": "a" * 64}, "labels"),
        ({"app\n": "a"}, "are not [prefix/]name"),  # a trailing newline: the whole key must match
    ],
)
def test_metadata_labels_are_kubernetes_labels(labels: dict[str, str], bad: str) -> None:
    # S1: the manifest's metadata lands on created objects: what the apiserver would refuse is refused here
    _refused(bad, {"metadata": {"labels": labels}})


def test_metadata_annotation_keys_are_qualified_names() -> None:
    # S1
    _refused("keys a b are not [prefix/]name", {"metadata": {"annotations": {"a b": "x"}}})
    assert _spec({"metadata": {"annotations": {"example.com/contact": "a b c"}}}).manifest.metadata is not None


def test_an_image_is_required() -> None:
    # S1
    with pytest.raises(ValidationError, match=re.escape("set spec.dockerImage")):
        AppSpec.model_validate({"manifest": {"instances": 1}})


def test_usernames_in_both_places_must_agree() -> None:
    # S1
    _refused("dockerUsername and manifest.docker.username differ", {"docker": {"username": "a"}}, dockerUsername="b")


@pytest.mark.parametrize(
    ("manifest", "spec"),
    [
        ({"instance": 2}, {}),
        ({"processes": [{"type": "worker", "memroy": "1G"}]}, {}),
        ({"routes": [{"route": "a.b", "port": 80}]}, {}),
        ({"docker": {"image": IMAGE, "password": "inline"}}, {}),
        ({"metadata": {"labels": {}, "owner": "x"}}, {}),
        ({"sidecars": [{"name": "s", "process_types": ["web"], "command": "x", "disk_quota": "1G"}]}, {}),
        ({}, {"dockerPassword": "inline"}),
        ({}, {"dockerPasswordSecretRef": {"name": "s", "value": "inline"}}),
    ],
)
def test_unknown_keys_are_refused(manifest: dict[str, Any], spec: dict[str, Any]) -> None:
    # S1: never inline credentials; typos are errors, not silently ignored
    _refused("Extra inputs are not permitted", manifest, **spec)


@pytest.mark.parametrize(
    ("manifest", "match"),
    [
        ({"memory": "1GiB"}, "must use a supported unit"),
        ({"disk_quota": "lots"}, "must use a supported unit"),
        ({"timeout": 181}, "less than or equal to 180"),
        ({"timeout": 0}, "greater than or equal to 1"),
        ({"health-check-type": "tcp"}, "health-check-type"),
        ({"health-check-http-endpoint": "health", "health-check-type": "http"}, "should match pattern"),
        ({"processes": [{"type": "Worker"}]}, "should match pattern"),
        ({"routes": [{"route": "bad host"}]}, "is not a route Kubernetes can carry"),
        ({"sidecars": [{"name": "s", "process_types": ["nope"], "command": "x"}]}, "unknown process types: nope"),
    ],
)
def test_bad_values_are_refused(manifest: dict[str, Any], match: str) -> None:
    # S4, S10, S11
    _refused(match, manifest)


@pytest.mark.parametrize("ports", [[0], [65536], []])
def test_spec_ports_must_be_tcp_port_numbers(ports: list[int]) -> None:
    # S6
    with pytest.raises(ValidationError):
        _spec(ports=ports)


def test_ignored_and_unenforced_keys_are_reported() -> None:
    # S2
    manifest = Manifest.model_validate(
        {
            "buildpacks": ["ruby"],
            "stack": "cflinuxfs4",
            "path": ".",
            "log-rate-limit-per-second": "1K",
            "random-route": True,
        }
    )
    assert manifest.ignored_keys() == ["buildpacks", "stack", "path"]
    assert manifest.unenforced_keys() == ["log-rate-limit-per-second", "random-route"]


def test_app_from_resource_uses_metadata_and_manifest_name() -> None:
    # S1, S9
    body = {
        "metadata": {"name": "shop", "namespace": "team", "uid": "u", "generation": 7},
        "spec": {"dockerImage": IMAGE, "manifest": {"name": "storefront"}},
    }
    app = App.from_resource(body)
    assert (app.name, app.namespace, app.uid, app.generation) == ("shop", "team", "u", 7)
    assert app.app_name == "storefront"
    assert App.from_resource({**body, "spec": {"dockerImage": IMAGE}}).app_name == "shop"
    assert app.shard == ""  # no shard label: the first shard's (its `notin` selector)
    labelled = {**body, "metadata": {**body["metadata"], "labels": {"wharf.dev/shard": "b", "team": "x"}}}
    assert App.from_resource(labelled).shard == "b"


def test_route_host_and_path() -> None:
    # S11
    route = _spec({"routes": [{"route": "Shop.Example.com:8443/a/b"}]}).manifest.routes[0]
    assert route.host == "shop.example.com"
    assert route.path == "/a/b"


def test_bad_inputs_the_issue_found_are_refused_by_the_model_as_by_the_crd() -> None:
    # S1, S4, S11: the operator's own check agrees with the CRD's (an App built in a test obeys the same rules)
    _refused("a route's port is a TCP port from 1 to 65535", {"routes": [{"route": "shop.example.com:99999"}]})
    _refused("a route's port is a TCP port from 1 to 65535", {"routes": [{"route": "shop.example.com:0/x"}]})
    assert _spec({"routes": [{"route": "shop.example.com:8443/x"}]}).manifest.routes[0].host == "shop.example.com"
    _refused("log-rate-limit-per-second", {"log-rate-limit-per-second": "abc"})
    for ok in ("-1", "16K", "1M", "100B", "2 GB"):
        assert _spec({"log-rate-limit-per-second": ok}).manifest.log_rate_limit_per_second == ok
    _refused("services", {"services": [{"name": ""}]})
