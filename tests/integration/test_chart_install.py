"""The Helm chart and the operator image on the real control plane.

- The image: `scripts/build-image.sh` builds operator/Dockerfile (buildah on a base made from Debian packages, no
  Docker engine) and pushes it to the real test registry; its digest is what the chart is installed with.
- `helm package` of the chart, then `helm install` of that .tgz: the App CRD comes from the package (the CRD is
  deleted first if an earlier test module applied it, so its presence afterwards proves the package put it there),
  and the Deployment's pod runs exactly the built digest (the pull agent resolves it from the registry).
- The image's own filesystem run for real (harness.image_run: unpacked by umoci, started by runc) as the chart runs
  it: uid 65532, read-only root, no capabilities, no POD_ID, only the chart ServiceAccount's token mounted where the
  kubelet puts it. It reconciles an App to Ready and serves /healthz and /metrics.
- The chart's RBAC, rule by rule: the operator as a local process (`wharf run`) authenticated as the chart's
  ServiceAccount (a TokenRequest token in a kubeconfig of its own). That proves the chart's ClusterRoles are
  sufficient (an App becomes Ready, status and Events written) and, with one rule removed at a time, that each of
  those rules is needed (403 Forbidden, the App does not get there). Its /metrics are scraped before and after a
  reconcile.

This file never requests the session `wharf_operator` fixture: only this file's operators reconcile here, one at
a time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
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

from harness import image_run
from harness.apps import app_resource
from harness.fixtures_cluster import Cluster
from harness.fixtures_operator import ADMISSION_POLICY, VERSION, Operator, _stop, launch, push_operator_image
from harness.images import STANDARD_IMAGES, push_image
from harness.polling import poll
from harness.ports import free_port
from harness.registry import RegistryServer

pytestmark = [pytest.mark.cluster, pytest.mark.registry]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "wharf"
RELEASE = "wharf"  # contains the chart name: every object is named "wharf" (+ "-cluster", "-metrics")
CLUSTER_ROLE = RELEASE  # the namespaced rules, bound cluster-wide (watchNamespaces unset)


@dataclass(frozen=True)
class OperatorImage:
    repository: str  # HOST/wharf in the plain test registry
    digest: str

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.digest}"


@dataclass
class Release:
    cluster: Cluster
    namespace: str
    helm: Path
    helm_env: dict[str, str]
    package: Path
    image: OperatorImage
    installed_at: float

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
def operator_image(registry_plain: RegistryServer) -> OperatorImage:
    """operator/Dockerfile built by scripts/build-image.sh and pushed to the plain test registry (cached by its
    inputs under ~/.cache/wharf: a cold build takes minutes, an unchanged tree only the push)."""
    return OperatorImage(f"{registry_plain.host}/wharf", push_operator_image(registry_plain))


@pytest.fixture(scope="module")
def release(
    cluster: Cluster,
    registry_plain: RegistryServer,
    operator_image: OperatorImage,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Release]:
    home = tmp_path_factory.mktemp("helm-home")
    helm_env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    helm = _helm_binary(cluster)
    packaged = subprocess.run(
        [str(helm), "package", str(CHART), "--destination", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=helm_env,
    )
    assert packaged.returncode == 0, packaged.stderr
    (package,) = home.glob("wharf-*.tgz")
    # Helm installs a chart's CRDs only when they are absent: drop one an earlier module applied from crds/, so
    # that the CRD found afterwards is the package's (Apps of earlier modules go with it; their tests are over).
    cluster.kubectl("delete", "crd", "apps.wharf.dev", "--ignore-not-found", "--timeout=60s")
    namespace = cluster.create_namespace(f"wharf-chart-{uuid.uuid4().hex[:6]}")
    cluster.trust_registry(registry_plain)  # the operator pod's image comes from there
    rel = Release(cluster, namespace, helm, helm_env, package, operator_image, time.time())
    # watchNamespaces unset: cluster-wide. The image by digest, as a real cluster should pin it.
    out = rel.run(
        "install",
        RELEASE,
        str(package),
        "--set-json",
        f"image.repository={json.dumps(operator_image.repository)}",
        "--set-json",
        f"image.digest={json.dumps(operator_image.digest)}",
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

    # The App CRD came from the packaged chart (none was there before the install), as crds/app.yaml has it.
    crd = json.loads(kubectl("get", "crd", "apps.wharf.dev", "-o", "json").stdout)
    assert crd["spec"]["group"] == "wharf.dev"
    created = dt.datetime.fromisoformat(crd["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    assert created.timestamp() >= int(release.installed_at) - 1, "the App CRD predates the install"
    source = yaml.safe_load((ROOT / "crds" / "app.yaml").read_text())
    assert [v["name"] for v in crd["spec"]["versions"]] == [v["name"] for v in source["spec"]["versions"]]
    assert crd["spec"]["versions"][0]["schema"] == source["spec"]["versions"][0]["schema"]
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
    image = release.image
    assert container["image"] == f"{image.repository}:{VERSION}@{image.digest}"
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

    # The operator's pod runs exactly the built image: the node resolved the digest from the registry.
    selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())

    def running_pod() -> dict[str, Any] | None:
        pods = json.loads(kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "json").stdout)["items"]
        return next((p for p in pods if p["status"].get("phase") == "Running"), None)

    pod_running = poll(running_pod, 60, 0.5)
    assert pod_running, kubectl("get", "pods,events", "-n", ns, "-o", "wide").stdout
    (status,) = pod_running["status"]["containerStatuses"]
    assert status["imageID"] == image.reference


def test_image_labels_carry_the_version_and_revision(release: Release) -> None:
    out = subprocess.run(
        ["skopeo", "inspect", "--config", "--tls-verify=false", f"docker://{release.image.reference}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    config = json.loads(out.stdout)
    labels = config["config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    # The last commit that changed what goes into the image (scripts/build-image.sh), "-dirty" with local edits.
    sources = ["operator/Dockerfile", "operator/wharf", "pyproject.toml", "README.md", "requirements/operator.lock"]
    last = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%H", "--", *sources], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", last), last
    assert labels["org.opencontainers.image.revision"] in (last, f"{last}-dirty")
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Entrypoint"] == ["wharf", "run"]


def _service_account_files(release: Release, directory: Path) -> Path:
    """What the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount for the chart's pod."""
    cluster = release.cluster
    token = cluster.kubectl("create", "token", RELEASE, "-n", release.namespace, "--duration=1h").stdout.strip()
    assert token, "TokenRequest returned no token"
    directory.mkdir(mode=0o755)
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_bytes(cluster.control_plane.ca_file.read_bytes())
    (directory / "namespace").write_text(release.namespace)
    for entry in directory.iterdir():
        entry.chmod(0o644)  # readable by uid 65532, as the kubelet's projected volume is
    return directory


def test_the_image_runs_the_operator_as_the_chart_does(
    release: Release,
    sa_operator: SaOperator,
    registry_plain: RegistryServer,
    app_namespace: str,
    tmp_path: Path,
) -> None:
    """The image's own filesystem, run by runc as the chart's pod spec asks (uid 65532, read-only root, no
    capabilities) with no POD_ID, reaches the apiserver with nothing but the chart ServiceAccount's token (in-cluster
    config), reconciles an App to Ready and serves /healthz and /metrics."""
    sa_operator.stop()  # one operator at a time: this one is cluster-wide too
    cluster = release.cluster
    bundle = image_run.unpack(f"docker://{release.image.reference}", tmp_path, tls_verify=False)
    passwd = (bundle / "rootfs" / "etc" / "passwd").read_text()
    assert re.search(r"^nonroot:x:65532:65532:", passwd, re.M), passwd
    api_port = cluster.control_plane.server.rsplit(":", 1)[1]
    metrics_port, health_port = free_port(), free_port()
    # The chart's arguments and environment (deploy/helm/wharf/templates/deployment.yaml), POD_ID left out.
    env = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": api_port,
        "WHARF_NAMESPACES": "",
        "WHARF_REGISTRY_INSECURE": registry_plain.host,
        "WHARF_REGISTRY_ALLOW": "127.0.0.0/8",  # the test registry lives on loopback
        "WHARF_METRICS_PORT": str(metrics_port),
        "WHARF_LOG_LEVEL": "DEBUG",
    }
    args = ["wharf", "run", "--all-namespaces", "--standalone", f"--liveness=http://0.0.0.0:{health_port}/healthz"]
    token_dir = _service_account_files(release, tmp_path / "serviceaccount")
    container = image_run.run(
        bundle,
        tmp_path / "operator.log",
        args=args,
        env=env,
        mounts=[image_run.Mount(token_dir, "/var/run/secrets/kubernetes.io/serviceaccount")],
    )
    op = Operator(
        cluster,
        container.process,
        container.log_file,
        f"http://127.0.0.1:{metrics_port}/metrics",
        f"http://127.0.0.1:{health_port}/healthz",
    )
    try:

        def healthy() -> bool:
            if container.process.poll() is not None:
                raise AssertionError(f"the container exited ({container.process.returncode}):\n{op.log_tail()}")
            try:
                return httpx.get(op.health_url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        op.wait_for("the image's /healthz", healthy, timeout=90)
        # The process is who and where the chart says.
        status = container.proc("status")
        assert re.search(r"^Uid:\s+65532\s+65532\s+65532\s+65532$", status, re.M), status
        assert re.search(r"^Gid:\s+65532\s", status, re.M), status
        assert re.search(r"^CapEff:\s+0+$", status, re.M), status
        root = next(line for line in container.proc("mountinfo").splitlines() if line.split()[4] == "/")
        assert "ro" in root.split()[5].split(","), root
        environ = container.proc("environ").split("\0")
        assert not any(e.startswith("POD_ID=") for e in environ)
        assert not any(e.startswith("KUBECONFIG=") for e in environ)

        digest = push_image(registry_plain, "chart/image-run", "v1", STANDARD_IMAGES["single-port"])
        image = f"{registry_plain.host}/chart/image-run:v1"
        op.apply(app_resource("web", app_namespace, image, buildpacks=["go_buildpack"]))
        op.wait_for("App Ready", lambda: _ready(op, "web", app_namespace), timeout=90)
        deployment = op.get("deployment", "web-web", app_namespace)
        assert deployment is not None
        pod_image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert pod_image == f"{registry_plain.host}/chart/image-run@{digest}"

        def counted() -> list[tuple[str, dict[str, str], float]] | None:
            samples = _samples(op)
            return samples if _metric(samples, "wharf_apps", ready="True") >= 1 else None

        samples = op.wait_for("wharf_apps{ready=True} >= 1 on the image's /metrics", counted, timeout=30)
        assert _metric(samples, "wharf_reconciles_total", result="ok") >= 1
        log = op.log_file.read_text(errors="replace")
        assert "getpwuid" not in log
        assert 'is forbidden: User "' not in log, op.log_tail()
    finally:
        container.stop()
    assert container.process.returncode is not None


def test_app_ready_with_the_chart_rbac_and_metrics(
    sa_operator: SaOperator, registry_plain: RegistryServer, app_namespace: str
) -> None:
    op = sa_operator.start()  # a fresh process: its counters start at zero
    before = _samples(op)
    digest = push_image(registry_plain, "chart/single", "v1", STANDARD_IMAGES["single-port"])
    op.apply(app_resource("web", app_namespace, f"{registry_plain.host}/chart/single:v1", buildpacks=["go_buildpack"]))
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
        op.apply(
            app_resource("web", app_namespace, f"{registry_plain.host}/chart/single:v1", buildpacks=["go_buildpack"])
        )
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


# Last in this file: it uninstalls the release.
def test_upgrade_and_uninstall_leave_running_apps_alone(
    release: Release, sa_operator: SaOperator, registry_plain: RegistryServer, app_namespace: str
) -> None:
    kubectl = release.cluster.kubectl
    op = sa_operator.start()
    push_image(registry_plain, "chart/single", "v1", STANDARD_IMAGES["single-port"])
    op.apply(app_resource("web", app_namespace, f"{registry_plain.host}/chart/single:v1", buildpacks=["go_buildpack"]))
    op.wait_for("App Ready", lambda: _ready(op, "web", app_namespace), timeout=90)
    sa_operator.stop()

    def workload() -> tuple[str, str, list[str]]:
        app, deployment = op.get("app", "web", app_namespace), op.get("deployment", "web-web", app_namespace)
        assert app is not None, "the App is gone"
        assert deployment is not None, "the App's Deployment is gone"
        pods = json.loads(kubectl("get", "pods", "-n", app_namespace, "-l", "wharf.dev/app=web", "-o", "json").stdout)
        return app["metadata"]["uid"], deployment["metadata"]["uid"], [p["status"]["phase"] for p in pods["items"]]

    before = workload()
    assert before[2], "no pods"
    assert set(before[2]) == {"Running"}

    # Upgrade from the same package with a changed value: a new revision, the Apps untouched.
    upgraded = release.run(
        "upgrade", RELEASE, str(release.package), "--reuse-values", "--set-json", 'operator.logLevel="DEBUG"'
    )
    assert upgraded.returncode == 0, upgraded.stderr
    listed = json.loads(release.run("list", "-o", "json").stdout)
    assert [(r["name"], r["revision"], r["status"]) for r in listed] == [(RELEASE, "2", "deployed")]
    env = json.loads(kubectl("get", "deployment", RELEASE, "-n", release.namespace, "-o", "json").stdout)
    container = env["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "WHARF_LOG_LEVEL", "value": "DEBUG"} in container["env"]
    assert workload() == before

    # Uninstall: the operator and its RBAC go; the CRD, the Apps and everything they run stay.
    uninstalled = release.run("uninstall", RELEASE, "--wait", "--timeout=60s")
    assert uninstalled.returncode == 0, uninstalled.stderr
    gone = kubectl("get", "deployment", RELEASE, "-n", release.namespace, check=False)
    assert gone.returncode != 0
    assert "NotFound" in gone.stderr
    assert kubectl("get", "clusterrole", CLUSTER_ROLE, check=False).returncode != 0
    kubectl("get", "crd", "apps.wharf.dev")
    assert workload() == before
    assert _ready(op, "web", app_namespace)  # the last status the operator wrote stays
