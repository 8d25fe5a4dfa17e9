"""Bad Apps on the real control plane: refused at `kubectl apply` with a message that says what to change, or,
where only the operator can tell, reported in status (Ready False, Stalled True, a clear reason) with nothing
deployed. No bad App crashes the operator or disturbs a good App beside it, and a bad update to a running App
keeps what already runs ("nothing already running is lost").

Rule ids: S1 (the resource, credentials by reference), S3 (image references), S4 (units, instances),
S5 (start command), S6 (ports), S9 (reserved env keys), S10 (health checks), S11 (routes), S15 (state).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from harness.fixtures_operator import Operator
from harness.images import STANDARD_IMAGES, push_image
from harness.registry import RegistryServer

pytestmark = [pytest.mark.cluster, pytest.mark.registry]

IMAGE = "<image>"  # replaced by the pushed single-port image
NO_COMMAND_IMAGE = "<no-command-image>"  # replaced by the pushed image without ENTRYPOINT/CMD
GOOD = "good"


def _substitute(value: Any, images: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, images) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, images) for v in value]
    if isinstance(value, str):
        for placeholder, image in images.items():
            value = value.replace(placeholder, image)
    return value


def app_body(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "wharf.dev/v1alpha1",
        "kind": "App",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def spec(**manifest: Any) -> dict[str, Any]:
    return {"dockerImage": IMAGE, "manifest": manifest}


@dataclass(frozen=True)
class Refused:
    """The apiserver refuses the App at `kubectl apply`; stderr names what to change (every string must appear)."""

    rule: str
    spec: dict[str, Any]
    says: tuple[str, ...]


@dataclass(frozen=True)
class Reported:
    """The apiserver accepts it; the operator reports it in status and deploys nothing."""

    rule: str
    spec: dict[str, Any]
    reason: str
    says: tuple[str, ...]
    secrets: list[dict[str, Any]] = field(default_factory=list)


UNIT = "must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB (write, e.g., 512M or 1G)"
ROUTE_WORDS = "is not a route Kubernetes can carry: write HOST.DOMAIN[:PORT][/PATH]"
REFUSED: dict[str, Refused] = {
    # S4: CF byte units only
    # (S20: in the CF API's words, never a regular expression)
    "memory-512X": Refused("S4", spec(memory="512X"), ("spec.manifest.memory", UNIT)),
    "memory-lots": Refused("S4", spec(memory="lots"), ("spec.manifest.memory", UNIT)),
    "memory-bare-number": Refused("S20", spec(memory=1024), ("spec.manifest.memory", "'1024' " + UNIT)),
    "memory-bare-string": Refused("S20", spec(memory="512"), ("spec.manifest.memory", "'512' " + UNIT)),
    "disk-quota-gigs": Refused("S4", spec(disk_quota="2 gigs"), ("spec.manifest.disk_quota", UNIT)),
    "process-memory-bad": Refused("S4", spec(processes=[{"type": "worker", "memory": "1 lot"}]), ("memory", UNIT)),
    # S4: instances are a count
    "instances-negative": Refused("S4", spec(instances=-1), ("spec.manifest.instances", "greater than or equal to 0")),
    # S10: health checks
    "health-check-type-tcp": Refused(
        "S10",
        spec(**{"health-check-type": "tcp"}),
        ("spec.manifest.health-check-type", "Unsupported value", '"port"', '"http"'),
    ),
    "endpoint-without-http": Refused(
        "S10",
        spec(**{"health-check-type": "port", "health-check-http-endpoint": "/health"}),
        ("health-check-http-endpoint is only used with health-check-type: http",),
    ),
    "endpoint-without-any-type": Refused(
        "S10",
        spec(**{"health-check-http-endpoint": "/health"}),
        ("health-check-http-endpoint is only used with health-check-type: http",),
    ),
    "readiness-endpoint-without-http": Refused(
        "S10",
        spec(**{"readiness-health-check-type": "port", "readiness-health-check-http-endpoint": "/ready"}),
        ("readiness-health-check-http-endpoint is only used with readiness-health-check-type: http",),
    ),
    "process-endpoint-without-http": Refused(
        "S10",
        spec(processes=[{"type": "worker", "health-check-type": "process", "health-check-http-endpoint": "/health"}]),
        ("health-check-http-endpoint is only used with health-check-type: http",),
    ),
    "timeout-over-180": Refused("S10", spec(timeout=181), ("spec.manifest.timeout", "less than or equal to 180")),
    # S9: the platform's env keys
    "env-vcap-services": Refused(
        "S9", spec(env={"VCAP_SERVICES": "{}"}), ("env keys starting VCAP_ or VMC_, and PORT, are set by the platform",)
    ),
    "env-vmc-x": Refused(
        "S9", spec(env={"VMC_X": "1"}), ("env keys starting VCAP_ or VMC_, and PORT, are set by the platform",)
    ),
    "env-port": Refused(
        "S9", spec(env={"PORT": "9999"}), ("env keys starting VCAP_ or VMC_, and PORT, are set by the platform",)
    ),
    # S3: malformed image references
    "image-uppercase": Refused(
        "S3", {"dockerImage": "Nginx:latest"}, ("spec.dockerImage", "Nginx:latest", "should match")
    ),
    "image-uppercase-repo": Refused(
        "S3", {"dockerImage": "docker.io/Library/nginx"}, ("spec.dockerImage", "should match")
    ),
    "image-spaces": Refused("S3", {"dockerImage": "nginx latest"}, ("spec.dockerImage", "should match")),
    "image-too-many-colons": Refused(
        "S3", {"dockerImage": "registry.local:5000:v1:x"}, ("spec.dockerImage", "should match")
    ),
    "image-empty": Refused("S3", {"dockerImage": ""}, ("spec.dockerImage", "at least 1")),
    # S1: the resource's shape (kubectl's default strict field validation refuses unknown keys)
    "unknown-manifest-key": Refused(
        "S1", spec(memroy="512M"), ("strict decoding error", 'unknown field "spec.manifest.memroy"')
    ),
    "unknown-spec-key": Refused(
        "S1", {"dockerImage": IMAGE, "replicas": 3}, ("strict decoding error", 'unknown field "spec.replicas"')
    ),
    "no-image": Refused(
        "S1", {"manifest": {"memory": "256M"}}, ("set spec.dockerImage (or manifest.docker.image) to the image to run",)
    ),
    "image-twice-differing": Refused(
        "S1",
        {"dockerImage": IMAGE, "manifest": {"docker": {"image": "example.com/other/app:2"}}},
        ("spec.dockerImage and manifest.docker.image differ: keep one",),
    ),
    "password-without-username": Refused(
        "S1",
        {"dockerImage": IMAGE, "dockerPasswordSecretRef": {"name": "regcred"}},
        ("dockerPasswordSecretRef needs dockerUsername",),
    ),
    "username-without-password": Refused(
        "S1",
        {"dockerImage": IMAGE, "dockerUsername": "alice"},
        ("dockerUsername (or manifest docker.username) needs dockerPasswordSecretRef",),
    ),
    "manifest-username-without-password": Refused(
        "S1",
        spec(docker={"image": IMAGE, "username": "alice"}),
        ("dockerUsername (or manifest docker.username) needs dockerPasswordSecretRef",),
    ),
    # S4: sidecars are containers: one name each
    "duplicate-sidecar-names": Refused(
        "S4",
        spec(sidecars=[{"name": "s", "process_types": ["web"], "command": "a"}] * 2),
        ("spec.manifest.sidecars", "Duplicate value"),
    ),
    # manifest metadata lands on every created object as labels and annotations
    "label-value-with-space": Refused(
        "S1", spec(metadata={"labels": {"team": "a b"}}), ("spec.manifest.metadata.labels.team", "should match")
    ),
    "label-key-not-qualified": Refused(
        "S1",
        spec(metadata={"labels": {"-team": "a"}}),
        ("spec.manifest.metadata.labels", "label keys are [prefix/]name"),
    ),
    "annotation-key-not-qualified": Refused(
        "S1",
        spec(metadata={"annotations": {"a b": "x"}}),
        ("spec.manifest.metadata.annotations", "annotation keys are [prefix/]name"),
    ),
    # S4: process types
    "duplicate-process-types": Refused(
        "S4",
        spec(processes=[{"type": "worker"}, {"type": "worker", "instances": 2}]),
        ("spec.manifest.processes", "Duplicate value", "worker"),
    ),
    "process-type-uppercase": Refused(
        "S4", spec(processes=[{"type": "Worker"}]), ("spec.manifest.processes[0].type", "should match")
    ),
    # S11: routes
    "no-route-with-routes": Refused(
        "S11",
        spec(**{"no-route": True, "routes": [{"route": "shop.example.com"}]}),
        ("no-route: true and routes cannot both be given: remove one",),
    ),
    "route-not-a-hostname": Refused(
        "S11", spec(routes=[{"route": "shop-.example..com"}]), ("spec.manifest.routes[0]", ROUTE_WORDS)
    ),
    "route-host-underscore": Refused(
        "S20",
        spec(routes=[{"route": "fortune_teller.example.com"}]),
        ("route fortune_teller.example.com " + ROUTE_WORDS, "write fortune-teller.example.com"),
    ),
    "route-port-too-high": Refused(
        "S11",
        spec(routes=[{"route": "shop.example.com:99999/api"}]),
        ("spec.manifest.routes[0].route", "a route's port is a TCP port from 1 to 65535"),
    ),
    # S1: services entries are a Secret's name or {name, ...}: CEL checks either form
    **{
        f"service-{case}": Refused(
            "S1", spec(services=[entry]), ("spec.manifest.services", "each service is the name of a Secret")
        )
        for case, entry in (
            ("empty-name", {"name": ""}),
            ("empty-string", ""),
            ("number", 42),
            ("object-without-name", {"binding_name": "db"}),
            ("not-a-secret-name", "My DB"),
        )
    },
    # CF's log rate limit: a byte quantity per second, or -1
    "log-rate-limit-abc": Refused(
        "S4",
        spec(**{"log-rate-limit-per-second": "abc"}),
        ("spec.manifest.log-rate-limit-per-second", "with a unit, as cf push -l takes it: e.g. 16K"),
    ),
    "process-log-rate-limit-abc": Refused(
        "S4",
        spec(processes=[{"type": "worker", "log-rate-limit-per-second": "lots"}]),
        ("log-rate-limit-per-second", "-1 for no limit"),
    ),
    # S3: a local image's ID is not a reference a registry serves (the grammar would read it as library/sha256)
    "image-bare-id": Refused(
        "S3", {"dockerImage": "sha256:" + "a" * 64}, ("spec.dockerImage", "local image's ID, which no registry serves")
    ),
    "image-ipv6-registry": Refused("S3", {"dockerImage": "[::1]:5000/x/y:1"}, ("spec.dockerImage", "should match")),
    # S15: state
    "state-running": Refused(
        "S15",
        {"dockerImage": IMAGE, "state": "RUNNING"},
        ("spec.state", "Unsupported value", '"STARTED"', '"STOPPED"'),
    ),
    # S6: ports
    "port-zero": Refused("S6", {"dockerImage": IMAGE, "ports": [0]}, ("spec.ports[0]", "greater than or equal to 1")),
    "port-too-high": Refused(
        "S6", {"dockerImage": IMAGE, "ports": [8080, 70000]}, ("spec.ports[1]", "less than or equal to 65535")
    ),
    "ports-empty": Refused("S6", {"dockerImage": IMAGE, "ports": []}, ("spec.ports", "at least 1")),
}

REPORTED: dict[str, Reported] = {
    # S5: neither command nor ENTRYPOINT/CMD
    "no-start-command": Reported(
        "S5", {"dockerImage": NO_COMMAND_IMAGE}, "NoStartCommand", ("No start command found or specified",)
    ),
    # S3: an IP address registry in a notation resolvers disagree on: refused before anything is contacted
    **{
        f"image-ip-{form}": Reported(
            "S3", {"dockerImage": f"{host}:5000/x/y:1"}, "InvalidReference", ("invalid image reference", host, says)
        )
        for form, host, says in (
            ("octal", "0177.0.0.1", "four decimal numbers"),
            ("hex", "0x7f.0.0.1", "four decimal numbers"),
            ("decimal", "2130706433", "four decimal numbers"),
            ("short", "127.1", "four decimal numbers"),
        )
    },
    # S1: the password Secret is referenced, not inline, and it is missing
    "password-secret-missing": Reported(
        "S1",
        {"dockerImage": IMAGE, "dockerUsername": "alice", "dockerPasswordSecretRef": {"name": "nope"}},
        "CredentialsMissing",
        ("nope", "does not exist"),
    ),
    "password-secret-key-missing": Reported(
        "S1",
        {"dockerImage": IMAGE, "dockerUsername": "alice", "dockerPasswordSecretRef": {"name": "regcred", "key": "pw"}},
        "CredentialsMissing",
        ("regcred", "pw", "does not exist"),
        secrets=[
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "regcred"},
                "stringData": {"password": "s3cret"},
            }
        ],
    ),
    # S3: the apiserver's pattern is loose; the operator parses references exactly as docker does
    "digest-wrong-length": Reported(
        "S3",
        {"dockerImage": "127.0.0.1:5000/team/app@sha256:" + "a" * 40},
        "InvalidReference",
        ("invalid image reference", "64 hex characters"),
    ),
}


@dataclass
class Baseline:
    namespace: str
    images: dict[str, str]
    deployment: dict[str, Any]
    pods: dict[str, str]  # name -> uid


def _pods(op: Operator, namespace: str, app: str) -> list[dict[str, Any]]:
    out = op.cluster.kubectl("get", "pods", "-n", namespace, "-l", f"wharf.dev/app={app}", "-o", "json")
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return items


def _ready(op: Operator, name: str, namespace: str) -> bool:
    return bool(op.condition(name, namespace).get("status") == "True")


def _operator_alive(op: Operator) -> None:
    assert op.process.poll() is None, f"the operator exited ({op.process.returncode}):\n{op.log_tail()}"
    assert httpx.get(op.health_url, timeout=5).status_code == 200


def _good_app_undisturbed(op: Operator, base: Baseline) -> None:
    assert _ready(op, GOOD, base.namespace), op.condition(GOOD, base.namespace)
    now = op.get("deployment", f"{GOOD}-web", base.namespace)
    assert now is not None
    before = base.deployment["metadata"]
    assert (now["metadata"]["uid"], now["metadata"]["generation"]) == (before["uid"], before["generation"])
    assert now["spec"]["template"] == base.deployment["spec"]["template"]
    pods = {p["metadata"]["name"]: p["metadata"]["uid"] for p in _pods(op, base.namespace, GOOD)}
    assert pods == base.pods


def _nothing_deployed(op: Operator, name: str, namespace: str) -> None:
    for kind in ("deployments", "services", "pods"):
        out = op.cluster.kubectl("get", kind, "-n", namespace, "-l", f"wharf.dev/app={name}", "-o", "name")
        assert out.stdout.strip() == "", f"{kind} of {name} exist: {out.stdout}"


@pytest.fixture(scope="module")
def baseline(wharf_operator: Operator, registry_plain: RegistryServer) -> Iterator[Baseline]:
    """One restricted namespace for the whole module, with a good App Ready in it before any bad one comes."""
    op = wharf_operator
    push_image(registry_plain, "bad/single", "v1", STANDARD_IMAGES["single-port"])
    push_image(registry_plain, "bad/no-command", "v1", STANDARD_IMAGES["no-command"])
    images = {
        IMAGE: f"{registry_plain.host}/bad/single:v1",
        NO_COMMAND_IMAGE: f"{registry_plain.host}/bad/no-command:v1",
    }
    namespace = op.cluster.create_namespace(f"bad-{uuid.uuid4().hex[:8]}")
    try:
        op.apply(app_body(GOOD, namespace, _substitute(spec(instances=2, memory="128M"), images)))
        op.wait_for("the good App Ready", lambda: _ready(op, GOOD, namespace), timeout=90)
        deployment = op.get("deployment", f"{GOOD}-web", namespace)
        assert deployment is not None
        pods = {p["metadata"]["name"]: p["metadata"]["uid"] for p in _pods(op, namespace, GOOD)}
        assert len(pods) == 2
        yield Baseline(namespace, images, deployment, pods)
    finally:
        op.cluster.delete_namespace(namespace)


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_apiserver_refuses_with_what_to_change(wharf_operator: Operator, baseline: Baseline, case: str) -> None:
    op, bad = wharf_operator, REFUSED[case]
    body = app_body(case, baseline.namespace, _substitute(bad.spec, baseline.images))
    result = op.apply(body, check=False)
    assert result.returncode != 0, f"{case} ({bad.rule}) was accepted:\n{result.stdout}"
    for text in bad.says:
        assert text in result.stderr, f"{case} ({bad.rule}): {text!r} not in:\n{result.stderr}"
    assert op.get("app", case, baseline.namespace) is None
    _operator_alive(op)
    _good_app_undisturbed(op, baseline)


@pytest.mark.parametrize("case", list(REPORTED), ids=list(REPORTED))
def test_operator_reports_what_the_apiserver_cannot_tell(
    wharf_operator: Operator, baseline: Baseline, case: str
) -> None:
    op, bad, ns = wharf_operator, REPORTED[case], baseline.namespace
    for secret in bad.secrets:
        op.apply({**secret, "metadata": {**secret["metadata"], "namespace": ns}})
    op.apply(app_body(case, ns, _substitute(bad.spec, baseline.images)))
    try:
        ready = op.wait_for(
            f"{case}: Ready False with {bad.reason}",
            lambda: (c := op.condition(case, ns)).get("reason") == bad.reason and c,
            timeout=45,
        )
        assert ready["status"] == "False"
        for text in bad.says:
            assert text in ready["message"], f"{case} ({bad.rule}): {text!r} not in {ready['message']!r}"
        stalled = op.condition(case, ns, "Stalled")
        assert (stalled.get("status"), stalled.get("reason")) == ("True", bad.reason), stalled
        _nothing_deployed(op, case, ns)
        _operator_alive(op)
        _good_app_undisturbed(op, baseline)
    finally:
        op.cluster.kubectl("delete", "app", case, "-n", ns, "--wait=false", check=False)
        for secret in bad.secrets:
            op.cluster.kubectl("delete", "secret", secret["metadata"]["name"], "-n", ns, check=False)


def test_there_are_at_least_twenty_distinct_bad_apps() -> None:
    assert len(REFUSED) + len(REPORTED) >= 20


# -- bad updates to a running App: nothing already running is lost -----------------------------------------
def _snapshot(op: Operator, name: str, ns: str) -> tuple[dict[str, Any], dict[str, str]]:
    deployment = op.get("deployment", f"{name}-web", ns)
    assert deployment is not None
    return deployment, {p["metadata"]["name"]: p["metadata"]["uid"] for p in _pods(op, ns, name)}


def _unchanged(op: Operator, name: str, ns: str, before: tuple[dict[str, Any], dict[str, str]]) -> None:
    deployment, pods = _snapshot(op, name, ns)
    old, old_pods = before
    assert deployment["metadata"]["uid"] == old["metadata"]["uid"]
    assert deployment["metadata"]["generation"] == old["metadata"]["generation"]
    assert deployment["spec"] == old["spec"]
    assert pods == old_pods
    assert all(p["status"]["phase"] == "Running" for p in _pods(op, ns, name))
    _operator_alive(op)


def test_removing_the_only_start_command_keeps_the_running_instances(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    # S5: the image has no ENTRYPOINT/CMD, so the manifest command is all there is to run.
    op = wharf_operator
    push_image(registry_plain, "bad/no-command", "v1", STANDARD_IMAGES["no-command"])
    image = f"{registry_plain.host}/bad/no-command:v1"
    op.apply(app_body("keeper", app_ns, {"dockerImage": image, "manifest": {"command": "/app/server"}}))
    op.wait_for("App Ready", lambda: _ready(op, "keeper", app_ns), timeout=90)
    before = _snapshot(op, "keeper", app_ns)

    op.apply(app_body("keeper", app_ns, {"dockerImage": image, "manifest": {}}))
    ready = op.wait_for(
        "NoStartCommand",
        lambda: (c := op.condition("keeper", app_ns)).get("reason") == "NoStartCommand" and c,
        timeout=45,
    )
    assert ready["status"] == "False"
    assert "No start command found or specified" in ready["message"]
    assert op.condition("keeper", app_ns, "Stalled").get("status") == "True"
    _unchanged(op, "keeper", app_ns, before)
    container = before[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sh", "-c", "/app/server"]  # still the last good start command


def test_an_image_change_to_a_missing_tag_keeps_the_running_instances(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    # S14: the last good resolution keeps the running instances as they are.
    op = wharf_operator
    digest = push_image(registry_plain, "bad/single", "v1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/bad/single:v1"
    op.apply(app_body("stayer", app_ns, {"dockerImage": image}))
    op.wait_for("App Ready", lambda: _ready(op, "stayer", app_ns), timeout=90)
    before = _snapshot(op, "stayer", app_ns)

    op.apply(app_body("stayer", app_ns, {"dockerImage": f"{registry_plain.host}/bad/single:no-such-tag"}))
    ready = op.wait_for(
        "ImageNotFound",
        lambda: (c := op.condition("stayer", app_ns)).get("reason") == "ImageNotFound" and c,
        timeout=45,
    )
    assert ready["status"] == "False"
    assert "no-such-tag" in ready["message"]
    _unchanged(op, "stayer", app_ns, before)
    container = before[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{registry_plain.host}/bad/single@{digest}"
    status = (op.get("app", "stayer", app_ns) or {})["status"]
    assert status["image"]["digest"] == digest  # the last good resolution is kept


@pytest.mark.parametrize("name", ["my.shop", "1shop", "s" * 64])
def test_an_app_name_that_cannot_name_a_service_is_refused(
    wharf_operator: Operator, baseline: Baseline, name: str
) -> None:
    # S4: the App's name is its Service's name (a DNS-1035 label) and a label value
    op = wharf_operator
    body = app_body(name, baseline.namespace, _substitute(spec(), baseline.images))
    result = op.apply(body, check=False)
    assert result.returncode != 0, result.stdout
    assert f"metadata.name {name}: an App's name is its Service's name" in result.stderr, result.stderr
    assert op.get("app", name, baseline.namespace) is None
