"""S4: process types, instances -> replicas, memory and disk_quota -> resources, CF and admin defaults."""

from __future__ import annotations

import datetime as dt

import pytest
from render_support import deployment, main_container, make_app, make_facts, of_kind, render_ok

from wharf.config import Settings


def test_web_only_by_default_with_one_instance_and_cf_defaults() -> None:
    # S4
    rendered = render_ok(make_app())
    deployments = of_kind(rendered, "Deployment")
    assert [d["metadata"]["name"] for d in deployments] == ["shop-web"]
    assert deployments[0]["spec"]["replicas"] == 1
    resources = main_container(rendered)["resources"]
    assert resources["requests"] == {"memory": "1024Mi", "ephemeral-storage": "1024Mi"}
    assert resources["limits"] == resources["requests"]


@pytest.mark.parametrize("instances", [0, 1, 3, 1000])
def test_instances_map_to_replicas_including_zero(instances: int) -> None:
    # S4
    rendered = render_ok(make_app({"instances": instances}))
    assert deployment(rendered)["spec"]["replicas"] == instances
    assert [p.replicas for p in rendered.processes] == [instances]


@pytest.mark.parametrize(
    ("memory", "disk", "mi_memory", "mi_disk"),
    [("512M", "2G", "512Mi", "2048Mi"), ("1G", "1024MB", "1024Mi", "1024Mi"), ("1.5G", "256m", "1536Mi", "256Mi")],
)
def test_memory_and_disk_quota_become_request_and_limit(memory: str, disk: str, mi_memory: str, mi_disk: str) -> None:
    # S4
    container = main_container(render_ok(make_app({"memory": memory, "disk_quota": disk})))
    want = {"memory": mi_memory, "ephemeral-storage": mi_disk}
    assert container["resources"] == {"requests": want, "limits": want}


def test_admin_defaults_replace_cf_defaults() -> None:
    # S4: "a cluster operator may set other defaults"
    settings = Settings(default_memory_mb=256, default_disk_mb=512)
    container = main_container(render_ok(make_app(), settings=settings))
    assert container["resources"]["limits"] == {"memory": "256Mi", "ephemeral-storage": "512Mi"}


def test_explicit_values_beat_admin_defaults() -> None:
    # S4
    settings = Settings(default_memory_mb=256, default_disk_mb=512)
    container = main_container(render_ok(make_app({"memory": "2G"}), settings=settings))
    assert container["resources"]["limits"] == {"memory": "2048Mi", "ephemeral-storage": "512Mi"}


def test_processes_web_entry_overrides_top_level_keys() -> None:
    # S4: the top level describes web; a `processes` entry of type web overrides it
    app = make_app(
        {
            "instances": 2,
            "memory": "512M",
            "disk_quota": "1G",
            "processes": [{"type": "web", "instances": 4, "memory": "256M"}],
        }
    )
    rendered = render_ok(app)
    assert [d["metadata"]["name"] for d in of_kind(rendered, "Deployment")] == ["shop-web"]
    assert deployment(rendered)["spec"]["replicas"] == 4
    assert main_container(rendered)["resources"]["limits"] == {"memory": "256Mi", "ephemeral-storage": "1024Mi"}


def test_other_process_types_default_to_zero_instances_and_ignore_top_level_keys() -> None:
    # S4: CF default instances 0 for non-web types; top-level keys are web's only
    app = make_app({"instances": 3, "memory": "512M", "processes": [{"type": "worker", "command": "run-worker"}]})
    rendered = render_ok(app)
    assert [d["metadata"]["name"] for d in of_kind(rendered, "Deployment")] == ["shop-web", "shop-worker"]
    worker = deployment(rendered, "worker")
    assert worker["spec"]["replicas"] == 0
    assert main_container(rendered, "worker")["resources"]["limits"]["memory"] == "1024Mi"
    assert deployment(rendered)["spec"]["replicas"] == 3


def test_other_process_types_take_their_own_values() -> None:
    # S4
    app = make_app({"processes": [{"type": "worker", "instances": 2, "memory": "128M", "disk_quota": "64M"}]})
    rendered = render_ok(app)
    assert deployment(rendered, "worker")["spec"]["replicas"] == 2
    assert main_container(rendered, "worker")["resources"]["requests"] == {
        "memory": "128Mi",
        "ephemeral-storage": "64Mi",
    }


def test_only_web_gets_a_service() -> None:
    # S4
    rendered = render_ok(make_app({"processes": [{"type": "worker", "instances": 1}]}))
    services = of_kind(rendered, "Service")
    assert len(services) == 1
    assert services[0]["spec"]["selector"] == {"wharf.dev/app": "shop", "wharf.dev/process-type": "web"}


def test_sidecar_memory_comes_out_of_the_process_memory() -> None:
    # S4: the process's memory covers its sidecars, as in CF
    app = make_app(
        {
            "memory": "512M",
            "sidecars": [{"name": "agent", "process_types": ["web"], "command": "agent", "memory": "128M"}],
        }
    )
    rendered = render_ok(app)
    containers = deployment(rendered)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "sidecar-agent"]
    assert containers[0]["resources"]["limits"]["memory"] == "384Mi"
    assert containers[1]["resources"]["limits"] == {"memory": "128Mi"}
    assert containers[1]["command"] == ["sh", "-c", "agent"]


def test_a_top_level_instances_the_web_entry_overrides_is_a_warning() -> None:
    # S4: `kubectl scale app` writes the top-level `instances` (the scale subresource); a web entry wins (CF), so say so
    app = make_app({"instances": 5, "processes": [{"type": "web", "instances": 2}]})
    rendered = render_ok(app)
    assert deployment(rendered)["spec"]["replicas"] == 2
    assert [(w.reason, w.message) for w in rendered.warnings] == [
        (
            "InstancesOverridden",
            "instances: 5 is overridden by the processes web entry's instances: 2 (kubectl scale sets the top-level "
            "value): scale by editing the web entry, or remove its instances",
        )
    ]
    assert render_ok(make_app({"instances": 2, "processes": [{"type": "web", "instances": 2}]})).warnings == []
    assert render_ok(make_app({"instances": 5, "processes": [{"type": "web"}]})).warnings == []


def test_an_image_older_than_the_cluster_limit_is_a_warning() -> None:
    # S16: wharf shows the image's creation date and warns when it is old, where the cluster admin asks for it
    facts = make_facts(created=dt.datetime(2019, 1, 15, 8, 30, tzinfo=dt.UTC))
    now = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
    warned = render_ok(make_app(), facts, Settings(image_age_warning_days=365), now=now).warnings
    assert [(w.reason, w.message) for w in warned] == [
        (
            "OldImage",
            "the image was built 2019-01-15, more than 365 days ago: rebuild it on a current base image "
            "(its root filesystem is yours to patch)",
        )
    ]
    assert render_ok(make_app(), facts, Settings(), now=now).warnings == []  # 0 (the default): never
    assert render_ok(make_app(), facts, Settings(image_age_warning_days=3000), now=now).warnings == []
    assert render_ok(make_app(), make_facts(), Settings(image_age_warning_days=1), now=now).warnings == []  # no date
