"""The Helm chart on the real control plane: `helm install`, then the operator run with exactly the chart's RBAC.

The chart's own operator pod cannot run here (kwok nodes have no operator image), so the operator runs as a local
process (`wharf run`) authenticated as the chart's ServiceAccount: a TokenRequest token in a kubeconfig of its
own. That proves the chart's ClusterRoles are sufficient (an App becomes Ready, status and Events written) and,
with one rule removed at a time, that each of those rules is needed (403 Forbidden, the App does not get there).
Its /metrics are scraped before and after a reconcile.

This file never requests the session `wharf_operator` fixture: only the ServiceAccount's operator reconciles here.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from harness.fixtures_cluster import Cluster
from harness.fixtures_operator import ADMISSION_POLICY, Operator, _stop, launch
from harness.images import STANDARD_IMAGES, push_image
from harness.registry import RegistryServer

pytestmark = [pytest.mark.cluster, pytest.mark.registry]

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "wharf"
RELEASE = "wharf"  # contains the chart name: every object is named "wharf" (+ "-cluster", "-metrics")
CLUSTER_ROLE = RELEASE  # the namespaced rules, bound cluster-wide (watchNamespaces unset)


@dataclass
class Release:
    cluster: Cluster
    namespace: str
    helm: Path
    helm_env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.helm), f"--kubeconfig={self.cluster.kubeconfig}", "-n", self.namespace, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=self.helm_env,
        )


@dataclass
class SaOperator:
    """The operator as a local process with the chart ServiceAccount's identity; restart() for a fresh one."""

    cluster: Cluster
    kubeconfig: Path
    env: dict[str, str]
    workdir: Path
    current: Operator | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    def start(self) -> Operator:
        self.stop()
        self.starts += 1
        log_file = self.workdir / f"operator-{self.starts}.log"
        self.current = launch(self.cluster, self.env, log_file, kubeconfig=self.kubeconfig)
        return self.current

    def running(self) -> Operator:
        if self.current is None or self.current.process.poll() is not None:
            return self.start()
        return self.current

    def stop(self) -> None:
        if self.current is not None:
            _stop(self.current)
            self.current = None


def _helm_binary(cluster: Cluster) -> Path:
    # locate_binaries(): $WHARF_BIN_DIR, else build-binaries.sh's last line - the same directory as the cluster's.
    helm = cluster.bin_dir / "helm"
    assert os.access(helm, os.X_OK), f"no helm binary at {helm}"
    return helm


@pytest.fixture(scope="module")
def release(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    home = tmp_path_factory.mktemp("helm-home")
    helm_env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    namespace = cluster.create_namespace(f"wharf-chart-{uuid.uuid4().hex[:6]}")
    rel = Release(cluster, namespace, _helm_binary(cluster), helm_env)
    # watchNamespaces unset: cluster-wide. The image is never pulled successfully (kwok nodes): that is fine.
    out = rel.run(
        "install",
        RELEASE,
        str(CHART),
        "--set-json",
        'image.repository="example.invalid/wharf"',
        "--set-json",
        'image.tag="test"',
        "--timeout=60s",
        # The harness installed the same admission policy (S18) for the session: the release takes it over.
        "--take-ownership",
    )
    assert out.returncode == 0, f"helm install failed:\n{out.stdout}\n{out.stderr}"
    try:
        yield rel
    finally:
        rel.run("uninstall", RELEASE, "--wait=false", "--timeout=60s")
        cluster.delete_namespace(namespace)
        cluster.kubectl("apply", "-f", str(ADMISSION_POLICY))  # the session's again, for the tests after this one


def _kubeconfig_for_token(cluster: Cluster, token: str, path: Path) -> Path:
    admin = yaml.safe_load(cluster.kubeconfig.read_text())  # JSON is YAML
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    server_entry = next(c for c in admin["clusters"] if c["name"] == context["cluster"])["cluster"]
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "wharf-test", "cluster": server_entry}],  # server + certificate-authority(-data)
        "users": [{"name": "wharf-sa", "user": {"token": token}}],
        "contexts": [{"name": "wharf-sa", "context": {"cluster": "wharf-test", "user": "wharf-sa"}}],
        "current-context": "wharf-sa",
    }
    path.write_text(json.dumps(kubeconfig, indent=2))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def sa_operator(
    release: Release, registry_plain: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SaOperator]:
    cluster = release.cluster
    cluster.trust_registry(registry_plain)
    token = cluster.kubectl("create", "token", RELEASE, "-n", release.namespace, "--duration=1h").stdout.strip()
    assert token, "TokenRequest returned no token"
    workdir = tmp_path_factory.mktemp("sa-operator")
    kubeconfig = _kubeconfig_for_token(cluster, token, workdir / "sa.kubeconfig")
    # The identity really is the ServiceAccount (and not, say, the admin through some leftover setting).
    whoami = cluster.kubectl("auth", "whoami", f"--kubeconfig={kubeconfig}", "-o", "json", check=False)
    if whoami.returncode == 0:
        username = json.loads(whoami.stdout)["status"]["userInfo"]["username"]
        assert username == f"system:serviceaccount:{release.namespace}:{RELEASE}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "KUBERNETES_"))}
    env.update(
        {
            "WHARF_NAMESPACES": "",  # cluster-wide, like the release
            "WHARF_REGISTRY_INSECURE": registry_plain.host,
            "WHARF_REGISTRY_ALLOW": "127.0.0.0/8",  # the test registry lives on loopback
            "WHARF_LOG_LEVEL": "DEBUG",
        }
    )
    handle = SaOperator(cluster, kubeconfig, env, workdir)
    try:
        yield handle
    finally:
        handle.stop()


def _app(name: str, namespace: str, image: str, **manifest: Any) -> dict[str, Any]:
    return {
        "apiVersion": "wharf.dev/v1alpha1",
        "kind": "App",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"dockerImage": image, "manifest": manifest},
    }


def _ready(op: Operator, name: str, ns: str) -> bool:
    return op.condition(name, ns).get("status") == "True"


def _app_events(op: Operator, ns: str, name: str) -> set[str]:
    return {e["reason"] for e in op.app_events(ns, name)}


def _samples(op: Operator) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(op.metrics_url, timeout=5).text
    return [
        (s.name, dict(s.labels), s.value) for family in text_string_to_metric_families(text) for s in family.samples
    ]


def _metric(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there is none)."""
    return sum(v for n, lab, v in samples if n == name and labels.items() <= lab.items())


@pytest.fixture
def app_namespace(release: Release) -> Iterator[str]:
    # A `wharf-solo-*` namespace: the session operator of the other test files leaves it to this file's operator.
    name = release.cluster.create_namespace(f"wharf-solo-chart-{uuid.uuid4().hex[:8]}")
    yield name
    release.cluster.delete_namespace(name)


def test_helm_install_creates_the_operator_objects(release: Release) -> None:
    kubectl = release.cluster.kubectl
    ns = release.namespace
    listed = release.run("list", "-o", "json")
    assert [(r["name"], r["status"]) for r in json.loads(listed.stdout)] == [(RELEASE, "deployed")]

    crd = json.loads(kubectl("get", "crd", "apps.wharf.dev", "-o", "json").stdout)
    assert crd["spec"]["group"] == "wharf.dev"
    kubectl("wait", "--for=condition=Established", "crd/apps.wharf.dev", "--timeout=30s")
    assert json.loads(kubectl("get", "serviceaccount", RELEASE, "-n", ns, "-o", "json").stdout)

    cluster_role = json.loads(kubectl("get", "clusterrole", CLUSTER_ROLE, "-o", "json").stdout)
    resources = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert {"apps", "apps/status", "deployments", "services", "secrets", "events", "pods"} <= resources
    assert json.loads(kubectl("get", "clusterrole", f"{RELEASE}-cluster", "-o", "json").stdout)["rules"]
    for binding in (RELEASE, f"{RELEASE}-cluster"):
        crb = json.loads(kubectl("get", "clusterrolebinding", binding, "-o", "json").stdout)
        assert crb["roleRef"]["name"] == binding
        assert crb["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": ns}]

    deployment = json.loads(kubectl("get", "deployment", RELEASE, "-n", ns, "-o", "json").stdout)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == RELEASE
    container = pod["containers"][0]
    assert container["image"] == "example.invalid/wharf:test"
    assert "--all-namespaces" in container["args"]
    assert "--standalone" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert not env["WHARF_NAMESPACES"]  # "" is stored as no value
    assert env["WHARF_METRICS_PORT"] == "9090"

    # S18: the admission policy and its binding, the release's now.
    for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"):
        policy = json.loads(kubectl("get", kind, "wharf-app-secret-access", "-o", "json").stdout)
        assert policy["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE

    service = json.loads(kubectl("get", "service", f"{RELEASE}-metrics", "-n", ns, "-o", "json").stdout)
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [("metrics", 9090, "metrics")]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_app_ready_with_the_chart_rbac_and_metrics(
    sa_operator: SaOperator, registry_plain: RegistryServer, app_namespace: str
) -> None:
    op = sa_operator.start()  # a fresh process: its counters start at zero
    before = _samples(op)
    digest = push_image(registry_plain, "chart/single", "v1", STANDARD_IMAGES["single-port"])
    op.apply(_app("web", app_namespace, f"{registry_plain.host}/chart/single:v1", buildpacks=["go_buildpack"]))
    op.wait_for("App Ready", lambda: _ready(op, "web", app_namespace), timeout=90)

    deployment = op.get("deployment", "web-web", app_namespace)
    assert deployment is not None
    assert deployment["metadata"]["ownerReferences"][0]["kind"] == "App"
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        == f"{registry_plain.host}/chart/single@{digest}"
    )
    assert op.get("service", "web", app_namespace) is not None
    pods = json.loads(
        op.cluster.kubectl("get", "pods", "-n", app_namespace, "-l", "wharf.dev/app=web", "-o", "json").stdout
    )["items"]
    assert pods
    assert all(p["status"]["phase"] == "Running" for p in pods)
    status = (op.get("app", "web", app_namespace) or {})["status"]
    assert status["image"]["digest"] == digest
    assert status["port"] == 8080
    op.wait_for(
        "the App's Events",
        lambda: {"ImageResolved", "PortChosen", "IgnoredKeys"} <= _app_events(op, app_namespace, "web"),
        timeout=20,
    )
    log = op.log_file.read_text(errors="replace")
    # No RBAC denial (other "forbidden"s, e.g. writes into a namespace other tests are deleting, are not RBAC's).
    assert 'is forbidden: User "' not in log, op.log_tail()

    def counted() -> list[tuple[str, dict[str, str], float]] | None:
        after = _samples(op)
        return after if _metric(after, "wharf_apps", ready="True") >= 1 else None

    after = op.wait_for("wharf_apps{ready=True} >= 1", counted, timeout=20)
    ok_before = _metric(before, "wharf_reconciles_total", result="ok")
    assert _metric(after, "wharf_reconciles_total", result="ok") > ok_before
    assert any(n == "wharf_registry_requests_total" for n, _, _ in after)
    assert _metric(after, "wharf_registry_requests_total") > _metric(before, "wharf_registry_requests_total")
    assert _metric(after, "wharf_registry_requests_total") > 0


# Each rule the operator needs, and how its absence shows on a new App within a bounded time.
def _no_deployment(op: Operator, ns: str) -> None:
    time.sleep(15)
    assert op.get("deployment", "web-web", ns) is None
    assert not _ready(op, "web", ns)


def _no_status(op: Operator, ns: str) -> None:
    time.sleep(15)
    assert not ((op.get("app", "web", ns) or {}).get("status") or {}).get("conditions")


def _no_events(op: Operator, ns: str) -> None:
    # The App still comes up: posting Events is best effort, but none are there.
    op.wait_for("App Ready", lambda: _ready(op, "web", ns), timeout=90)
    assert not _app_events(op, ns, "web")


def _apply_refused(op: Operator, ns: str) -> None:
    # An admission plugin's 403 is the App's to report (ApplyRefused, with the apiserver's words), not a log line.
    op.wait_for(
        "Ready False, ApplyRefused", lambda: op.condition("web", ns).get("reason") == "ApplyRefused", timeout=60
    )
    message = op.condition("web", ns)["message"]
    assert "is forbidden: cannot set blockOwnerDeletion" in message, message
    assert op.get("deployment", "web-web", ns) is None


# (the rule's resource, how its absence shows, what the operator's log then says: RBAC's 403 names the resource;
# None when the check itself reads the 403 from the App's status)
MISSING_RULES: dict[str, tuple[str, Callable[[Operator, str], None], str | None]] = {
    "deployments": ("deployments", _no_deployment, 'resource "deployments"'),
    "apps-status": ("apps/status", _no_status, 'resource "apps/status"'),
    "events": ("events", _no_events, 'resource "events"'),
    # The control plane runs OwnerReferencesPermissionEnforcement, as OpenShift does: wharf's owner references
    # say blockOwnerDeletion, which it allows only to who may update the App's finalizers.
    "apps-finalizers": ("apps/finalizers", _apply_refused, None),
}


@pytest.mark.parametrize("case", list(MISSING_RULES))
def test_each_rule_is_needed(
    case: str, release: Release, sa_operator: SaOperator, registry_plain: RegistryServer, app_namespace: str
) -> None:
    resource, check, in_log = MISSING_RULES[case]
    kubectl = release.cluster.kubectl
    original = json.loads(kubectl("get", "clusterrole", CLUSTER_ROLE, "-o", "json").stdout)
    rules = [r for r in original["rules"] if resource not in r["resources"]]
    assert len(rules) == len(original["rules"]) - 1, f"no rule of its own for {resource}"
    patch = json.dumps({"rules": rules})
    kubectl("patch", "clusterrole", CLUSTER_ROLE, "--type=merge", "-p", patch)
    try:
        op = sa_operator.start()  # restarted without the rule
        push_image(registry_plain, "chart/single", "v1", STANDARD_IMAGES["single-port"])
        op.apply(_app("web", app_namespace, f"{registry_plain.host}/chart/single:v1", buildpacks=["go_buildpack"]))
        check(op, app_namespace)

        def forbidden() -> bool:
            assert in_log is not None
            log = op.log_file.read_text(errors="replace").lower()
            return "forbidden" in log and in_log in log

        if in_log is not None:
            op.wait_for(f"a 403 Forbidden on {resource} in the operator log", forbidden, timeout=30)
    finally:
        kubectl("patch", "clusterrole", CLUSTER_ROLE, "--type=merge", "-p", json.dumps({"rules": original["rules"]}))
        sa_operator.stop()
