"""S18 on the real control plane: an App can make wharf read only the Secrets its author could read.

The chart's ValidatingAdmissionPolicy (deploy/helm/wharf/admission/app-secret-access.yaml, installed by the harness
as by the chart) asks the authorizer, for whoever creates or changes an App, whether they may `get` each Secret the
App names: the registry password (dockerPasswordSecretRef), the image pull secrets, each bound service. Real users:
a developer with a client certificate and RBAC of their own, and a GitOps controller's ServiceAccount acting with a
token, as Argo CD or Flux would.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.apps import app_resource
from harness.fixtures_operator import Operator
from harness.images import STANDARD_IMAGES, push_image
from harness.registry import RegistryServer

pytestmark = [pytest.mark.cluster, pytest.mark.registry]

APP_VERBS = ["get", "list", "watch", "create", "update", "patch"]


def _app(name: str, namespace: str, image: str, manifest: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return app_resource(name, namespace, image, spec=spec, **(manifest or {}))


def _grant(op: Operator, namespace: str, name: str, rules: list[dict[str, Any]], subject: dict[str, str]) -> None:
    """A Role with `rules` bound to `subject` in `namespace`."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name}, "rules": rules}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [subject],
    }
    op.cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all([role, binding]))


def _apply_as(op: Operator, kubeconfig: Path, body: dict[str, Any]) -> tuple[bool, str]:
    result = op.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(body), check=False, kubeconfig=kubeconfig)
    return result.returncode == 0, result.stderr


def _refused(op: Operator, kubeconfig: Path, body: dict[str, Any], *says: str) -> str:
    """Apply `body` as the user of `kubeconfig`: it must be refused, the message saying each of `says`."""
    ok, stderr = _apply_as(op, kubeconfig, body)
    assert not ok, f"accepted: {body}"
    for text in says:
        assert text in stderr, f"{text!r} not in:\n{stderr}"
    return stderr


def _secrets(op: Operator, namespace: str, registry: RegistryServer) -> None:
    """A database password (the kind of Secret an attacker would want), a registry password, a pull secret."""
    auth = {"auths": {registry.host: {"username": "u", "password": "p"}}}
    for secret in (
        {"metadata": {"name": "db-root"}, "stringData": {"password": "root-password"}},
        {"metadata": {"name": "regcred"}, "stringData": {"password": "registry-password"}},
        {
            "metadata": {"name": "pull"},
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": json.dumps(auth)},
        },
    ):
        body = {"apiVersion": "v1", "kind": "Secret", **secret}
        body["metadata"] = {**secret["metadata"], "namespace": namespace}
        op.apply(body)


@pytest.fixture
def image(registry_plain: RegistryServer) -> str:
    push_image(registry_plain, "s18/app", "v1", STANDARD_IMAGES["single-port"])
    return f"{registry_plain.host}/s18/app:v1"


@pytest.fixture
def developer(wharf_operator: Operator, app_ns: str, registry_plain: RegistryServer) -> Path:
    """A user who may create and change Apps in `app_ns` and may not read its Secrets."""
    op = wharf_operator
    _secrets(op, app_ns, registry_plain)
    user = f"dev-{uuid.uuid4().hex[:6]}"
    _grant(
        op,
        app_ns,
        "app-author",
        [{"apiGroups": ["wharf.dev"], "resources": ["apps"], "verbs": APP_VERBS}],
        {
            "kind": "User",
            "name": user,
            "apiGroup": "rbac.authorization.k8s.io",
        },
    )
    return op.cluster.control_plane.client_kubeconfig(user)


def test_an_app_author_cannot_name_a_secret_they_may_not_read(
    wharf_operator: Operator, app_ns: str, developer: Path, image: str
) -> None:
    op = wharf_operator
    refusals = {
        "spec.manifest.services": _app("binder", app_ns, image, manifest={"services": ["db-root"]}),
        "spec.dockerPasswordSecretRef.name": _app(
            "pusher", app_ns, image, dockerUsername="u", dockerPasswordSecretRef={"name": "regcred"}
        ),
        "spec.imagePullSecrets": _app("puller", app_ns, image, imagePullSecrets=[{"name": "pull"}]),
    }
    named = {"spec.manifest.services": "db-root", "spec.dockerPasswordSecretRef.name": "regcred"}
    for field, body in refusals.items():
        secret = named.get(field, "pull")
        _refused(op, developer, body, field, f"may not get the Secret {secret} in namespace {app_ns}")
        assert op.get("app", body["metadata"]["name"], app_ns) is None
    # The object form of a service entry is checked as well as the string form.
    as_object = {"services": [{"name": "db-root", "binding_name": "d"}]}
    _refused(op, developer, _app("binder", app_ns, image, manifest=as_object), "spec.manifest.services", "db-root")

    # An App naming no Secret is the developer's to create, and runs.
    ok, stderr = _apply_as(op, developer, _app("plain", app_ns, image))
    assert ok, stderr
    op.wait_for("the plain App Ready", lambda: op.condition("plain", app_ns).get("status") == "True", timeout=90)

    # Once allowed to read db-root (and only it), the developer may bind it, and still not the others.
    subject = {"kind": "User", "name": _user_of(developer), "apiGroup": "rbac.authorization.k8s.io"}
    rule = {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db-root"], "verbs": ["get"]}
    _grant(op, app_ns, "read-db-root", [rule], subject)
    ok, stderr = _apply_as(op, developer, refusals["spec.manifest.services"])
    assert ok, stderr
    two = _app("binder", app_ns, image, manifest={"services": ["db-root", "regcred"]})
    stderr = _refused(op, developer, two, "spec.manifest.services[1]: ", "may not get the Secret regcred in namespace")
    assert "db-root" not in stderr.split("denied request:")[-1], stderr  # only the Secret refused is named


def test_changing_an_app_that_names_a_secret_needs_get_on_it(
    wharf_operator: Operator, app_ns: str, developer: Path, image: str, registry_plain: RegistryServer
) -> None:
    # The admin made an App with the registry password; the developer may edit Apps but not read that password:
    # pointing the App at another registry would send the password there, so any change is refused.
    op = wharf_operator
    body = _app("private", app_ns, image, dockerUsername="u", dockerPasswordSecretRef={"name": "regcred"})
    op.apply(body)
    moved = {**body, "spec": {**body["spec"], "dockerImage": "attacker.example.com/x/y:1"}}
    _refused(op, developer, moved, "spec.dockerPasswordSecretRef.name: ", "may not get the Secret regcred")
    assert (op.get("app", "private", app_ns) or {})["spec"]["dockerImage"] == image
    # kubectl scale touches the scale subresource only, which names no Secret: still the developer's to do.
    scale_rule = {"apiGroups": ["wharf.dev"], "resources": ["apps/scale"], "verbs": ["get", "update", "patch"]}
    subject = {"kind": "User", "name": _user_of(developer), "apiGroup": "rbac.authorization.k8s.io"}
    _grant(op, app_ns, "app-scaler", [scale_rule], subject)
    scaled = op.cluster.kubectl("scale", "app/private", "--replicas=2", "-n", app_ns, check=False, kubeconfig=developer)
    assert scaled.returncode == 0, scaled.stderr


def test_a_gitops_controller_with_get_on_the_secrets_applies_apps(
    wharf_operator: Operator, app_ns: str, image: str, registry_plain: RegistryServer
) -> None:
    # Argo CD and Flux apply Apps with their own ServiceAccount: given `get` on the Secrets, they work; without, the
    # policy refuses them as it refuses a person.
    op = wharf_operator
    _secrets(op, app_ns, registry_plain)
    app_rule = {"apiGroups": ["wharf.dev"], "resources": ["apps"], "verbs": APP_VERBS}
    secret_rule = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    kubeconfigs = {}
    for account, rules in (("gitops", [app_rule, secret_rule]), ("gitops-no-secrets", [app_rule])):
        op.cluster.kubectl("create", "serviceaccount", account, "-n", app_ns)
        _grant(op, app_ns, account, rules, {"kind": "ServiceAccount", "name": account, "namespace": app_ns})
        kubeconfigs[account] = op.cluster.control_plane.token_kubeconfig(app_ns, account)
    body = _app(
        "synced",
        app_ns,
        image,
        imagePullSecrets=[{"name": "pull"}],
        manifest={"services": ["db-root"], "memory": "128M"},
    )
    _refused(
        op, kubeconfigs["gitops-no-secrets"], body, f"system:serviceaccount:{app_ns}:gitops-no-secrets may not get"
    )
    ok, stderr = _apply_as(op, kubeconfigs["gitops"], body)
    assert ok, stderr
    op.wait_for("the synced App Ready", lambda: op.condition("synced", app_ns).get("status") == "True", timeout=90)


def _user_of(kubeconfig: Path) -> str:
    config = json.loads(kubeconfig.read_text())
    return str(config["users"][0]["name"])
