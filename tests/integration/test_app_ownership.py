"""S17 on the real control plane: wharf touches only what it made.

- A name wharf would use that is taken by an object it did not make (no owner reference to this App's uid) is left
  exactly as it is, byte for byte, for each kind wharf creates (Service, Secret, Deployment, Ingress, HTTPRoute);
  the App is Stalled, reason NameConflict, naming the object and what to rename; nothing of the App is created;
  deleting the App (foreground: the garbage collector has finished with its dependents when it returns) leaves the
  user's object as it was.
- What it made it keeps exactly as the App says: fields other field managers add to its Deployment's pod template
  (an update, and a server-side apply) are removed again, and the App is Ready only on the template it renders.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import yaml

from harness.apps import app_resource
from harness.fixtures_operator import Operator, SoloOperator
from harness.images import STANDARD_IMAGES, push_image
from harness.registry import RegistryServer

pytestmark = [pytest.mark.cluster, pytest.mark.registry]

HOST = "shop.example.com"


def _app(name: str, namespace: str, image: str, **manifest: Any) -> dict[str, Any]:
    return app_resource(name, namespace, image, **{"memory": "64M", **manifest})


def _user_objects(kind: str, name: str, ns: str, image: str) -> list[dict[str, Any]]:
    """The user's own object of `kind` named `name` (and what it needs), made without wharf."""
    meta = {"name": name, "namespace": ns, "labels": {"owner": "a-user"}}
    if kind == "Service":
        spec = {"selector": {"app": "mine"}, "ports": [{"port": 80, "targetPort": 8080}]}
        return [{"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}]
    if kind == "Secret":
        db = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": ns}}
        return [
            {**db, "stringData": {"uri": "postgres://db"}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"mine": "keep me"}},
        ]
    if kind == "Deployment":
        labels = {"app": "mine"}
        container = {
            "name": "mine",
            "image": image,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        }
        spec = {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        }
        return [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}]
    backend = {"service": {"name": "mine", "port": {"number": 80}}}
    if kind == "Ingress":
        rule = {"host": HOST, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
        return [{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": {"rules": [rule]}}]
    assert kind == "HTTPRoute", kind
    spec = {
        "parentRefs": [{"name": "edge"}],
        "hostnames": [HOST],
        "rules": [{"backendRefs": [{"name": "mine", "port": 80}]}],
    }
    return [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": meta, "spec": spec}]


# kind -> (the name wharf would use for the App "taken", what the App's manifest needs to render that object)
CONFLICTS: dict[str, tuple[str, dict[str, Any]]] = {
    "Service": ("taken", {}),
    "Secret": ("taken-vcap-services", {"services": ["db"]}),
    "Deployment": ("taken-web", {}),
    "Ingress": ("taken", {"routes": [{"route": HOST}]}),
    "HTTPRoute": (f"taken-{hashlib.sha256(HOST.encode()).hexdigest()[:10]}", {"routes": [{"route": HOST}]}),
}
ROUTING = {
    "Ingress": {"WHARF_ROUTING": "ingress"},
    "HTTPRoute": {"WHARF_ROUTING": "gateway", "WHARF_GATEWAY_NAME": "edge"},
}


CONTROLLER = "kube-controller-manager"


def _as_the_user_left_it(obj: dict[str, Any] | None) -> dict[str, Any]:
    """The object without what its own controller writes (a Deployment's status, revision annotation and the
    resourceVersion those writes move): the rest must not change at all."""
    assert obj is not None
    meta = dict(obj["metadata"])
    meta.pop("resourceVersion")
    meta["managedFields"] = [e for e in meta.get("managedFields", []) if e["manager"] != CONTROLLER]
    meta["annotations"] = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k != "deployment.kubernetes.io/revision"
    }
    return {key: value for key, value in {**obj, "metadata": meta}.items() if key != "status"}


def _full(op: Operator, kind: str, name: str, ns: str) -> dict[str, Any] | None:
    """The object as stored, managedFields and all."""
    out = op.cluster.kubectl("get", kind, name, "-n", ns, "-o", "json", "--show-managed-fields", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


@pytest.mark.parametrize("kind", list(CONFLICTS))
def test_a_name_taken_by_someone_elses_object_is_left_untouched_and_the_app_is_stalled(
    kind: str,
    wharf_operator: Operator,
    solo_operator: SoloOperator,
    registry_plain: RegistryServer,
    app_ns: str,
    request: pytest.FixtureRequest,
) -> None:
    if kind == "HTTPRoute":
        request.getfixturevalue("gateway_api")  # the real Gateway API CRDs
    op, ns = solo_operator(ROUTING[kind]) if kind in ROUTING else (wharf_operator, app_ns)
    push_image(registry_plain, "own/single", "v1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/own/single:v1"
    name, manifest = CONFLICTS[kind]
    for obj in _user_objects(kind, name, ns, image):
        op.apply(obj)
    before = _full(op, kind.lower(), name, ns)
    assert before is not None

    op.apply(_app("taken", ns, image, **manifest))

    def stalled() -> dict[str, Any] | None:
        condition = op.condition("taken", ns, "Stalled")
        return condition if condition.get("reason") == "NameConflict" else None

    condition = op.wait_for("Stalled NameConflict", stalled, timeout=60)
    assert condition["status"] == "True"
    assert f"the {kind} {name} already exists" in condition["message"], condition
    assert "rename the App (metadata.name)" in condition["message"], condition
    ready = op.condition("taken", ns)
    assert (ready["status"], ready["reason"]) == ("False", "NameConflict")
    assert any(e["reason"] == "NameConflict" for e in op.app_events(ns, "taken"))
    now = _full(op, kind.lower(), name, ns)
    # Not even a no-op write: no field manager of wharf's on it, and nothing but its controller's status moved.
    assert [e["manager"] for e in (now or {})["metadata"]["managedFields"] if e["manager"] == "wharf"] == []
    assert _as_the_user_left_it(now) == _as_the_user_left_it(before)
    if kind != "Deployment":  # no controller writes these: exactly as they were
        assert now == before
    if kind != "Deployment":
        assert op.get("deployment", "taken-web", ns) is None  # names are checked before anything is written

    deleted = op.cluster.kubectl("delete", "app", "taken", "-n", ns, "--cascade=foreground", "--timeout=60s")
    assert deleted.returncode == 0
    assert op.get("app", "taken", ns) is None
    assert _as_the_user_left_it(_full(op, kind.lower(), name, ns)) == _as_the_user_left_it(before)


def _template(op: Operator, name: str, ns: str) -> dict[str, Any]:
    return (op.get("deployment", name, ns) or {})["spec"]["template"]


def _leaves(fields: dict[str, Any], path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if not fields:
        return {path}
    return {leaf for key, sub in fields.items() for leaf in _leaves(sub, (*path, key))}


def _foreign_template_fields(op: Operator, name: str, ns: str) -> dict[str, set[tuple[str, ...]]]:
    """Per other field manager, the pod template fields it owns that wharf does not (sharing a field wharf sets,
    with wharf's value, is no drift)."""
    entries = (_full(op, "deployment", name, ns) or {})["metadata"]["managedFields"]

    def template(entry: dict[str, Any]) -> set[tuple[str, ...]]:
        fields = (entry.get("fieldsV1") or {}).get("f:spec", {}).get("f:template")
        return _leaves(fields) if fields else set()

    ours = set().union(*(template(e) for e in entries if e["manager"] == "wharf"))
    found = {e["manager"]: template(e) - ours for e in entries if e["manager"] != "wharf"}
    return {manager: fields for manager, fields in found.items() if fields}


def test_fields_other_writers_add_to_the_pod_template_are_removed(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    push_image(registry_plain, "own/drift", "v1", STANDARD_IMAGES["single-port"])
    op.apply(_app("drift", app_ns, f"{registry_plain.host}/own/drift:v1"))
    op.wait_for("App Ready", lambda: op.condition("drift", app_ns).get("status") == "True")
    rendered = _template(op, "drift-web", app_ns)
    assert _foreign_template_fields(op, "drift-web", app_ns) == {}

    # Another writer's update (a JSON merge patch by field manager `intruder`): host namespaces, a hostPath
    # volume, privileges, capabilities, root, an extra container, an environment variable.
    evil = {
        "hostNetwork": True,
        "hostPID": True,
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        "containers": [
            {
                "name": "app",
                "env": [{"name": "INJECTED", "value": "1"}],
                "volumeMounts": [{"name": "root", "mountPath": "/host"}],
                "securityContext": {
                    "privileged": True,
                    "runAsUser": 0,
                    "allowPrivilegeEscalation": True,
                    "capabilities": {"add": ["SYS_ADMIN"]},
                },
            },
            {"name": "miner", "image": "busybox"},
        ],
    }
    patched = op.cluster.kubectl(
        "patch",
        "deployment",
        "drift-web",
        "-n",
        app_ns,
        "--type=strategic",
        "--field-manager=intruder",
        "-o",
        "json",
        "--show-managed-fields",
        "-p",
        json.dumps({"spec": {"template": {"spec": evil}}}),
    )
    took = json.loads(patched.stdout)  # the Deployment as the patch left it (wharf may have undone it since)
    assert took["spec"]["template"]["spec"]["hostNetwork"] is True
    assert [c["name"] for c in took["spec"]["template"]["spec"]["containers"]] == ["app", "miner"]
    assert "intruder" in [e["manager"] for e in took["metadata"]["managedFields"]]

    op.wait_for("the template back as rendered", lambda: _template(op, "drift-web", app_ns) == rendered, timeout=30)
    assert _foreign_template_fields(op, "drift-web", app_ns) == {}
    op.wait_for("App Ready", lambda: op.condition("drift", app_ns).get("status") == "True")

    # A server-side apply by another manager (a GitOps tool's, say): an extra container and an env var.
    sidecar = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "drift-web", "namespace": app_ns},
        "spec": {
            "selector": (op.get("deployment", "drift-web", app_ns) or {})["spec"]["selector"],
            "template": {
                "metadata": {"labels": rendered["metadata"]["labels"]},
                "spec": {
                    "containers": [
                        {"name": "app", "env": [{"name": "ALSO", "value": "x"}]},
                        {"name": "tap", "image": "busybox"},
                    ]
                },
            },
        },
    }
    applied = op.cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=gitops",
        "--force-conflicts",
        "-o",
        "json",
        "-f",
        "-",
        input=yaml.safe_dump(sidecar),
    )
    containers = json.loads(applied.stdout)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "tap"]  # the apply took
    op.wait_for("the template back as rendered", lambda: _template(op, "drift-web", app_ns) == rendered, timeout=30)
    assert _foreign_template_fields(op, "drift-web", app_ns) == {}
    op.wait_for("App Ready", lambda: op.condition("drift", app_ns).get("status") == "True")
