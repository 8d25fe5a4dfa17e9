"""CF manifest attributes on the real control plane and the real registry (S2, S4, S5, S9, S10, S11, S13, S15).

Every test runs the operator as a separate process (`wharf run`) against kube-apiserver + controller-manager +
scheduler + kwok, in a namespace that enforces PodSecurity `restricted`. docs/manifest.md cites these tests, row by
row; tests/unit/test_examples.py checks every test it cites exists.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.apps import app_resource
from harness.fixtures_operator import Operator, SoloOperator
from harness.images import STANDARD_IMAGES, ImageSpec, push_image
from harness.kubelet import Kubelet
from harness.registry import RegistryServer
from wharf.render.expansion import literal
from wharf.render.probes import listening_check

pytestmark = [pytest.mark.cluster, pytest.mark.registry]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# -- helpers ---------------------------------------------------------------------------------------------------
def app(name: str, namespace: str, image: str, manifest: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return app_resource(name, namespace, image, spec=spec, **manifest)


def ready(op: Operator, name: str, ns: str, reason: str | None = None) -> bool:
    cond = op.condition(name, ns)
    if cond.get("status") != "True":
        return False
    app_obj = op.get("app", name, ns) or {}
    generation = app_obj.get("metadata", {}).get("generation")
    return cond.get("observedGeneration") == generation and (reason is None or cond.get("reason") == reason)


def items(op: Operator, kind: str, ns: str, selector: str) -> list[dict[str, Any]]:
    out = op.cluster.kubectl("get", kind, "-n", ns, "-l", selector, "-o", "json").stdout
    found: list[dict[str, Any]] = json.loads(out)["items"]
    return found


def running_pods(op: Operator, ns: str, selector: str) -> list[dict[str, Any]]:
    return [
        p
        for p in items(op, "pods", ns, selector)
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def container(deployment: dict[str, Any], name: str = "app") -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name)
    return found


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def patch_spec(op: Operator, name: str, ns: str, spec: dict[str, Any]) -> None:
    op.cluster.kubectl("patch", "app", name, "-n", ns, "--type", "merge", "-p", json.dumps({"spec": spec}))


def replicas(op: Operator, name: str, ns: str) -> int | None:
    d = op.get("deployment", name, ns)
    return None if d is None else int(d["spec"]["replicas"])


# -- S4, S9, S10: processes, one Service, probes, VCAP_APPLICATION ----------------------------------------------
def test_multi_process_manifest_one_deployment_per_type_one_service(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    digest = push_image(registry_plain, "manifest/multi", "v1", STANDARD_IMAGES["multi-port"])
    image = f"{registry_plain.host}/manifest/multi:v1"
    manifest = {
        "name": "shop",  # the CF application name differs from the resource name
        "instances": 2,
        "memory": "256M",
        "disk_quota": "512M",
        "health-check-type": "http",  # S10: httpGet on the lowest port (8080 of 8080/8443/9000)
        "health-check-http-endpoint": "/healthz",
        "health-check-invocation-timeout": 3,
        "health-check-interval": 10,
        "readiness-health-check-type": "http",
        "readiness-health-check-http-endpoint": "/ready",
        "timeout": 90,
        "processes": [
            {
                "type": "worker",
                "instances": 2,
                "memory": "128M",
                "command": "bundle exec sidekiq",
                "health-check-type": "process",
            },
            {
                "type": "clock",
                "instances": 1,
                "memory": "64M",
                "command": "./clock",
                "health-check-type": "port",
                "timeout": 10,
            },
            {"type": "idle", "command": "./never"},  # CF: non-web types default to 0 instances (S4)
        ],
    }
    op.apply(app("store", app_ns, image, manifest))
    op.wait_for("App Ready", lambda: ready(op, "store", app_ns), timeout=90)

    # S4: one Deployment per process type, exactly one Service, for web.
    deployments = {d["metadata"]["name"]: d for d in items(op, "deployments", app_ns, "wharf.dev/app=store")}
    assert set(deployments) == {"store-web", "store-worker", "store-clock", "store-idle"}
    assert [deployments[f"store-{t}"]["spec"]["replicas"] for t in ("web", "worker", "clock", "idle")] == [2, 2, 1, 0]
    services = items(op, "services", app_ns, "wharf.dev/app=store")
    assert [s["metadata"]["name"] for s in services] == ["store"]
    assert services[0]["spec"]["selector"]["wharf.dev/process-type"] == "web"
    assert services[0]["spec"]["ports"][0]["port"] == 8080

    web, worker, clock = (container(deployments[f"store-{t}"]) for t in ("web", "worker", "clock"))
    assert web["image"] == worker["image"] == f"{registry_plain.host}/manifest/multi@{digest}"
    assert "command" not in web  # S5: no command runs the image's own CMD
    assert worker["command"] == ["sh", "-c", "bundle exec sidekiq"]
    assert worker["resources"]["limits"]["memory"] == "128Mi"
    assert web["resources"]["limits"] == {"memory": "256Mi", "ephemeral-storage": "512Mi"}

    # S10 http: httpGet on the endpoint at the lowest port; timeout is the start-up allowance.
    assert web["startupProbe"]["httpGet"] == {"path": "/healthz", "port": 8080, "scheme": "HTTP"}
    assert web["startupProbe"]["periodSeconds"] * web["startupProbe"]["failureThreshold"] >= 90
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["livenessProbe"]["periodSeconds"] == 10
    assert web["livenessProbe"]["timeoutSeconds"] == 3
    assert web["readinessProbe"]["httpGet"]["path"] == "/ready"  # S10 readiness-health-check-*
    # S10 port: a check of every listed port (8080, 8443, 9000: one exec probe, admitted under `restricted` and
    # stored as rendered); timeout 10 -> a shorter start-up allowance.
    every_port = ["sh", "-c", literal(listening_check((8080, 8443, 9000)))]  # as the kubelet hands it on
    assert clock["startupProbe"]["exec"] == {"command": every_port}
    assert clock["livenessProbe"]["exec"] == {"command": every_port}
    assert 10 <= clock["startupProbe"]["periodSeconds"] * clock["startupProbe"]["failureThreshold"] < 90
    assert "readinessProbe" not in clock
    # S10 process: no network check at all.
    assert not {"startupProbe", "livenessProbe", "readinessProbe"} & set(worker)

    # S9: VCAP_APPLICATION is JSON with the CF values, per process.
    vcap_web = json.loads(env_of(web)["VCAP_APPLICATION"])
    vcap_worker = json.loads(env_of(worker)["VCAP_APPLICATION"])
    uid = (op.get("app", "store", app_ns) or {})["metadata"]["uid"]
    assert vcap_web["application_name"] == vcap_web["name"] == "shop"
    assert vcap_web["application_id"] == uid
    assert vcap_web["space_name"] == app_ns
    assert vcap_web["process_type"] == "web"
    assert vcap_worker["process_type"] == "worker"
    assert vcap_web["limits"]["mem"] == 256
    assert vcap_web["limits"]["disk"] == 512
    assert vcap_worker["limits"]["mem"] == 128
    assert vcap_worker["limits"]["disk"] == 1024  # S4: CF's default disk
    assert vcap_web["port"] == 8080
    assert vcap_web["host"] == "0.0.0.0"
    assert vcap_web["uris"] == []
    assert env_of(worker)["MEMORY_LIMIT"] == "128m"
    assert env_of(web)["PORT"] == "8080"

    # The pods really run, two containers' worth of each type as asked.
    op.wait_for(
        "5 running pods (web 2, worker 2, clock 1)", lambda: len(running_pods(op, app_ns, "wharf.dev/app=store")) == 5
    )
    status = (op.get("app", "store", app_ns) or {})["status"]
    assert {p["type"]: p["desired"] for p in status["processes"]} == {"web": 2, "worker": 2, "clock": 1, "idle": 0}
    assert status["instances"] == "2/2"


# -- S15: stop, start -------------------------------------------------------------------------------------------
def test_stopped_scales_every_process_to_zero_and_started_brings_them_back(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    push_image(registry_plain, "manifest/single", "v1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/manifest/single:v1"
    manifest = {
        "instances": 2,
        "memory": "64M",
        "processes": [{"type": "worker", "instances": 1, "command": "./work", "memory": "64M"}],
    }
    op.apply(app("toggle", app_ns, image, manifest))
    op.wait_for("App Ready", lambda: ready(op, "toggle", app_ns))
    op.wait_for("3 pods", lambda: len(running_pods(op, app_ns, "wharf.dev/app=toggle")) == 3)

    patch_spec(op, "toggle", app_ns, {"state": "STOPPED"})  # cf stop
    op.wait_for(
        "every Deployment at zero",
        lambda: replicas(op, "toggle-web", app_ns) == 0 and replicas(op, "toggle-worker", app_ns) == 0,
    )
    op.wait_for("no pods", lambda: not items(op, "pods", app_ns, "wharf.dev/app=toggle"), timeout=60)
    op.wait_for("Ready/Stopped", lambda: ready(op, "toggle", app_ns, "Stopped"))
    # Everything is kept: the Deployments and the Service stay (S15).
    assert op.get("service", "toggle", app_ns) is not None

    patch_spec(op, "toggle", app_ns, {"state": "STARTED"})  # cf start
    op.wait_for(
        "replicas back", lambda: replicas(op, "toggle-web", app_ns) == 2 and replicas(op, "toggle-worker", app_ns) == 1
    )
    op.wait_for("Ready/Running", lambda: ready(op, "toggle", app_ns, "Running"))
    op.wait_for("3 pods again", lambda: len(running_pods(op, app_ns, "wharf.dev/app=toggle")) == 3)


# -- S13, S15: restart keeps the digest; restage re-resolves; scale does not ---------------------------------
def test_restart_rolls_same_digest_restage_moves_to_new_digest(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    first = push_image(registry_plain, "manifest/moving", "stable", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/manifest/moving:stable"
    op.apply(app("roller", app_ns, image, {"instances": 2, "memory": "64M"}))
    op.wait_for("App Ready", lambda: ready(op, "roller", app_ns))
    selector = "wharf.dev/app=roller"
    op.wait_for("2 pods", lambda: len(running_pods(op, app_ns, selector)) == 2)
    before = {p["metadata"]["name"] for p in running_pods(op, app_ns, selector)}
    resolved_at = (op.get("app", "roller", app_ns) or {})["status"]["image"]["resolvedAt"]

    def pod_images() -> set[str]:
        return {c["image"] for p in running_pods(op, app_ns, selector) for c in p["spec"]["containers"]}

    # A new image under the same tag: nothing moves until a restage (S13).
    second = push_image(
        registry_plain,
        "manifest/moving",
        "stable",
        ImageSpec(exposed_ports=["8080/tcp"], user="1001", cmd=["/app/server", "--v2"]),
    )
    assert second != first

    # cf restart: new pods, same digest.
    patch_spec(op, "roller", app_ns, {"restartedAt": "2024-06-01T10:00:00Z"})

    def rolled() -> set[str] | None:
        pods = running_pods(op, app_ns, selector)
        names = {p["metadata"]["name"] for p in pods}
        return names if len(pods) == 2 and not names & before else None

    after_restart = op.wait_for("new pods after restart", rolled, timeout=90)
    assert pod_images() == {f"{registry_plain.host}/manifest/moving@{first}"}
    status = (op.get("app", "roller", app_ns) or {})["status"]
    assert status["image"]["digest"] == first
    assert status["image"]["resolvedAt"] == resolved_at

    # cf scale: more instances, still the first digest (no re-resolution).
    op.cluster.kubectl("scale", "app", "roller", "-n", app_ns, "--replicas", "3")
    op.wait_for("3 replicas", lambda: replicas(op, "roller-web", app_ns) == 3)
    op.wait_for("3 pods", lambda: len(running_pods(op, app_ns, selector)) == 3)
    assert pod_images() == {f"{registry_plain.host}/manifest/moving@{first}"}
    assert (op.get("app", "roller", app_ns) or {})["status"]["image"]["digest"] == first

    # cf restage: re-read the registry, roll to the new digest.
    patch_spec(op, "roller", app_ns, {"restage": "1"})
    new_image = f"{registry_plain.host}/manifest/moving@{second}"
    op.wait_for(
        "Deployment on the new digest",
        lambda: container(op.get("deployment", "roller-web", app_ns) or {})["image"] == new_image,
    )
    op.wait_for(
        "pods on the new digest",
        lambda: pod_images() == {new_image} and len(running_pods(op, app_ns, selector)) == 3,
        timeout=90,
    )
    op.wait_for(
        "status on the new digest",
        lambda: (op.get("app", "roller", app_ns) or {})["status"]["image"]["digest"] == second,
    )
    op.wait_for("App Ready", lambda: ready(op, "roller", app_ns))
    assert not after_restart & {p["metadata"]["name"] for p in running_pods(op, app_ns, selector)}


# -- S2: a pasted real CF manifest ---------------------------------------------------------------------------------
def test_pasted_cf_manifest_warns_about_ignored_keys_and_deploys(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    push_image(registry_plain, "manifest/pasted", "v1", STANDARD_IMAGES["single-port"])
    pasted = yaml.safe_load("""
applications:
- name: billing
  memory: 128M
  disk_quota: 256M
  instances: 1
  buildpacks:
  - https://github.com/cloudfoundry/java-buildpack.git
  stack: cflinuxfs4
  path: target/billing-1.0.jar
  log-rate-limit-per-second: 16K
  random-route: true
  default-route: true
  env:
    JBP_CONFIG_OPEN_JDK_JRE: '{ jre: { version: 17.+ } }'
    SPRING_PROFILES_ACTIVE: cloud
""")["applications"][0]
    op.apply(app("billing", app_ns, f"{registry_plain.host}/manifest/pasted:v1", pasted))
    op.wait_for("App Ready", lambda: ready(op, "billing", app_ns))

    warnings = op.condition("billing", app_ns, "ManifestWarnings")
    assert warnings["status"] == "True"
    for key in ("buildpacks", "stack", "path", "log-rate-limit-per-second", "random-route", "default-route"):
        assert key in warnings["message"], key
    status = (op.get("app", "billing", app_ns) or {})["status"]
    assert status["buildpack"] == "unknown"
    assert any("buildpacks is ignored" in w for w in status["warnings"])
    op.wait_for(
        "IgnoredKeys event",
        lambda: any(
            e["reason"] == "IgnoredKeys" and e["type"] == "Warning" and "stack" in e["message"]
            for e in op.app_events(app_ns)
        ),
    )
    env = env_of(container(op.get("deployment", "billing-web", app_ns) or {}))
    assert env["SPRING_PROFILES_ACTIVE"] == "cloud"


def test_cf_cli_keys_are_accepted_and_v6_route_keys_need_a_default_domain(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    # S20: lifecycle, route protocol/options and the v6 keys are accepted at kubectl apply; without a default
    # domain the v6 keys are refused by the operator naming `routes`; unknown keys stay unknown.
    op = wharf_operator
    push_image(registry_plain, "manifest/v6", "v1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/manifest/v6:v1"
    accepted = {
        "lifecycle": "buildpack",
        "memory": "64M",
        "routes": [{"route": "shop.example.com", "protocol": "http2", "options": {"loadbalancing": "least-request"}}],
    }
    op.apply(app("modern", app_ns, image, accepted))
    op.wait_for("App Ready", lambda: ready(op, "modern", app_ns), timeout=60)
    warnings = (op.get("app", "modern", app_ns) or {})["status"]["warnings"]
    assert "lifecycle: buildpack is ignored for image apps" in warnings
    assert any("loadbalancing is not applied to shop.example.com (least-request)" in w for w in warnings)

    for key, value in (("hosts", ["shop"]), ("host", "shop"), ("no-hostname", True)):
        op.apply(app("legacy", app_ns, image, {key: value, "memory": "64M"}))
        stalled = op.wait_for(
            f"{key}: Stalled naming routes",
            lambda: (c := op.condition("legacy", app_ns, "Stalled")).get("status") == "True" and c,
            timeout=45,
        )
        assert stalled["reason"] == "InvalidSpec", stalled
        assert "this cluster has no default domain: write routes instead" in stalled["message"], stalled
        op.cluster.kubectl("delete", "app", "legacy", "-n", app_ns, "--wait")
    out = op.apply(app("unknown", app_ns, image, {"colour": "blue"}), check=False)
    assert out.returncode != 0
    assert "unknown field" in out.stderr, out.stderr


# -- S9: services from Secrets ------------------------------------------------------------------------------------
def test_services_bound_from_secrets_appear_in_vcap_services(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    push_image(registry_plain, "manifest/svc", "v1", STANDARD_IMAGES["single-port"])
    for name, data in (
        ("orders-db", {"uri": "postgres://u:p@db:5432/orders", "username": "u"}),
        ("cache", {"host": "redis", "port": "6379"}),
    ):
        op.cluster.kubectl(
            "create", "secret", "generic", name, "-n", app_ns, *(f"--from-literal={k}={v}" for k, v in data.items())
        )
    manifest = {
        "memory": "64M",
        "services": ["orders-db", {"name": "cache", "binding_name": "redis"}],
        "processes": [{"type": "worker", "instances": 1, "command": "./work", "memory": "64M"}],
    }
    op.apply(app("orders", app_ns, f"{registry_plain.host}/manifest/svc:v1", manifest))
    op.wait_for("App Ready", lambda: ready(op, "orders", app_ns))

    derived = op.get("secret", "orders-vcap-services", app_ns)
    assert derived is not None
    assert derived["metadata"]["ownerReferences"][0]["kind"] == "App"
    vcap = json.loads(base64.b64decode(derived["data"]["VCAP_SERVICES"]))
    bound = {entry["name"]: entry for entry in vcap["user-provided"]}
    assert set(bound) == {"orders-db", "redis"}
    assert bound["orders-db"]["credentials"] == {"uri": "postgres://u:p@db:5432/orders", "username": "u"}
    assert bound["redis"]["instance_name"] == "cache"
    assert bound["redis"]["binding_name"] == "redis"
    assert bound["redis"]["credentials"] == {"host": "redis", "port": "6379"}
    assert bound["redis"]["label"] == "user-provided"
    for process in ("web", "worker"):
        env = env_of(container(op.get("deployment", f"orders-{process}", app_ns) or {}))
        # Through the derived Secret, never inline in the Deployment.
        assert env["VCAP_SERVICES"] == {"secretKeyRef": {"name": "orders-vcap-services", "key": "VCAP_SERVICES"}}

    # Unbinding every service prunes the derived Secret; the user's own Secrets stay.
    op.apply(app("orders", app_ns, f"{registry_plain.host}/manifest/svc:v1", {**manifest, "services": []}))
    op.wait_for("derived Secret pruned", lambda: op.get("secret", "orders-vcap-services", app_ns) is None)
    assert op.get("secret", "orders-db", app_ns) is not None
    op.wait_for("App Ready", lambda: ready(op, "orders", app_ns))
    env = env_of(container(op.get("deployment", "orders-web", app_ns) or {}))
    assert json.loads(env["VCAP_SERVICES"]) == {}


def test_service_binding_files_from_the_cluster_secret(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str, tmp_path: Path, kubelet: Kubelet
) -> None:
    # servicebinding.io files within S8: the init container's script, given the env the kubelet resolves from the
    # derived Secret in the cluster, writes $SERVICE_BINDING_ROOT/<binding>/<key>. (The fake node runs no
    # containers, so the script runs here, under dash, with the Secret read back from the apiserver and the
    # command as the kubelet's own expansion leaves it.)
    op = wharf_operator
    push_image(registry_plain, "manifest/files", "v1", STANDARD_IMAGES["single-port"])
    op.cluster.kubectl(
        "create", "secret", "generic", "ledger-db", "-n", app_ns,
        "--from-literal=uri=postgres://u:p@db:5432/ledger", "--from-literal=type=postgresql",
    )  # fmt: skip
    manifest = {"memory": "64M", "services": [{"name": "ledger-db", "binding_name": "db"}, "not-yet"]}
    op.apply(app("ledger", app_ns, f"{registry_plain.host}/manifest/files:v1", manifest))
    op.wait_for("App Ready", lambda: ready(op, "ledger", app_ns))

    status = (op.get("app", "ledger", app_ns) or {})["status"]
    assert "service not-yet is bound but no Secret not-yet exists in namespace" in " ".join(status["warnings"])
    pod_spec = (op.get("deployment", "ledger-web", app_ns) or {})["spec"]["template"]["spec"]
    assert pod_spec["volumes"] == [
        {"name": "service-bindings", "emptyDir": {"medium": "Memory", "sizeLimit": "2Mi"}}
    ]  # S8: the only volume is an emptyDir
    (init,) = pod_spec["initContainers"]
    assert container({"spec": {"template": {"spec": pod_spec}}})["volumeMounts"][0]["readOnly"] is True
    derived = (op.get("secret", "ledger-vcap-services", app_ns) or {})["data"]
    resolved: dict[str, str] = {}
    for variable in init["env"]:
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == "ledger-vcap-services"
            resolved[variable["name"]] = base64.b64decode(derived[ref["key"]]).decode()
    (started,) = kubelet.start([init], resolved)
    env = {**started.env, "PATH": "/usr/bin:/bin", "SERVICE_BINDING_ROOT": str(tmp_path)}
    result = subprocess.run(["dash", *started.command[1:]], env=env, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    files = {str(f.relative_to(tmp_path)): f.read_text() for f in sorted(tmp_path.rglob("*")) if f.is_file()}
    assert files == {
        "db/uri": "postgres://u:p@db:5432/ledger",
        "db/type": "postgresql",
        "not-yet/type": "user-provided",
    }


# -- S5: sidecars -----------------------------------------------------------------------------------------------
def test_sidecars_become_extra_containers_with_sh_c(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    digest = push_image(registry_plain, "manifest/sidecar", "v1", STANDARD_IMAGES["single-port"])
    manifest = {
        "memory": "256M",
        "processes": [{"type": "worker", "instances": 1, "command": "./work", "memory": "128M"}],
        "sidecars": [
            {"name": "proxy", "process_types": ["web"], "command": "./proxy --upstream $PORT", "memory": "64M"},
            {"name": "metrics", "process_types": ["web", "worker"], "command": "./exporter"},
        ],
    }
    op.apply(app("sided", app_ns, f"{registry_plain.host}/manifest/sidecar:v1", manifest))
    op.wait_for("App Ready", lambda: ready(op, "sided", app_ns))

    web = op.get("deployment", "sided-web", app_ns) or {}
    worker = op.get("deployment", "sided-worker", app_ns) or {}
    assert [c["name"] for c in web["spec"]["template"]["spec"]["containers"]] == [
        "app",
        "sidecar-proxy",
        "sidecar-metrics",
    ]
    assert [c["name"] for c in worker["spec"]["template"]["spec"]["containers"]] == ["app", "sidecar-metrics"]
    proxy = container(web, "sidecar-proxy")
    assert proxy["command"] == ["sh", "-c", "./proxy --upstream $PORT"]  # the kubelet leaves `$PORT` alone
    assert proxy["image"] == f"{registry_plain.host}/manifest/sidecar@{digest}"  # same bits as the app
    assert proxy["resources"]["limits"]["memory"] == "64Mi"
    assert container(web)["resources"]["limits"]["memory"] == "192Mi"  # the sidecar's share comes off the app's
    assert env_of(proxy)["PORT"] == "8080"
    assert container(worker, "sidecar-metrics")["command"] == ["sh", "-c", "./exporter"]
    pods = op.wait_for(
        "web pod with 3 running containers",
        lambda: [
            p
            for p in running_pods(op, app_ns, "wharf.dev/app=sided,wharf.dev/process-type=web")
            if len(p["status"].get("containerStatuses", [])) == 3
        ],
    )
    assert all(s["ready"] for s in pods[0]["status"]["containerStatuses"])


# -- manifest metadata ---------------------------------------------------------------------------------------------
def test_manifest_metadata_lands_on_created_objects(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    push_image(registry_plain, "manifest/meta", "v1", STANDARD_IMAGES["single-port"])
    op.cluster.kubectl("create", "secret", "generic", "meta-db", "-n", app_ns, "--from-literal=uri=x")
    manifest = {
        "memory": "64M",
        "services": ["meta-db"],
        "processes": [{"type": "worker", "instances": 1, "command": "./work", "memory": "64M"}],
        "metadata": {
            "labels": {"team": "payments", "tier": "backend"},
            "annotations": {"contact": "payments@example.com", "runbook": "https://wiki/pay"},
        },
    }
    op.apply(app("meta", app_ns, f"{registry_plain.host}/manifest/meta:v1", manifest))
    op.wait_for("App Ready", lambda: ready(op, "meta", app_ns))

    objects = [
        op.get("deployment", "meta-web", app_ns),
        op.get("deployment", "meta-worker", app_ns),
        op.get("service", "meta", app_ns),
        op.get("secret", "meta-vcap-services", app_ns),
    ]
    for obj in objects:
        assert obj is not None
        meta = obj["metadata"]
        assert meta["labels"]["team"] == "payments", meta["name"]
        assert meta["labels"]["tier"] == "backend", meta["name"]
        assert meta["annotations"]["contact"] == "payments@example.com", meta["name"]
        assert meta["annotations"]["runbook"] == "https://wiki/pay", meta["name"]
        assert meta["labels"]["wharf.dev/app"] == "meta"  # wharf's own labels are kept
    pods = op.wait_for("pods", lambda: running_pods(op, app_ns, "wharf.dev/app=meta,team=payments"))
    assert pods, "pods carry the manifest labels too"


# -- S11: routes without routing -----------------------------------------------------------------------------------
def test_routes_without_routing_enabled_create_no_routing_objects_and_say_so(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    push_image(registry_plain, "manifest/routes", "v1", STANDARD_IMAGES["single-port"])
    manifest = {"memory": "64M", "routes": [{"route": "shop.example.com"}, {"route": "shop.example.com/api"}]}
    op.apply(app("routed", app_ns, f"{registry_plain.host}/manifest/routes:v1", manifest))
    op.wait_for("App Ready", lambda: ready(op, "routed", app_ns))

    # The test operator runs with WHARF_ROUTING unset (none): no Ingress (HTTPRoute is not even installed).
    assert items(op, "ingresses", app_ns, "wharf.dev/app=routed") == []
    assert json.loads(op.cluster.kubectl("get", "ingresses", "-n", app_ns, "-o", "json").stdout)["items"] == []
    status = (op.get("app", "routed", app_ns) or {})["status"]
    assert status["routes"] == ["shop.example.com", "shop.example.com/api"]
    assert any("routes are not routed" in w for w in status["warnings"])
    warnings = op.condition("routed", app_ns, "ManifestWarnings")
    assert warnings["status"] == "True"
    assert "not enabled" in warnings["message"]
    env = env_of(container(op.get("deployment", "routed-web", app_ns) or {}))
    assert json.loads(env["VCAP_APPLICATION"])["uris"] == ["shop.example.com", "shop.example.com/api"]
    assert op.get("service", "routed", app_ns) is not None  # the Service exists: reachable in-cluster

    # no-route: true is what CF users write for "no routes": no warning, no uris.
    op.apply(app("routed", app_ns, f"{registry_plain.host}/manifest/routes:v1", {"memory": "64M", "no-route": True}))
    op.wait_for("warnings cleared", lambda: op.condition("routed", app_ns, "ManifestWarnings").get("status") == "False")
    env = env_of(container(op.get("deployment", "routed-web", app_ns) or {}))
    assert json.loads(env["VCAP_APPLICATION"])["uris"] == []


# -- S11: routes with routing enabled, on an operator of their own ----------------------------------------------
def test_ingress_routes_follow_the_manifest_and_are_pruned(
    solo_operator: SoloOperator, registry_plain: RegistryServer
) -> None:
    # S11: routes become an Ingress when the admin enables it; `no-route: true` means no routing objects
    op, ns = solo_operator({"WHARF_ROUTING": "ingress", "WHARF_INGRESS_CLASS": "nginx"})
    push_image(registry_plain, "manifest/ingress", "v1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/manifest/ingress:v1"
    routes = [{"route": "shop.example.com"}, {"route": "shop.example.com/api"}]
    op.apply(app("routed", ns, image, {"memory": "64M", "routes": routes}))
    op.wait_for("App Ready", lambda: ready(op, "routed", ns))
    (ingress,) = items(op, "ingresses", ns, "wharf.dev/app=routed")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    paths = [(r["host"], p["path"]) for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
    assert paths == [("shop.example.com", "/"), ("shop.example.com", "/api")]
    assert ingress["metadata"]["ownerReferences"][0]["kind"] == "App"

    # S19: one Service of the App's per route, as the Ingress names them.
    backends = sorted(p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"])

    def services() -> list[str]:
        return sorted(s["metadata"]["name"] for s in items(op, "services", ns, "wharf.dev/app=routed"))

    assert len(set(backends)) == 2
    assert services() == sorted(["routed", *backends])

    # `no-route: true` takes the App off the router: the Ingress and the route Services are deleted, the App's
    # Service and pods stay.
    op.apply(app("routed", ns, image, {"memory": "64M", "no-route": True}))
    op.wait_for("Ingress pruned", lambda: items(op, "ingresses", ns, "wharf.dev/app=routed") == [])
    op.wait_for("route Services pruned", lambda: services() == ["routed"])
    op.wait_for("App Ready", lambda: ready(op, "routed", ns))


def test_an_object_the_apiserver_refuses_is_reported_not_retried_blindly(
    solo_operator: SoloOperator, registry_plain: RegistryServer
) -> None:
    # S11: Gateway routing enabled on a cluster without the Gateway API: the HTTPRoute cannot be created. The App says
    # so (Stalled, ApplyRefused, the apiserver's words and what to check) instead of showing nothing.
    op, ns = solo_operator({"WHARF_ROUTING": "gateway", "WHARF_GATEWAY_NAME": "edge"})
    push_image(registry_plain, "manifest/gateway", "v1", STANDARD_IMAGES["single-port"])
    op.apply(
        app(
            "gw",
            ns,
            f"{registry_plain.host}/manifest/gateway:v1",
            {"memory": "64M", "routes": [{"route": "gw.example.com"}]},
        )
    )
    stalled = op.wait_for("Stalled", lambda: (c := op.condition("gw", ns, "Stalled")).get("status") == "True" and c)
    assert stalled["reason"] == "ApplyRefused"
    assert "HTTPRoute" in stalled["message"]
    assert "is its API or CRD installed?" in stalled["message"]
    assert op.condition("gw", ns)["reason"] == "ApplyRefused"
    assert any(e["reason"] == "ApplyRefused" for e in op.app_events(ns))

    # Without routes nothing needs the Gateway API: the same App becomes Ready.
    op.apply(app("gw", ns, f"{registry_plain.host}/manifest/gateway:v1", {"memory": "64M"}))
    op.wait_for("App Ready", lambda: ready(op, "gw", ns))
    assert op.condition("gw", ns, "Stalled")["status"] == "False"


# -- examples/ on the cluster ----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_deploy_and_become_ready(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str, path: Path
) -> None:
    op = wharf_operator
    digest = push_image(registry_plain, "examples/app", "v1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/examples/app:v1"
    body = yaml.safe_load(path.read_text())
    body["metadata"]["namespace"] = app_ns
    body["spec"]["dockerImage"] = image  # the example's public image, served by the test registry instead
    manifest = body["spec"].get("manifest", {})
    for binding in manifest.get("services", []):
        name = binding if isinstance(binding, str) else binding["name"]
        op.cluster.kubectl("create", "secret", "generic", name, "-n", app_ns, "--from-literal=uri=example://x")
    op.apply(body)
    name = body["metadata"]["name"]
    op.wait_for(f"{path.name} Ready", lambda: ready(op, name, app_ns), timeout=90)
    status = (op.get("app", name, app_ns) or {})["status"]
    assert status["image"]["digest"] == digest
    expected = {"web", *(p["type"] for p in manifest.get("processes", []))}
    assert {p["type"] for p in status["processes"]} == expected
    assert op.get("service", name, app_ns) is not None
