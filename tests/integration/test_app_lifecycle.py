"""The App on the real control plane and the real registry: deploy, update, drift, delete (issue: App resource).

Every test runs the operator as a separate process (`wharf run`) against kube-apiserver + controller-manager +
scheduler + kwok, in a namespace that enforces PodSecurity `restricted`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.apps import app_resource
from harness.fixtures_operator import Operator, SoloOperator, _stop
from harness.images import STANDARD_IMAGES, push_image
from harness.registry import RegistryServer

pytestmark = [pytest.mark.cluster, pytest.mark.registry]


def ready(op: Operator, name: str, ns: str) -> bool:
    return op.condition(name, ns).get("status") == "True"


def test_app_becomes_deployment_service_and_running_pods(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    digest = push_image(registry_plain, "e2e/multi", "v1", STANDARD_IMAGES["multi-port"])
    image = f"{registry_plain.host}/e2e/multi:v1"
    op.apply(
        app_resource(
            "web",
            app_ns,
            image,
            memory="256M",
            disk_quota="512M",
            command="./start --fast",
            buildpacks=["go_buildpack"],
        )
    )
    op.wait_for("App Ready", lambda: ready(op, "web", app_ns))
    # kubectl wait, as GitOps users script it, agrees (S14/issue 5).
    op.cluster.kubectl("wait", "--for=condition=Ready", "app/web", "-n", app_ns, "--timeout=30s")

    deployment = op.get("deployment", "web-web", app_ns)
    assert deployment is not None
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == f"{registry_plain.host}/e2e/multi@{digest}"  # S13: pinned by digest
    assert container["command"] == ["sh", "-c", "./start --fast"]  # S5
    assert "args" not in container
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PORT"] == "8080"  # S6: lowest EXPOSEd TCP port of 9000, 8080, 8443
    assert env["MEMORY_LIMIT"] == "256m"  # S9
    vcap = json.loads(env["VCAP_APPLICATION"])
    assert vcap["application_name"] == "web"
    assert vcap["space_name"] == app_ns
    assert vcap["port"] == 8080
    assert [p["containerPort"] for p in container["ports"]] == [8080, 8443, 9000]
    assert container["resources"]["limits"] == {"memory": "256Mi", "ephemeral-storage": "512Mi"}  # S4
    assert pod["securityContext"]["runAsNonRoot"] is True  # S7
    assert pod["securityContext"]["runAsUser"] == 1001
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["automountServiceAccountToken"] is False
    assert all("emptyDir" in v for v in pod.get("volumes", []))  # S8
    assert deployment["metadata"]["ownerReferences"][0]["kind"] == "App"

    service = op.get("service", "web", app_ns)
    assert service is not None
    assert service["spec"]["ports"][0]["port"] == 8080  # S6

    pods = json.loads(op.cluster.kubectl("get", "pods", "-n", app_ns, "-l", "wharf.dev/app=web", "-o", "json").stdout)
    assert pods["items"], "no pods"
    assert all(p["status"]["phase"] == "Running" and p["spec"]["nodeName"] for p in pods["items"])

    status = (op.get("app", "web", app_ns) or {})["status"]
    assert status["buildpack"] == "unknown"  # S2
    assert status["port"] == 8080
    assert status["ports"] == [8080, 8443, 9000]
    assert status["image"]["digest"] == digest
    warnings = op.condition("web", app_ns, "ManifestWarnings")
    assert warnings["status"] == "True"
    assert "buildpacks" in warnings["message"]
    events = op.cluster.kubectl(
        "get", "events", "-n", app_ns, "--field-selector", "involvedObject.kind=App", "-o", "json"
    ).stdout
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert {"ImageResolved", "PortChosen", "IgnoredKeys"} <= reasons


def test_edit_scales_drift_is_corrected_and_delete_cascades(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    push_image(registry_plain, "e2e/single", "v1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/e2e/single:v1"
    op.apply(app_resource("scaler", app_ns, image, instances=1))
    op.wait_for("App Ready", lambda: ready(op, "scaler", app_ns))

    # Editing the App updates the Deployment (S15 scale).
    op.apply(app_resource("scaler", app_ns, image, instances=3))
    op.wait_for(
        "3 replicas", lambda: (op.get("deployment", "scaler-web", app_ns) or {}).get("spec", {}).get("replicas") == 3
    )
    op.wait_for(
        "3/3 ready",
        lambda: (
            (op.get("app", "scaler", app_ns) or {}).get("status", {}).get("instances") == "3/3"
            and ready(op, "scaler", app_ns)
        ),
    )

    # A hand edit of the Deployment is put back.
    op.cluster.kubectl("scale", "deployment/scaler-web", "-n", app_ns, "--replicas=7")
    op.cluster.kubectl("set", "env", "deployment/scaler-web", "-n", app_ns, "PORT=1")

    def restored() -> bool:
        d = op.get("deployment", "scaler-web", app_ns) or {}
        env = {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
        return d["spec"]["replicas"] == 3 and env["PORT"] == "8080"

    op.wait_for("drift corrected", restored, timeout=30)

    # Deleting the App removes everything it created (S15), via owner references.
    op.cluster.kubectl("delete", "app", "scaler", "-n", app_ns)
    op.wait_for("deployment gone", lambda: op.get("deployment", "scaler-web", app_ns) is None)
    op.wait_for("service gone", lambda: op.get("service", "scaler", app_ns) is None)


def test_fixing_a_missing_tag_is_picked_up_at_once(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    # S14: a permanent registry error waits for a person; their fix of the App is reconciled at once, not after
    # a retry delay.
    op = wharf_operator
    push_image(registry_plain, "e2e/fixme", "v1", STANDARD_IMAGES["single-port"])
    op.apply(app_resource("fixme", app_ns, f"{registry_plain.host}/e2e/fixme:nope"))
    op.wait_for("ImageNotFound", lambda: op.condition("fixme", app_ns).get("reason") == "ImageNotFound")
    assert op.get("deployment", "fixme-web", app_ns) is None  # nothing half-made
    op.apply(app_resource("fixme", app_ns, f"{registry_plain.host}/e2e/fixme:v1"))
    op.wait_for("Ready after the fix", lambda: ready(op, "fixme", app_ns), timeout=20)


def test_apps_carry_no_finalizer_so_deletion_never_waits_for_the_operator(
    solo_operator: SoloOperator, registry_plain: RegistryServer
) -> None:
    # S15: deleting an App (or its namespace, or the CRD at uninstall) must not hang when the operator is gone.
    op, ns = solo_operator({})
    push_image(registry_plain, "e2e/final", "v1", STANDARD_IMAGES["single-port"])
    for name in ("kept", "gone"):
        op.apply(app_resource(name, ns, f"{registry_plain.host}/e2e/final:v1", memory="64M"))
    for name in ("kept", "gone"):
        op.wait_for(f"{name} Ready", lambda name=name: ready(op, name, ns))
        assert not (op.get("app", name, ns) or {})["metadata"].get("finalizers")

    # Foreground deletion (Argo CD's prune default): the children go first while the App still exists; the
    # operator must not apply them again.
    deleted = op.cluster.kubectl(
        "delete", "app", "kept", "-n", ns, "--cascade=foreground", "--timeout=60s", check=False
    )
    assert deleted.returncode == 0, deleted.stderr
    assert op.get("app", "kept", ns) is None
    assert op.get("deployment", "kept-web", ns) is None

    _stop(op)  # the operator is gone (uninstalled, crashed): deleting still completes
    deleted = op.cluster.kubectl("delete", "app", "gone", "-n", ns, "--timeout=30s", check=False)
    assert deleted.returncode == 0, deleted.stderr
    assert op.get("app", "gone", ns) is None


def test_scale_subresource_has_the_web_selector_and_an_hpa_scales_the_app(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    # S4, S15: autoscaling targets the App (the source of truth), through its scale subresource; an HPA on the
    # Deployment would be undone by the next reconcile, as a hand edit is above.
    op = wharf_operator
    push_image(registry_plain, "e2e/auto", "v1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/e2e/auto:v1"
    worker = {"type": "worker", "instances": 1, "command": "./work"}
    op.apply(app_resource("auto", app_ns, image, instances=1, processes=[worker]))
    op.wait_for("App Ready", lambda: ready(op, "auto", app_ns))

    def scale() -> dict[str, Any]:
        raw = op.cluster.kubectl("get", "--raw", f"/apis/wharf.dev/v1alpha1/namespaces/{app_ns}/apps/auto/scale")
        found: dict[str, Any] = json.loads(raw.stdout)
        return found

    def pods(selector: str) -> list[str]:
        out = op.cluster.kubectl("get", "pods", "-n", app_ns, "-l", selector, "-o", "json").stdout
        return sorted(
            p["metadata"]["name"]
            for p in json.loads(out)["items"]
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        )

    # The scale's selector is the web Deployment's: it picks the web pods, not the worker's.
    selector = "wharf.dev/app=auto,wharf.dev/process-type=web"
    assert scale()["status"]["selector"] == selector
    assert scale()["spec"]["replicas"] == 1
    web = op.get("deployment", "auto-web", app_ns) or {}
    assert web["spec"]["selector"]["matchLabels"] == {"wharf.dev/app": "auto", "wharf.dev/process-type": "web"}
    op.wait_for("a web pod and a worker pod", lambda: len(pods("wharf.dev/app=auto")) == 2)
    selected = pods(selector)
    assert len(selected) == 1
    assert selected[0].startswith("auto-web-")

    # kubectl scale still goes through the same subresource.
    op.cluster.kubectl("scale", "app", "auto", "-n", app_ns, "--replicas", "3")
    op.wait_for(
        "3 web replicas", lambda: (op.get("deployment", "auto-web", app_ns) or {}).get("spec", {}).get("replicas") == 3
    )
    op.wait_for("3 selected pods", lambda: len(pods(selector)) == 3, timeout=90)
    op.wait_for("the scale reports 3 ready", lambda: scale()["status"].get("replicas") == 3)
    assert scale()["status"]["selector"] == selector

    # A HorizontalPodAutoscaler on the App: the apiserver takes it, the HPA controller reads the scale and its
    # selector. No metrics API here, so it then fails to get CPU metrics - a step it only reaches with a selector
    # (without one: ScalingActive False, InvalidSelector, "selector is required").
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "auto", "namespace": app_ns},
        "spec": {
            "scaleTargetRef": {"apiVersion": "wharf.dev/v1alpha1", "kind": "App", "name": "auto"},
            "minReplicas": 1,
            "maxReplicas": 5,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ],
        },
    }
    op.apply(hpa)

    def hpa_conditions() -> dict[str, dict[str, Any]]:
        found = op.get("hpa", "auto", app_ns) or {}
        return {c["type"]: c for c in (found.get("status") or {}).get("conditions", [])}

    def read_the_selector() -> dict[str, dict[str, Any]] | None:
        conditions = hpa_conditions()
        active = conditions.get("ScalingActive", {})
        return conditions if active.get("reason") and active.get("reason") != "InvalidSelector" else None

    conditions = op.wait_for("the HPA to read the App's scale", read_the_selector, timeout=90)
    assert (conditions["AbleToScale"]["status"], conditions["AbleToScale"]["reason"]) == ("True", "SucceededGetScale")
    assert (conditions["ScalingActive"]["status"], conditions["ScalingActive"]["reason"]) == (
        "False",
        "FailedGetResourceMetric",
    )
    assert (op.get("hpa", "auto", app_ns) or {})["status"]["currentReplicas"] == 3

    # The HPA scales the App (below minReplicas needs no metrics), and wharf follows the App.
    op.cluster.kubectl(
        "patch", "hpa", "auto", "-n", app_ns, "--type=merge", "-p", json.dumps({"spec": {"minReplicas": 4}})
    )
    op.wait_for(
        "the HPA to set instances: 4",
        lambda: (op.get("app", "auto", app_ns) or {})["spec"]["manifest"].get("instances") == 4,
        timeout=90,
    )
    op.wait_for(
        "4 web replicas", lambda: (op.get("deployment", "auto-web", app_ns) or {}).get("spec", {}).get("replicas") == 4
    )
    op.wait_for("4 selected pods", lambda: len(pods(selector)) == 4, timeout=90)
    assert (op.get("deployment", "auto-worker", app_ns) or {})["spec"]["replicas"] == 1
