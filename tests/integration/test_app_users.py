"""S7 on the real control plane: whatever the image's USER, pods are admitted by PodSecurity `restricted` and run.

Root (`root`, empty, unset, `0`, `0:0`) and non-numeric (`nginx`) users run as the cluster's default uid (2000)
under the default run-as-non-root policy, and the App says so (status.runAsUser, status.runAsNote); numeric
users run as themselves; a non-root image listening below 1024 gets the safe unprivileged-port sysctl.

The `refuse` policy is a cluster-admin setting (WHARF_ROOT_USER_POLICY=refuse). It is proven through the
Reconciler (the same parse -> resolve -> render -> report path the operator runs) with a fake Kubernetes API and
resolver, and on the real cluster by a second `wharf run` with that policy, watching one `wharf-solo-*`
namespace: the session operator leaves those alone (harness SOLO_NAMESPACES), so the two never fight over an App.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from harness.apps import app_resource
from harness.fake_apiserver import FakeApiserver, reconciler_on
from harness.fixtures_operator import Operator, SoloOperator
from harness.images import STANDARD_IMAGES, push_image
from harness.registry import RegistryServer
from wharf.api.image import ExposedPort, ImageFacts
from wharf.config import RootUserPolicy, Settings
from wharf.registry import Credentials

cluster_marks = [pytest.mark.cluster, pytest.mark.registry]
DEFAULT_UID = 2000  # Settings.default_uid: the session operator keeps the default


@dataclass(frozen=True)
class UserCase:
    image: str  # a STANDARD_IMAGES name
    uid: int
    gid: int | None
    note: str  # must appear in status.runAsNote


USERS: dict[str, UserCase] = {
    "root": UserCase("user-root", DEFAULT_UID, DEFAULT_UID, f"image USER is root; running as uid {DEFAULT_UID}"),
    "empty": UserCase("user-empty", DEFAULT_UID, DEFAULT_UID, f"image USER is root; running as uid {DEFAULT_UID}"),
    "unset": UserCase("user-unset", DEFAULT_UID, DEFAULT_UID, f"image USER is root; running as uid {DEFAULT_UID}"),
    "zero": UserCase("user-zero", DEFAULT_UID, DEFAULT_UID, f"image USER is root; running as uid {DEFAULT_UID}"),
    "zero-group": UserCase(
        "user-zero-group", DEFAULT_UID, DEFAULT_UID, f"image USER is root; running as uid {DEFAULT_UID}"
    ),
    "named": UserCase(
        "user-named", DEFAULT_UID, DEFAULT_UID, f"image USER is non-numeric (nginx); running as uid {DEFAULT_UID}"
    ),
    "numeric": UserCase("user-numeric", 1001, None, "image USER 1001"),
    "numeric-group": UserCase("user-numeric-group", 1001, 1001, "image USER 1001:1001"),
}


def _ready(op: Operator, name: str, namespace: str) -> bool:
    return bool(op.condition(name, namespace).get("status") == "True")


def _pods(op: Operator, namespace: str, app: str) -> list[dict[str, Any]]:
    out = op.cluster.kubectl("get", "pods", "-n", namespace, "-l", f"wharf.dev/app={app}", "-o", "json")
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return items


def _no_admission_failures(op: Operator, namespace: str) -> None:
    out = op.cluster.kubectl("get", "events", "-n", namespace, "--field-selector", "reason=FailedCreate", "-o", "json")
    failures = [e["message"] for e in json.loads(out.stdout)["items"]]
    assert failures == [], failures


@pytest.fixture(scope="module")
def users_ns(wharf_operator: Operator, registry_plain: RegistryServer) -> Iterator[str]:
    """One restricted namespace with every user case and the low-port image deployed at once (they start in
    parallel; each test then checks its own)."""
    op = wharf_operator
    namespace = op.cluster.create_namespace(f"users-{uuid.uuid4().hex[:8]}")
    try:
        for case, user in USERS.items():
            push_image(registry_plain, f"users/{user.image}", "v1", STANDARD_IMAGES[user.image])
            op.apply(app_resource(case, namespace, f"{registry_plain.host}/users/{user.image}:v1", memory="64M"))
        push_image(registry_plain, "users/low-port-nonroot", "v1", STANDARD_IMAGES["low-port-nonroot"])
        op.apply(app_resource("low-port", namespace, f"{registry_plain.host}/users/low-port-nonroot:v1", memory="64M"))
        yield namespace
    finally:
        op.cluster.delete_namespace(namespace)


@pytest.mark.parametrize("case", list(USERS), ids=list(USERS))
@pytest.mark.cluster
@pytest.mark.registry
def test_every_user_runs_admitted_by_restricted(wharf_operator: Operator, users_ns: str, case: str) -> None:
    op, user = wharf_operator, USERS[case]
    op.wait_for(f"{case} Ready", lambda: _ready(op, case, users_ns), timeout=90)

    deployment = op.get("deployment", f"{case}-web", users_ns)
    assert deployment is not None
    pod_spec = deployment["spec"]["template"]["spec"]
    context = pod_spec["securityContext"]
    assert context["runAsNonRoot"] is True  # S7
    assert context["runAsUser"] == user.uid
    assert context.get("runAsGroup") == user.gid
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod_spec["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert "sysctls" not in context  # port 8080 needs none

    status = (op.get("app", case, users_ns) or {})["status"]
    assert status["runAsUser"] == user.uid
    assert user.note in status["runAsNote"], status.get("runAsNote")

    # Admitted by the namespace's `restricted` enforcement, scheduled and running.
    pods = _pods(op, users_ns, case)
    assert pods, "no pods: PodSecurity admission may have refused them"
    assert all(p["status"]["phase"] == "Running" and p["spec"]["nodeName"] for p in pods)
    assert all(p["spec"]["securityContext"]["runAsUser"] == user.uid for p in pods)
    _no_admission_failures(op, users_ns)


@pytest.mark.cluster
@pytest.mark.registry
def test_low_port_gets_the_unprivileged_port_sysctl_and_is_admitted(wharf_operator: Operator, users_ns: str) -> None:
    op = wharf_operator
    op.wait_for("low-port Ready", lambda: _ready(op, "low-port", users_ns), timeout=90)
    deployment = op.get("deployment", "low-port-web", users_ns)
    assert deployment is not None
    context = deployment["spec"]["template"]["spec"]["securityContext"]
    assert context["runAsUser"] == 1001  # S7: non-root, yet it listens on 80
    assert context["sysctls"] == [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"}]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}  # no NET_BIND_SERVICE needed
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PORT"] == "80"  # S6
    status = (op.get("app", "low-port", users_ns) or {})["status"]
    assert status["port"] == 80
    pods = _pods(op, users_ns, "low-port")
    assert pods
    assert all(p["status"]["phase"] == "Running" for p in pods)
    assert all(p["spec"]["securityContext"]["sysctls"] == context["sysctls"] for p in pods)
    _no_admission_failures(op, users_ns)


@pytest.mark.cluster
@pytest.mark.registry
def test_the_namespace_really_enforces_restricted(wharf_operator: Operator, users_ns: str) -> None:
    # Admission above means something only if `restricted` refuses what wharf avoids: a root pod, an unsafe sysctl.
    op = wharf_operator
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "rooty", "namespace": users_ns},
        "spec": {"containers": [{"name": "c", "image": "example.com/x:1"}], "securityContext": {"runAsUser": 0}},
    }
    refused = op.cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr
    assert '"restricted:' in refused.stderr


# -- the refuse policy -------------------------------------------------------------------------------------
class FakeResolver:
    def __init__(self, user: str) -> None:
        self.user = user

    async def resolve(
        self, reference: str, credentials: Credentials | None = None, *, fresh: bool = False
    ) -> ImageFacts:
        return ImageFacts(
            reference=reference,
            digest="sha256:" + "cd" * 32,
            user=self.user,
            cmd=("/app/server",),
            exposed_ports=(ExposedPort(port=8080, protocol="tcp"),),
        )


@dataclass
class Reconciled:
    """What one reconcile against the in-memory apiserver wrote (harness.fake_apiserver)."""

    app: dict[str, Any]
    applied: list[dict[str, Any]]
    events: list[tuple[str, str, str]]


def _reconcile(user: str, policy: RootUserPolicy) -> Reconciled:
    fake = FakeApiserver()
    path = "/apis/wharf.dev/v1alpha1/namespaces/space/apps/shop"
    fake.put(path, app_resource("shop", "space", "registry.example.com/team/shop:1"))
    reconciler = reconciler_on(fake, FakeResolver(user), Settings(root_user_policy=policy))
    asyncio.run(reconciler.reconcile(("space", "shop")))
    writes = fake.writes()
    return Reconciled(
        app=fake.objects[path],
        applied=[r.body for r in writes if r.content_type.startswith("application/apply-patch")],
        events=[(r.body["type"], r.body["reason"], r.body["message"]) for r in writes if r.path.endswith("/events")],
    )


def _conditions(kube: Reconciled) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in kube.app["status"]["conditions"]}


@pytest.mark.parametrize("user", ["root", "", "0", "0:0", "nginx"])
def test_refuse_policy_deploys_nothing_and_says_why(user: str) -> None:
    # S7: the cluster admin's refuse policy; the App is Stalled until its image changes.
    kube = _reconcile(user, RootUserPolicy.REFUSE)
    assert kube.applied == []  # nothing deployed
    conditions = _conditions(kube)
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("False", "RootUserRefused")
    assert "refuses images that do not run as a numeric non-root user" in conditions["Ready"]["message"]
    assert "USER 1000" in conditions["Ready"]["message"]  # says what to change
    assert (conditions["Stalled"]["status"], conditions["Stalled"]["reason"]) == ("True", "RootUserRefused")
    assert ("Warning", "RootUserRefused") in {(t, r) for t, r, _ in kube.events}


@pytest.mark.parametrize("user", ["1001", "1001:1001"])
def test_refuse_policy_runs_numeric_non_root_users(user: str) -> None:
    kube = _reconcile(user, RootUserPolicy.REFUSE)
    deployments = [o for o in kube.applied if o["kind"] == "Deployment"]
    assert len(deployments) == 1
    assert deployments[0]["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 1001
    assert kube.app["status"]["runAsUser"] == 1001
    assert _conditions(kube)["Stalled"]["status"] == "False"


def test_default_policy_runs_root_as_the_default_uid_through_the_reconciler() -> None:
    kube = _reconcile("root", RootUserPolicy.RUN_AS_NON_ROOT)
    deployment = next(o for o in kube.applied if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == DEFAULT_UID
    assert kube.app["status"]["runAsUser"] == DEFAULT_UID
    assert "running as uid 2000 by cluster policy" in kube.app["status"]["runAsNote"]


# -- the refuse policy on the real cluster, when the session operator can make room for it ------------------
@pytest.fixture
def refusing_operator(solo_operator: SoloOperator) -> tuple[Operator, str]:
    """A second `wharf run`, WHARF_ROOT_USER_POLICY=refuse, watching one `wharf-solo-*` namespace only."""
    return solo_operator({"WHARF_ROOT_USER_POLICY": "refuse"})


@pytest.mark.cluster
@pytest.mark.registry
def test_refuse_policy_on_the_real_cluster(
    refusing_operator: tuple[Operator, str], registry_plain: RegistryServer
) -> None:
    solo, namespace = refusing_operator
    push_image(registry_plain, "users/user-root", "v1", STANDARD_IMAGES["user-root"])
    push_image(registry_plain, "users/user-numeric", "v1", STANDARD_IMAGES["user-numeric"])
    solo.apply(app_resource("rooted", namespace, f"{registry_plain.host}/users/user-root:v1", memory="64M"))
    solo.apply(app_resource("numbered", namespace, f"{registry_plain.host}/users/user-numeric:v1", memory="64M"))

    ready = solo.wait_for(
        "RootUserRefused",
        lambda: (c := solo.condition("rooted", namespace)).get("reason") == "RootUserRefused" and c,
        timeout=45,
    )
    assert ready["status"] == "False"
    assert "USER 1000" in ready["message"]
    assert solo.condition("rooted", namespace, "Stalled").get("status") == "True"
    assert solo.get("deployment", "rooted-web", namespace) is None  # nothing deployed

    solo.wait_for("numbered Ready", lambda: _ready(solo, "numbered", namespace), timeout=90)
    assert (solo.get("app", "numbered", namespace) or {})["status"]["runAsUser"] == 1001
    assert solo.get("deployment", "rooted-web", namespace) is None
