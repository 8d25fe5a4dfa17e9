"""The GitOps install files (deploy/gitops/, shown in docs/gitops.md) hold together, tried with the real tools
available offline: `kubectl kustomize` builds the Apps folder into Apps the operator accepts, and `helm template`
renders the chart with exactly the values the Argo CD Application and the Flux HelmRelease pass (values.schema.json
rejects a wrong key). Argo CD and Flux themselves are not run here: Flux's source-, kustomize- and helm-controller
run the Flux files in scripts/try-flux.sh, Argo CD's repo-server and application-controller the Argo CD files in
scripts/try-argocd.sh (by hand, not in the test command: building them takes many minutes). Their health checks are
tested: tests/unit/test_argocd_health.py runs the Lua script on lua5.4 and on Argo CD's gopher-lua, and the Flux
Kustomization's health check names the Apps the folder holds.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.fixtures_cluster import locate_binaries
from wharf.api.app import API_VERSION, KIND, App

ROOT = Path(__file__).resolve().parents[2]
GITOPS = ROOT / "deploy" / "gitops"
CHART = ROOT / "deploy" / "helm" / "wharf"
DOC = ROOT / "docs" / "gitops.md"
FILES = sorted(p for p in GITOPS.rglob("*.yaml"))


def docs_of(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def only(path: Path, kind: str) -> dict[str, Any]:
    (found,) = [d for d in docs_of(path) if d["kind"] == kind]
    return found


def run(tool: str, *args: str) -> str:
    done = subprocess.run(
        [str(locate_binaries() / tool), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{tool} {' '.join(args)}:\n{done.stderr}"
    return done.stdout


def helm_template(values: dict[str, Any], release: str, namespace: str, tmp_path: Path) -> list[dict[str, Any]]:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(json.dumps(values))
    out = run("helm", "template", release, str(CHART), "--namespace", namespace, "-f", str(values_file))
    return [d for d in yaml.safe_load_all(out) if d]


def apps_in_git() -> list[dict[str, Any]]:
    built = [d for d in yaml.safe_load_all(run("kubectl", "kustomize", str(GITOPS / "apps"))) if d]
    assert built, "deploy/gitops/apps builds to nothing"
    return built


def test_the_apps_folder_builds_into_apps_the_operator_accepts() -> None:
    for body in apps_in_git():
        assert (body["apiVersion"], body["kind"]) == (API_VERSION, KIND)
        App.from_resource({**body, "metadata": {**body["metadata"], "namespace": "default", "uid": "0" * 8}})


def test_argocd_application_for_the_chart_renders(tmp_path: Path) -> None:
    app = only(GITOPS / "argocd" / "wharf.yaml", "Application")
    source = app["spec"]["source"]
    assert (ROOT / source["path"]) == CHART
    rendered = helm_template(
        source["helm"]["valuesObject"], source["helm"]["releaseName"], app["spec"]["destination"]["namespace"], tmp_path
    )
    kinds = {d["kind"] for d in rendered}
    assert {"Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= kinds
    assert "CreateNamespace=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_argocd_application_for_the_apps() -> None:
    app = only(GITOPS / "argocd" / "apps.yaml", "Application")
    assert (ROOT / app["spec"]["source"]["path"]) == GITOPS / "apps"
    # A first sync of the operator and the Apps together must not fail its dry run on the missing CRD.
    assert "SkipDryRunOnMissingResource=true" in app["spec"]["syncPolicy"]["syncOptions"]
    # ... and its apply fails until the CRD is there: automated sync must keep retrying longer than its default
    # 5 tries (scripts/try-argocd.sh, step 1).
    assert app["spec"]["syncPolicy"]["retry"]["limit"] > 5
    (ignored,) = app["spec"]["ignoreDifferences"]
    assert (ignored["group"], ignored["kind"]) == ("wharf.dev", KIND)
    # Without it a sync of another change applies the instances in git as well (scripts/try-argocd.sh, step 5).
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_flux_helm_release_renders_and_upgrades_the_crds(tmp_path: Path) -> None:
    path = GITOPS / "flux" / "wharf.yaml"
    source, release = only(path, "GitRepository"), only(path, "HelmRelease")
    chart = release["spec"]["chart"]["spec"]
    assert chart["sourceRef"] == {"kind": "GitRepository", "name": source["metadata"]["name"]}
    assert (ROOT / chart["chart"]) == CHART
    assert release["spec"]["install"]["crds"] == release["spec"]["upgrade"]["crds"] == "CreateReplace"
    # Not Revision: scripts/try-flux.sh saw it upgrade the release, and so restart the operator, at each commit to the
    # Apps in the same repository.
    assert chart["reconcileStrategy"] == "ChartVersion"
    rendered = helm_template(
        release["spec"]["values"], release["spec"]["releaseName"], release["spec"]["targetNamespace"], tmp_path
    )
    assert any(d["kind"] == "Deployment" for d in rendered)


def test_flux_kustomization_checks_the_health_of_the_apps_in_git() -> None:
    kustomization = only(GITOPS / "flux" / "apps.yaml", "Kustomization")
    spec = kustomization["spec"]
    assert (ROOT / spec["path"]) == GITOPS / "apps"
    assert spec["sourceRef"]["name"] == only(GITOPS / "flux" / "wharf.yaml", "GitRepository")["metadata"]["name"]
    checked = {(c["apiVersion"], c["kind"], c["name"], c["namespace"]) for c in spec["healthChecks"]}
    in_git = {(a["apiVersion"], a["kind"], a["metadata"]["name"], spec["targetNamespace"]) for a in apps_in_git()}
    assert checked == in_git


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(GITOPS)))
def test_the_doc_shows_each_file_as_it_is(path: Path) -> None:
    assert path.read_text().strip() in DOC.read_text(), f"docs/gitops.md must show {path.relative_to(ROOT)} verbatim"


def test_deleting_the_argocd_application_keeps_the_crd_and_so_the_apps() -> None:
    for crd in (ROOT / "crds" / "app.yaml", CHART / "crds" / "app.yaml"):
        annotations = yaml.safe_load(crd.read_text())["metadata"]["annotations"]
        assert annotations["argocd.argoproj.io/sync-options"] == "Delete=false", crd
