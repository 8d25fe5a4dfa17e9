"""The Helm chart (deploy/helm/wharf), rendered by the real helm binary.

helm comes from $WHARF_BIN_DIR, else from tests/cluster/build-binaries.sh (cached after the first build; it
prints its bin directory last). No helm is a failure, not a skip: the chart is untested without it.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from render_support import make_app

from harness.restricted import restricted_violations as pss_restricted_violations
from wharf.api.app import GROUP, PLURAL
from wharf.config import Settings
from wharf.render.names import owner_reference

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "wharf"
CRD_SOURCE = REPO / "crds" / "app.yaml"
NAMESPACE = "wharf-system"
RELEASE = "wharf"  # contains the chart name, so the full name is "wharf"

Manifest = dict[str, Any]


@functools.cache
def helm_binary() -> Path:
    bin_dir = os.environ.get("WHARF_BIN_DIR")
    if not bin_dir:
        built = subprocess.run(
            [str(REPO / "tests" / "cluster" / "build-binaries.sh")],
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        assert built.returncode == 0, f"build-binaries.sh failed:\n{built.stderr[-4000:]}"
        bin_dir = built.stdout.strip().splitlines()[-1]
    helm = Path(bin_dir) / "helm"
    assert os.access(helm, os.X_OK), f"no helm binary at {helm}"
    return helm


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, timeout=120, check=False)


def set_args(values: dict[str, Any]) -> list[str]:
    """`--set-json key=<json>` per value: exact types, no --set string guessing."""
    args: list[str] = []
    for key, value in values.items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    return args


def template(values: dict[str, Any] | None = None, *extra: str) -> list[Manifest]:
    done = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *set_args(values or {}), *extra)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(docs: list[Manifest], kind: str, name: str | None = None, namespace: str | None = None) -> list[Manifest]:
    return [
        d
        for d in docs
        if d["kind"] == kind
        and (name is None or d["metadata"]["name"] == name)
        and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]


def one(docs: list[Manifest], kind: str, name: str | None = None, namespace: str | None = None) -> Manifest:
    found = find(docs, kind, name, namespace)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def operator_container(docs: list[Manifest]) -> dict[str, Any]:
    containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "operator")


def env_of(docs: list[Manifest]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in operator_container(docs)["env"] if "value" in e}


def rules_of(role: Manifest) -> set[tuple[str, str, frozenset[str]]]:
    return {
        (group, resource, frozenset(rule["verbs"]))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def resources_of(role: Manifest) -> set[str]:
    return {resource for _, resource, _ in rules_of(role)}


# --- the variants every structural check runs over -------------------------------------------------------------

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "peering-2": {"replicas": 2, "peering": {"enabled": True, "name": ""}},
    "namespaced-peering-2": {"watchNamespaces": ["team-a"], "replicas": 2, "peering.enabled": True},
    "ingress-ca": {
        "routing.mode": "ingress",
        "routing.ingress.className": "nginx",
        "registry.caBundle.configMap": "registry-ca",
        "registry.insecure": ["kind-registry:5000"],
    },
    "gateway-monitor": {
        "routing.mode": "gateway",
        "routing.gateway.name": "web",
        "routing.gateway.namespace": "gateways",
        "metrics.serviceMonitor.enabled": True,
    },
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    return template(VARIANTS[request.param])


# --- lint and render -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_lint_is_clean(variant: str) -> None:
    done = helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *set_args(VARIANTS[variant]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[ERROR]" not in done.stdout
    assert "[WARNING]" not in done.stdout


def test_default_render_watches_all_namespaces_standalone() -> None:
    docs = template()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "Service",
            "Deployment",
            # S18: the admission policy (admission/app-secret-access.yaml) and its binding
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ]
    )
    assert find(docs, "Role") == []
    assert find(docs, "RoleBinding") == []
    container = operator_container(docs)
    assert container["command"] == ["wharf", "run"]
    assert container["args"] == ["--all-namespaces", "--standalone", "--liveness=http://0.0.0.0:8080/healthz"]
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # never two standalone operators at once
    assert deployment["metadata"]["namespace"] == NAMESPACE
    # Helm's recommended labels on everything the chart creates.
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "wharf"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "wharf-0.1.0"
        assert labels["app.kubernetes.io/version"] == "0.1.0"


def test_all_namespaces_rbac_is_exactly_what_the_operator_uses() -> None:
    docs = template()
    namespaced = rules_of(one(docs, "ClusterRole", "wharf"))
    assert namespaced == {
        ("wharf.dev", "apps", frozenset({"list", "watch"})),
        ("wharf.dev", "apps/status", frozenset({"patch"})),
        ("wharf.dev", "apps/finalizers", frozenset({"update"})),
        ("apps", "deployments", frozenset({"get", "list", "watch", "create", "patch", "delete"})),
        ("", "services", frozenset({"get", "list", "watch", "create", "patch", "delete"})),
        ("", "secrets", frozenset({"get", "create", "patch", "delete"})),
        ("", "events", frozenset({"create"})),
        ("", "pods", frozenset({"list", "watch"})),
    }
    cluster = rules_of(one(docs, "ClusterRole", "wharf-cluster"))
    # kopf never reads namespaces when it watches all of them, and peering is off.
    assert cluster == {("apiextensions.k8s.io", "customresourcedefinitions", frozenset({"get", "list", "watch"}))}
    for binding in find(docs, "ClusterRoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "wharf", "namespace": NAMESPACE}]
        assert binding["roleRef"]["name"] == binding["metadata"]["name"]
    # Nothing the operator never does: no update (but the finalizers' the admission check asks for), no
    # wildcards, no escalation verbs.
    for role in find(docs, "ClusterRole"):
        for rule in role["rules"]:
            assert not {"*", "escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])
            if "update" in rule["verbs"]:
                assert (rule["apiGroups"], rule["resources"], rule["verbs"]) == (
                    ["wharf.dev"],
                    ["apps/finalizers"],
                    ["update"],
                )
            assert "*" not in rule["resources"]
            assert "*" not in rule["apiGroups"]


def test_the_finalizers_rule_is_there_because_owner_references_block_owner_deletion() -> None:
    """OwnerReferencesPermissionEnforcement (OpenShift's default) lets only who may update the owner's finalizers
    set blockOwnerDeletion: the rule goes with the owner references wharf writes, in every watch mode."""
    assert owner_reference(make_app())["blockOwnerDeletion"] is True
    wanted = (GROUP, f"{PLURAL}/finalizers", frozenset({"update"}))
    assert wanted in rules_of(one(template(), "ClusterRole", "wharf"))
    for role in find(template(VARIANTS["namespaced"]), "Role"):
        assert wanted in rules_of(role)


def test_watch_namespaces_list_gives_roles_not_cluster_roles() -> None:
    docs = template(VARIANTS["namespaced"])
    roles = find(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    bindings = find(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "wharf"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "wharf", "namespace": NAMESPACE}]
    # Same namespaced rules as the all-namespaces ClusterRole, now per namespace.
    assert rules_of(roles[0]) == rules_of(one(template(), "ClusterRole", "wharf"))
    # The only cluster-wide grant: discovery of the CRD and of namespaces (read-only).
    assert [r["metadata"]["name"] for r in find(docs, "ClusterRole")] == ["wharf-cluster"]
    assert rules_of(one(docs, "ClusterRole")) == {
        ("apiextensions.k8s.io", "customresourcedefinitions", frozenset({"get", "list", "watch"})),
        ("", "namespaces", frozenset({"list", "watch"})),
    }
    assert operator_container(docs)["args"][:2] == ["--namespace=team-a", "--namespace=team-b"]
    assert env_of(docs)["WHARF_NAMESPACES"] == "team-a,team-b"


def test_peering_with_two_replicas_cluster_wide() -> None:
    docs = template(VARIANTS["peering-2"])
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    assert "--peering=wharf" in operator_container(docs)["args"]
    assert "--standalone" not in operator_container(docs)["args"]
    peering = one(docs, "ClusterKopfPeering", "wharf")
    assert peering["apiVersion"] == "kopf.dev/v1"
    assert ("kopf.dev", "clusterkopfpeerings", frozenset({"get", "list", "watch", "patch"})) in rules_of(
        one(docs, "ClusterRole", "wharf-cluster")
    )
    assert "kopfpeerings" not in resources_of(one(docs, "ClusterRole", "wharf"))
    # kopf names peers by POD_ID; the replicas prefer different nodes.
    env = {e["name"]: e for e in operator_container(docs)["env"]}
    assert env["POD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"] == (
        "kubernetes.io/hostname"
    )


def test_peering_in_watched_namespaces() -> None:
    docs = template(VARIANTS["namespaced-peering-2"])
    assert [p["metadata"]["namespace"] for p in find(docs, "KopfPeering", "wharf")] == ["team-a"]
    assert find(docs, "ClusterKopfPeering") == []
    assert ("kopf.dev", "kopfpeerings", frozenset({"get", "list", "watch", "patch"})) in rules_of(
        one(docs, "Role", "wharf", "team-a")
    )
    assert "clusterkopfpeerings" not in resources_of(one(docs, "ClusterRole", "wharf-cluster"))


def test_sharding_gives_each_shard_a_deployment_and_peering_of_its_own_and_disjoint_app_selectors() -> None:
    docs = template({"sharding.shards": ["a", "b", "c"], "replicas": 2, "peering.enabled": True})
    deployments = {d["metadata"]["name"]: d for d in find(docs, "Deployment")}
    assert sorted(deployments) == ["wharf-a", "wharf-b", "wharf-c"]
    selectors, peerings = {}, {}
    for name, deployment in deployments.items():
        shard = name.removeprefix("wharf-")
        # Selectors differ per shard (a Deployment must not adopt another shard's pods) and match the pods.
        match = deployment["spec"]["selector"]["matchLabels"]
        assert match["wharf.dev/shard"] == shard
        assert match.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        assert deployment["spec"]["replicas"] == 2
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        selectors[shard] = next(e["value"] for e in container["env"] if e["name"] == "WHARF_APP_SELECTOR")
        peerings[shard] = next(a for a in container["args"] if a.startswith("--peering="))
    # The first shard also takes every App whose label names no other shard: the slices cover all Apps.
    assert selectors == {"a": "wharf.dev/shard notin (b,c)", "b": "wharf.dev/shard=b", "c": "wharf.dev/shard=c"}
    assert peerings == {"a": "--peering=wharf-a", "b": "--peering=wharf-b", "c": "--peering=wharf-c"}
    assert sorted(p["metadata"]["name"] for p in find(docs, "ClusterKopfPeering")) == ["wharf-a", "wharf-b", "wharf-c"]
    # One metrics Service in front of every shard's pods.
    service = one(docs, "Service", "wharf-metrics")
    assert all(
        service["spec"]["selector"].items() <= d["spec"]["selector"]["matchLabels"].items()
        for d in deployments.values()
    )
    assert env_of(template())["WHARF_APP_SELECTOR"] == ""  # no sharding: one Deployment serves every App
    assert env_of(template())["WHARF_PEERING_LIFETIME_SECONDS"] == "10"


def test_routing_rules_only_for_the_chosen_mode() -> None:
    by_mode = {
        "none": template(),
        "ingress": template(VARIANTS["ingress-ca"]),
        "gateway": template(VARIANTS["gateway-monitor"]),
    }
    for mode, docs in by_mode.items():
        resources = resources_of(one(docs, "ClusterRole", "wharf"))
        assert ("ingresses" in resources) == (mode == "ingress"), mode
        assert ("httproutes" in resources) == (mode == "gateway"), mode
    assert ("networking.k8s.io", "ingresses", frozenset({"get", "list", "watch", "create", "patch", "delete"})) in (
        rules_of(one(by_mode["ingress"], "ClusterRole", "wharf"))
    )
    assert (
        "gateway.networking.k8s.io",
        "httproutes",
        frozenset({"get", "list", "watch", "create", "patch", "delete"}),
    ) in (rules_of(one(by_mode["gateway"], "ClusterRole", "wharf")))
    env = env_of(by_mode["gateway"])
    assert (env["WHARF_ROUTING"], env["WHARF_GATEWAY_NAME"], env["WHARF_GATEWAY_NAMESPACE"]) == (
        "gateway",
        "web",
        "gateways",
    )
    assert env_of(by_mode["ingress"])["WHARF_INGRESS_CLASS"] == "nginx"


def test_metrics_service_and_service_monitor() -> None:
    docs = template(VARIANTS["gateway-monitor"])
    service = one(docs, "Service", "wharf-metrics")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    assert service["spec"]["selector"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert find(template(), "ServiceMonitor") == []
    ports = {p["name"]: p["containerPort"] for p in operator_container(docs)["ports"]}
    assert ports == {"metrics": 9090, "health": 8080}
    assert env_of(docs)["WHARF_METRICS_PORT"] == "9090"


def test_registry_ca_bundle_is_mounted_where_the_env_var_points() -> None:
    docs = template(VARIANTS["ingress-ca"])
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    container = operator_container(docs)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "registry-ca")
    volume = next(v for v in pod["volumes"] if v["name"] == "registry-ca")
    assert volume["configMap"]["name"] == "registry-ca"
    path = volume["configMap"]["items"][0]["path"]
    assert env_of(docs)["WHARF_REGISTRY_CA_BUNDLE"] == f"{mount['mountPath']}/{path}"
    assert mount["readOnly"] is True
    assert env_of(docs)["WHARF_REGISTRY_INSECURE"] == "kind-registry:5000"
    assert env_of(template())["WHARF_REGISTRY_CA_BUNDLE"] == ""


def test_every_admin_setting_is_set_and_the_operator_accepts_it(rendered: list[Manifest]) -> None:
    """Every WHARF_* variable config.py reads is set by the chart, and Settings.from_env takes the result."""
    source = (REPO / "operator" / "wharf" / "config.py").read_text()
    read_by_operator = set(re.findall(r'"(WHARF_[A-Z_]+)"', source))
    env = env_of(rendered)
    assert read_by_operator <= set(env), f"not set by the chart: {sorted(read_by_operator - set(env))}"
    assert {k for k in env if k.startswith("WHARF_")} <= read_by_operator, "the chart sets a variable nobody reads"
    settings = Settings.from_env(env)
    assert settings.metrics_port == 9090
    assert settings.default_uid == 2000


def test_default_settings_match_the_operator_defaults() -> None:
    """values.yaml's defaults are config.py's: installing the chart changes nothing an admin did not ask for."""
    assert Settings.from_env(env_of(template())) == Settings()


def test_image_reference() -> None:
    assert operator_container(template())["image"] == "ghcr.io/wharf-dev/wharf:0.1.0"
    digest = "sha256:" + "a" * 64
    image = operator_container(template({"image.tag": "dev", "image.digest": digest}))["image"]
    assert image == f"ghcr.io/wharf-dev/wharf:dev@{digest}"


def test_notes_render(tmp_path: Path) -> None:
    # `helm install --dry-run` needs a cluster to render NOTES.txt; render it as an ordinary template instead.
    chart = tmp_path / "wharf"
    shutil.copytree(CHART, chart, symlinks=False)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes-source.txt")
    (chart / "templates" / "notes-rendered.yaml").write_text(
        'notes: {{ tpl (.Files.Get "notes-source.txt") . | toJson }}\n'
    )
    for variant in VARIANTS.values():
        done = helm(
            "template",
            RELEASE,
            str(chart),
            "--namespace",
            NAMESPACE,
            *set_args(variant),
            "--show-only",
            "templates/notes-rendered.yaml",
        )
        assert done.returncode == 0, done.stderr
        notes = yaml.safe_load(done.stdout)["notes"]
        assert "kubectl wait" in notes
        assert "<no value>" not in notes
    done = helm(
        "template",
        RELEASE,
        str(chart),
        *set_args(VARIANTS["namespaced"]),
        "--show-only",
        "templates/notes-rendered.yaml",
    )
    assert "team-a, team-b (a Role in each)" in yaml.safe_load(done.stdout)["notes"]


# --- the schema rejects what it should ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicas": 2}, "peering"),  # two active operators would race
        ({"replicas": "two"}, "replicas"),
        ({"replicas": 3, "peering.enabled": True}, "replicas"),
        ({"watchNamespaces": "team-a"}, "watchNamespaces"),  # a string, not a list
        ({"watchNamespaces": ["Team_A"]}, "watchNamespaces"),
        ({"routing.mode": "istio"}, "mode"),
        ({"routing.mode": "gateway"}, "name"),  # gateway routing needs a Gateway
        ({"operator.rootUserPolicy": "allow-root"}, "rootUserPolicy"),
        ({"operator.defaultUid": 0}, "defaultUid"),
        ({"operator.logFormat": "xml"}, "logFormat"),
        ({"metrics.port": 80}, "port"),
        ({"registry.insecure": "kind-registry:5000"}, "insecure"),
        ({"registry.deny": ["10.0.0.0"]}, "deny"),
        ({"image.digest": "latest"}, "digest"),
        ({"replicaCount": 2}, "replicaCount"),  # a typo is an error, not a silent default
        ({"operator.defaultMemory": 512}, "defaultMemory"),
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], complaint: str) -> None:
    done = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *set_args(values))
    assert done.returncode != 0, f"accepted {values}"
    assert "schema" in done.stderr.lower()
    assert complaint in done.stderr


def test_schema_documents_and_types_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node: dict[str, Any], value: Any, path: str) -> Iterator[str]:
        if path and "description" not in node:
            yield f"{path}: no description"
        if "type" not in node:
            yield f"{path}: no type"
        if node.get("type") == "object" and "properties" in node:
            if node.get("additionalProperties") is not False:
                yield f"{path}: accepts unknown keys"
            for key, child in value.items():
                if key not in node["properties"]:
                    yield f"{path}.{key}: in values.yaml, not in the schema"
                else:
                    yield from walk(node["properties"][key], child, f"{path}.{key}")

    assert list(walk(schema, values, "")) == []


# --- Pod Security Standards `restricted`, on every rendered pod template -----------------------------------------


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The `restricted` profile (harness.restricted), plus the operator's own bar: read-only root filesystem, a
    numeric non-root user, a memory limit, and its service account token mounted (it talks to the apiserver)."""
    problems = pss_restricted_violations(pod)
    psc = pod.get("securityContext", {})
    if pod.get("automountServiceAccountToken") is not True:
        problems.append("the operator needs its token: automountServiceAccountToken must be true")
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        name = container["name"]
        sc = container.get("securityContext", {})
        if sc.get("runAsUser", psc.get("runAsUser")) in (0, None):
            problems.append(f"{name}: no numeric non-root runAsUser")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem writable")
        if not container.get("resources", {}).get("limits", {}).get("memory"):
            problems.append(f"{name}: no memory limit")
    return problems


def pod_templates(docs: list[Manifest]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] == "Pod":
            found.append((doc["metadata"]["name"], spec))
        elif "template" in spec and "spec" in spec["template"]:
            found.append((f"{doc['kind']}/{doc['metadata']['name']}", spec["template"]["spec"]))
        elif doc["kind"] == "CronJob":
            found.append((doc["metadata"]["name"], spec["jobTemplate"]["spec"]["template"]["spec"]))
    return found


def test_every_pod_template_is_restricted_compliant(rendered: list[Manifest]) -> None:
    pods = pod_templates(rendered)
    assert pods, "no pod template rendered"
    for name, pod in pods:
        assert restricted_violations(pod) == [], name


def test_probes_use_kopf_health_endpoint(rendered: list[Manifest]) -> None:
    container = operator_container(rendered)
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/tmp"}  # read-only root needs a scratch dir


def test_the_checker_catches_violations() -> None:
    """restricted_violations is the test's own oracle: it must fail a pod that breaks the rules."""
    pod = one(template(), "Deployment")["spec"]["template"]["spec"]
    broken = json.loads(json.dumps(pod))
    container = broken["containers"][0]
    container["securityContext"]["allowPrivilegeEscalation"] = True
    container["securityContext"]["capabilities"] = {"add": ["SYS_ADMIN"]}
    del container["securityContext"]["runAsUser"]
    del broken["securityContext"]["runAsUser"]
    broken["hostNetwork"] = True
    broken["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    problems = restricted_violations(broken)
    for expected in ("allowPrivilegeEscalation", "ALL", "adds capabilities", "runAsUser", "hostNetwork", "host"):
        assert any(expected in p for p in problems), expected


# --- the CRD, the image, the kind cluster --------------------------------------------------------------------------


def test_chart_crd_is_the_source_crd() -> None:
    chart_copy = CHART / "crds" / "app.yaml"
    assert CRD_SOURCE.is_file(), "crds/app.yaml (the source of truth) is missing"
    # A real file, not a symlink: Flux's source-controller drops symlinks when it packs a GitRepository, and a
    # HelmRelease from it would install the chart without the App CRD.
    assert not chart_copy.is_symlink(), f"{chart_copy.relative_to(REPO)} must be a regular file, not a symlink"
    assert chart_copy.read_bytes() == CRD_SOURCE.read_bytes(), (
        f"{chart_copy.relative_to(REPO)} differs from crds/app.yaml: cp crds/app.yaml {chart_copy.relative_to(REPO)}"
    )
    done = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--include-crds")
    assert done.returncode == 0, done.stderr
    crds = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all(done.stdout)
        if d and d["kind"] == "CustomResourceDefinition"
    }
    assert set(crds) == {"apps.wharf.dev", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
    app = crds["apps.wharf.dev"]["spec"]
    assert (app["group"], app["names"]["kind"], app["names"]["plural"], app["scope"]) == (
        "wharf.dev",
        "App",
        "apps",
        "Namespaced",
    )
    assert any(v["name"] == "v1alpha1" and "status" in v.get("subresources", {}) for v in app["versions"])
    # The RBAC names the same resource the CRD defines.
    assert ("wharf.dev", "apps/status", frozenset({"patch"})) in rules_of(one(template(), "ClusterRole", "wharf"))


def test_packaged_chart_holds_the_crds_as_files(tmp_path: Path) -> None:
    """`helm package` (what a chart repository, an OCI registry or Flux's HelmChart serves) carries every CRD
    of the chart's crds/ as a regular file with the same bytes, and no warning about symlinks."""
    done = helm("package", str(CHART), "--destination", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "symbolic link" not in done.stderr + done.stdout, done.stderr
    (package,) = tmp_path.glob("wharf-*.tgz")
    with tarfile.open(package) as tar:
        members = {m.name: m for m in tar.getmembers()}
        crds = sorted(name for name in members if name.startswith("wharf/crds/"))
        assert crds == ["wharf/crds/app.yaml", "wharf/crds/kopf-peering.yaml"]
        for name in crds:
            assert members[name].isfile(), f"{name} is not a regular file in {package.name}"
            extracted = tar.extractfile(members[name])
            assert extracted is not None
            assert extracted.read() == (CHART / name.removeprefix("wharf/")).read_bytes(), name
        extracted = tar.extractfile(members["wharf/crds/app.yaml"])
        assert extracted is not None
        assert extracted.read() == CRD_SOURCE.read_bytes()


def test_dockerfile_matches_the_chart() -> None:
    dockerfile = (REPO / "operator" / "Dockerfile").read_text()
    pod = one(template(), "Deployment")["spec"]["template"]["spec"]
    uid = pod["securityContext"]["runAsUser"]
    assert re.search(rf"^USER {uid}(:{uid})?$", dockerfile, re.M)
    assert 'ENTRYPOINT ["wharf", "run"]' in dockerfile
    bases = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.M)
    assert bases, "no ARG PYTHON_IMAGE"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", bases[0]), "base image tag must be pinned"


def test_dockerfile_uses_only_what_docker_and_buildah_share() -> None:
    """scripts/build-image.sh (buildah 1.28) and `docker build` build the same file: plain Dockerfile
    instructions only (no RUN --mount, no heredocs, no buildah-only syntax), the base from ARG PYTHON_IMAGE, and
    the labels from build args."""
    text = (REPO / "operator" / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)  # join continuation lines
    instructions = [line.split()[0] for line in logical.splitlines() if line.strip() and not line.startswith("#")]
    shared = {"ARG", "FROM", "ENV", "RUN", "WORKDIR", "COPY", "LABEL", "USER", "EXPOSE", "ENTRYPOINT"}
    assert set(instructions) <= shared
    assert "--mount" not in logical
    assert "<<" not in logical
    assert re.findall(r"^FROM (\S+)", logical, re.M) == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    assert 'org.opencontainers.image.version="${VERSION}"' in logical
    assert 'org.opencontainers.image.revision="${REVISION}"' in logical
    assert re.search(r"^nonroot:x:65532:65532:", text.replace("echo '", "\n"), re.M), "uid 65532 needs a passwd entry"


def test_kind_config_maps_ingress_ports_and_the_registry_mirror() -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    (node,) = config["nodes"]
    assert {(m["containerPort"], m["hostPort"]) for m in node["extraPortMappings"]} == {(80, 80), (443, 443)}
    assert any("config_path" in patch for patch in config["containerdConfigPatches"])
    install = (REPO / "docs" / "install.md").read_text()
    assert "localhost:5001" in install
    assert "kind-registry:5000" in install


def test_the_operator_cli_accepts_the_rendered_arguments(rendered: list[Manifest]) -> None:
    """The chart's command line is one `wharf run` parses (a renamed flag would crash-loop the pod)."""
    from wharf.main import _parser

    container = operator_container(rendered)
    assert container["command"][0] == "wharf"
    args = _parser().parse_args([*container["command"][1:], *container["args"]])
    assert args.command == "run"
    assert args.liveness == "http://0.0.0.0:8080/healthz"
    assert (args.peering is not None) != args.standalone


def test_the_admission_policy_is_the_harness_file_and_can_be_turned_off() -> None:
    # S18: one truth for the chart, the test harness and the local run
    policy = [d for d in template() if d["kind"].startswith("ValidatingAdmissionPolicy")]
    expected = list(yaml.safe_load_all((CHART / "admission" / "app-secret-access.yaml").read_text()))
    for doc in policy:  # the chart adds its labels to the file's
        doc["metadata"]["labels"] = {
            k: v for k, v in doc["metadata"]["labels"].items() if k == "app.kubernetes.io/part-of"
        }
    assert policy == expected
    off = template({"admissionPolicy": {"enabled": False}})
    assert not [d for d in off if d["kind"].startswith("ValidatingAdmissionPolicy")]


def test_routing_annotations_reach_the_operator_as_json() -> None:
    # S19: the admin's routing annotations, the only ones routing objects carry
    annotations = {"cert-manager.io/cluster-issuer": "letsencrypt", "example.com/x": "a, b"}
    env = env_of(template({"routing": {"mode": "ingress", "annotations": annotations}}))
    assert json.loads(env["WHARF_ROUTING_ANNOTATIONS"]) == annotations
    assert json.loads(env_of(template())["WHARF_ROUTING_ANNOTATIONS"]) == {}
