"""S13 (pods run the pinned digest), S15 (stop, restart, rolling), ownership (S15 delete) and the pull secret (S1)."""

from __future__ import annotations

import base64
import json
import re

import pytest
from render_support import DIGEST, UID, deployment, main_container, make_app, make_facts, of_kind, render_ok

from wharf.config import Routing, Settings
from wharf.render.names import DIGEST_ANNOTATION, RESTAGED_ANNOTATION, RESTARTED_AT_ANNOTATION
from wharf.render.workload import DRAIN_SECONDS, STOP_GRACE_SECONDS

EVERYTHING = {
    "services": ["db"],
    "processes": [{"type": "worker", "instances": 1}],
    "sidecars": [{"name": "agent", "process_types": ["web"], "command": "agent"}],
    "routes": [{"route": "shop.example.com"}],
}


@pytest.mark.parametrize(
    ("reference", "pinned"),
    [
        ("docker.io/library/nginx:latest", f"docker.io/library/nginx@{DIGEST}"),
        ("registry.example.com:5000/team/shop:1.0", f"registry.example.com:5000/team/shop@{DIGEST}"),
        ("localhost:5000/shop", f"localhost:5000/shop@{DIGEST}"),
        (f"docker.io/library/nginx:1.25@{DIGEST}", f"docker.io/library/nginx@{DIGEST}"),
    ],
)
def test_pods_run_the_image_by_digest(reference: str, pinned: str) -> None:
    # S13
    facts = make_facts(reference=reference)
    assert facts.pinned == pinned
    rendered = render_ok(make_app(EVERYTHING), facts)
    for obj in of_kind(rendered, "Deployment"):
        template = obj["spec"]["template"]
        assert template["metadata"]["annotations"][DIGEST_ANNOTATION] == DIGEST
        for container in template["spec"]["containers"]:
            assert container["image"] == pinned
            assert "@sha256:" in container["image"]


def test_stopped_keeps_everything_but_runs_zero_instances() -> None:
    # S15
    started = render_ok(make_app({"instances": 3, **EVERYTHING}))
    stopped = render_ok(make_app({"instances": 3, **EVERYTHING}, state="STOPPED"))
    assert [o["kind"] for o in stopped.objects] == [o["kind"] for o in started.objects]
    assert [d["spec"]["replicas"] for d in of_kind(stopped, "Deployment")] == [0, 0]
    assert [p.instances for p in stopped.processes] == [3, 1]  # what the manifest asks for is kept
    assert [d["spec"]["replicas"] for d in of_kind(started, "Deployment")] == [3, 1]


def test_restart_annotates_the_pod_template_and_keeps_the_image() -> None:
    # S15: a new restartedAt rolls new pods with the same resolved image
    before = render_ok(make_app())
    after = render_ok(make_app(restartedAt="2024-05-01T10:00:00Z"))
    template = deployment(after)["spec"]["template"]
    assert template["metadata"]["annotations"][RESTARTED_AT_ANNOTATION] == "2024-05-01T10:00:00Z"
    assert RESTARTED_AT_ANNOTATION not in deployment(before)["spec"]["template"]["metadata"]["annotations"]
    assert main_container(after)["image"] == main_container(before)["image"]
    assert deployment(before)["spec"]["selector"] == deployment(after)["spec"]["selector"]


def test_an_answered_restage_rolls_the_pods_even_on_the_same_digest() -> None:
    # S15: restage re-reads the registry, then rolls; the token is the one the resolution answered
    app, facts = make_app(restage="r1"), make_facts()
    waiting = deployment(render_ok(app, facts))["spec"]["template"]["metadata"]["annotations"]
    answered = deployment(render_ok(app, facts, restaged="r1"))["spec"]["template"]["metadata"]["annotations"]
    assert RESTAGED_ANNOTATION not in waiting
    assert answered[RESTAGED_ANNOTATION] == "r1"
    assert answered[DIGEST_ANNOTATION] == waiting[DIGEST_ANNOTATION]


def test_rolling_update_brings_new_instances_up_before_old_go() -> None:
    # S15: maxUnavailable 0, one at a time (CF's max_in_flight 1)
    strategy = deployment(render_ok(make_app({"instances": 4})))["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_a_web_instance_drains_before_sigterm_and_keeps_cfs_ten_seconds_after_it() -> None:
    # S15: no downtime on a rolling restart: the kubelet sleeps (preStop) while the endpoints, kube-proxy and any
    # ingress stop routing to the old instance, then TERM, then KILL 10 s later as in CF. Other process types get
    # no traffic through a Service: TERM at once.
    rendered = render_ok(make_app(EVERYTHING))
    web = deployment(rendered)["spec"]["template"]["spec"]
    assert web["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}}
    assert web["terminationGracePeriodSeconds"] == DRAIN_SECONDS + STOP_GRACE_SECONDS == 15
    assert all("lifecycle" not in c for c in web["containers"][1:])  # sidecars stop with the pod's TERM
    worker = deployment(rendered, "worker")["spec"]["template"]["spec"]
    assert "lifecycle" not in worker["containers"][0]
    assert worker["terminationGracePeriodSeconds"] == STOP_GRACE_SECONDS == 10


def test_selector_matches_the_template_labels() -> None:
    # S15: the selector is immutable and must select the pods
    rendered = render_ok(make_app({**EVERYTHING, "metadata": {"labels": {"team": "a", "wharf.dev/app": "evil"}}}))
    for obj in of_kind(rendered, "Deployment"):
        labels = obj["spec"]["template"]["metadata"]["labels"]
        assert obj["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert labels["team"] == "a"
        assert labels["wharf.dev/app"] == "shop"


@pytest.mark.parametrize("routing", list(Routing))
def test_the_apps_shard_label_is_on_everything_it_owns_and_a_manifest_cannot_set_it(routing: Routing) -> None:
    # Sharding: a shard watches pods, Deployments, Services and routing objects by the shard label (config.py).
    settings = Settings(routing=routing, gateway_name="edge")
    manifest = {**EVERYTHING, "metadata": {"labels": {"wharf.dev/shard": "other", "team": "a"}}}
    sharded = make_app(manifest).model_copy(update={"shard": "b"})
    rendered = render_ok(sharded, settings=settings)
    for obj in rendered.objects:
        assert obj["metadata"]["labels"]["wharf.dev/shard"] == "b", obj["kind"]
    for obj in of_kind(rendered, "Deployment"):
        assert obj["spec"]["template"]["metadata"]["labels"]["wharf.dev/shard"] == "b"
        assert "wharf.dev/shard" not in obj["spec"]["selector"]["matchLabels"]  # moving shards keeps the selector
    # An App without the label (the first shard's `notin`): no shard label at all, whatever the manifest says.
    for obj in render_ok(make_app(manifest), settings=settings).objects:
        assert "wharf.dev/shard" not in obj["metadata"].get("labels", {}), obj["kind"]


@pytest.mark.parametrize("routing", list(Routing))
def test_every_object_is_owned_by_the_app(routing: Routing) -> None:
    # S15: deleting the App deletes everything it created
    settings = Settings(routing=routing, gateway_name="edge")
    rendered = render_ok(
        make_app(EVERYTHING, dockerUsername="bob", dockerPasswordSecretRef={"name": "registry-password"}),
        settings=settings,
        registry_password="pw",
    )
    kinds = {o["kind"] for o in rendered.objects}
    assert {"Secret", "Deployment", "Service"} <= kinds
    for obj in rendered.objects:
        assert obj["metadata"]["namespace"] == "space"
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "wharf.dev/v1alpha1",
                "kind": "App",
                "name": "shop",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


@pytest.mark.parametrize(
    ("reference", "key"),
    [
        ("docker.io/team/private:1", "https://index.docker.io/v1/"),
        ("registry.example.com:5000/team/shop:1.0", "registry.example.com:5000"),
        ("ghcr.io/team/shop:1", "ghcr.io"),
    ],
)
def test_username_and_password_become_a_dockerconfigjson_pull_secret(reference: str, key: str) -> None:
    # S1
    app = make_app(dockerUsername="bob", dockerPasswordSecretRef={"name": "registry-password"})
    rendered = render_ok(app, make_facts(reference=reference), registry_password="s3cret:pw")
    (secret,) = [o for o in of_kind(rendered, "Secret") if o["metadata"]["name"] == "shop-registry"]
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(secret["stringData"][".dockerconfigjson"])
    assert list(config["auths"]) == [key]
    entry = config["auths"][key]
    assert entry["username"] == "bob"
    assert entry["password"] == "s3cret:pw"
    assert base64.b64decode(entry["auth"]).decode() == "bob:s3cret:pw"
    for obj in of_kind(rendered, "Deployment"):
        assert obj["spec"]["template"]["spec"]["imagePullSecrets"][0] == {"name": "shop-registry"}
    assert rendered.objects.index(secret) < rendered.objects.index(deployment(rendered))  # applied first


def test_manifest_docker_username_works_too() -> None:
    # S1
    docker = {"image": "registry.example.com:5000/team/shop:1.0", "username": "amy"}
    app = make_app({"docker": docker}, dockerPasswordSecretRef={"name": "registry-password"})
    rendered = render_ok(app, registry_password="pw")
    (secret,) = of_kind(rendered, "Secret")
    assert "amy" in secret["stringData"][".dockerconfigjson"]


def test_no_password_no_pull_secret_but_image_pull_secrets_are_passed_on() -> None:
    # S1
    app = make_app(imagePullSecrets=[{"name": "team-pull"}])
    rendered = render_ok(app, registry_password="ignored-without-user")
    assert of_kind(rendered, "Secret") == []
    assert deployment(rendered)["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "team-pull"}]


def test_no_credentials_no_pull_secrets() -> None:
    # S1
    rendered = render_ok(make_app(), registry_password="ignored-without-user")
    assert of_kind(rendered, "Secret") == []
    assert "imagePullSecrets" not in deployment(rendered)["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    ("cf_name", "label"),
    [("shop", "shop"), ("My Shop!", "My-Shop"), ("-café-", "caf"), ("a" * 62 + " b", "a" * 62), ("...", "")],
)
def test_the_cf_name_becomes_a_valid_label_value(cf_name: str, label: str) -> None:
    # S1: manifest `name` is free text on CF; on Kubernetes it is the app.kubernetes.io/name label
    rendered = render_ok(make_app({"name": cf_name}))
    for obj in rendered.objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == label
    assert re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", label)


def test_no_object_carries_argo_cds_tracking_label() -> None:
    # GitOps: `app.kubernetes.io/instance` is Argo CD's default tracking label; on wharf's objects it would make an
    # Argo CD Application of the App's name claim them, show them OutOfSync and prune them.
    rendered = render_ok(make_app(EVERYTHING), settings=Settings(routing=Routing.INGRESS))
    for obj in rendered.objects:
        assert "app.kubernetes.io/instance" not in obj["metadata"]["labels"], obj["kind"]
    for obj in of_kind(rendered, "Deployment"):
        assert "app.kubernetes.io/instance" not in obj["spec"]["template"]["metadata"]["labels"]
