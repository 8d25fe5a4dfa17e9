"""S9: the environment: manifest env first (in manifest order), then what the platform sets."""

from __future__ import annotations

import json

import pytest
from render_support import NAMESPACE, UID, env_of, main_container, make_app, make_facts, render_ok

PLATFORM_ORDER = [
    "PORT",
    "MEMORY_LIMIT",
    "CF_INSTANCE_GUID",
    "CF_INSTANCE_IP",
    "CF_INSTANCE_INTERNAL_IP",
    "CF_INSTANCE_PORT",
    "CF_INSTANCE_ADDR",
    "CF_INSTANCE_PORTS",
    "VCAP_APPLICATION",
    "VCAP_SERVICES",
]


def test_env_order_manifest_first_then_the_platform() -> None:
    # S9
    app = make_app({"env": {"ZED": "z", "ALPHA": "a", "MIDDLE": "m"}})
    container = main_container(render_ok(app, make_facts((3000,))))
    assert [e["name"] for e in container["env"]] == ["ZED", "ALPHA", "MIDDLE", *PLATFORM_ORDER]


@pytest.mark.parametrize(
    ("value", "text"), [(42, "42"), (0, "0"), ("true", "true"), ("1.5", "1.5"), ("plain", "plain"), ("", "")]
)
def test_manifest_values_are_rendered_as_yaml_wrote_them(value: object, text: str) -> None:
    # S9: values are the CRD's int-or-string; integers become their decimal text
    container = main_container(render_ok(make_app({"env": {"FLAG": value}})))
    assert env_of(container)["FLAG"] == text
    assert all(isinstance(e.get("value", ""), str) for e in container["env"])


def test_platform_values() -> None:
    # S9
    app = make_app({"memory": "512M", "disk_quota": "2G"})
    env = env_of(main_container(render_ok(app, make_facts((4000, 4001)))))
    assert env["PORT"] == "4000"
    assert env["MEMORY_LIMIT"] == "512m"
    assert env["CF_INSTANCE_PORT"] == "4000"
    assert json.loads(env["CF_INSTANCE_PORTS"]) == [
        {"internal": 4000, "external": 4000},
        {"internal": 4001, "external": 4001},
    ]
    assert env["CF_INSTANCE_ADDR"] == "$(CF_INSTANCE_INTERNAL_IP):4000"


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("CF_INSTANCE_GUID", "metadata.uid"),
        ("CF_INSTANCE_IP", "status.hostIP"),
        ("CF_INSTANCE_INTERNAL_IP", "status.podIP"),
    ],
)
def test_cf_instance_values_come_from_the_downward_api(name: str, field: str) -> None:
    # S9
    env = env_of(main_container(render_ok()))
    assert env[name] == {"fieldRef": {"fieldPath": field}}


def test_variables_referenced_with_dollar_parens_are_defined_earlier() -> None:
    # S9: the kubelet expands $(VAR) only for variables defined before the one that uses them
    container = main_container(render_ok())
    seen: set[str] = set()
    for entry in container["env"]:
        value = entry.get("value", "")
        for name in ("CF_INSTANCE_INTERNAL_IP", "CF_INSTANCE_GUID"):
            if f"$({name})" in value:
                assert name in seen, f"{entry['name']} uses $({name}) before it is defined"
        seen.add(entry["name"])


def test_vcap_application_is_json_with_cf_keys() -> None:
    # S9
    app = make_app(
        {"name": "my-shop", "memory": "256M", "disk_quota": "512M", "routes": [{"route": "shop.example.com"}]},
        name="shop",
    )
    vcap = json.loads(env_of(main_container(render_ok(app, make_facts((3000,)))))["VCAP_APPLICATION"])
    assert vcap["application_name"] == "my-shop"
    assert vcap["name"] == "my-shop"
    assert vcap["space_name"] == NAMESPACE
    assert vcap["application_id"] == UID
    assert vcap["limits"] == {"mem": 256, "disk": 512, "fds": 16384}
    assert vcap["port"] == 3000
    assert vcap["process_type"] == "web"
    assert vcap["uris"] == ["shop.example.com"]
    assert vcap["application_uris"] == ["shop.example.com"]
    assert vcap["instance_id"] == "$(CF_INSTANCE_GUID)"
    assert vcap["host"] == "0.0.0.0"


def test_vcap_application_name_defaults_to_the_resource_name_and_process_type_per_process() -> None:
    # S9
    app = make_app({"processes": [{"type": "worker", "instances": 1, "memory": "128M"}]}, name="orders")
    rendered = render_ok(app)
    web = json.loads(env_of(main_container(rendered))["VCAP_APPLICATION"])
    worker = json.loads(env_of(main_container(rendered, "worker"))["VCAP_APPLICATION"])
    assert web["application_name"] == worker["application_name"] == "orders"
    assert (web["process_type"], worker["process_type"]) == ("web", "worker")
    assert worker["limits"]["mem"] == 128
    assert env_of(main_container(rendered, "worker"))["MEMORY_LIMIT"] == "128m"


def test_no_route_means_no_uris() -> None:
    # S9, S11
    vcap = json.loads(env_of(main_container(render_ok(make_app({"no-route": True}))))["VCAP_APPLICATION"])
    assert vcap["uris"] == []


def test_platform_keys_win_over_manifest_env() -> None:
    # S9: what the platform sets wins (the manifest cannot set PORT/VCAP_*; other platform keys are replaced)
    container = main_container(render_ok(make_app({"env": {"MEMORY_LIMIT": "1m", "CF_INSTANCE_IP": "x"}})))
    names = [e["name"] for e in container["env"]]
    assert names.count("MEMORY_LIMIT") == 1
    assert names.count("CF_INSTANCE_IP") == 1
    assert env_of(container)["MEMORY_LIMIT"] == "1024m"


def test_image_env_is_left_to_the_runtime() -> None:
    # S9: the image's ENV is the lowest layer; the runtime applies it, wharf does not copy it
    container = main_container(render_ok(make_app({"env": {"A": "1"}}), make_facts(env=("B=2", "PATH=/bin"))))
    names = {e["name"] for e in container["env"]}
    assert "A" in names
    assert "B" not in names
    assert "PATH" not in names


def test_bound_services_add_vcap_services_from_a_secret() -> None:
    # S9
    app = make_app({"services": ["db", {"name": "cache", "binding_name": "redis"}]})
    rendered = render_ok(app, service_credentials={"db": {"uri": "postgres://x"}})
    env = env_of(main_container(rendered))
    assert env["VCAP_SERVICES"] == {"secretKeyRef": {"name": "shop-vcap-services", "key": "VCAP_SERVICES"}}
    (secret,) = [o for o in rendered.objects if o["metadata"]["name"] == "shop-vcap-services"]
    services = json.loads(secret["stringData"]["VCAP_SERVICES"])["user-provided"]
    assert [s["name"] for s in services] == ["db", "redis"]
    assert services[0]["credentials"] == {"uri": "postgres://x"}


def test_without_services_vcap_services_is_an_empty_object_as_on_cf() -> None:
    # S9: CF sets VCAP_SERVICES for every app; code that parses it must not find it missing.
    rendered = render_ok(make_app({}))
    assert env_of(main_container(rendered))["VCAP_SERVICES"] == "{}"
    assert not [o for o in rendered.objects if o["metadata"]["name"] == "shop-vcap-services"]
