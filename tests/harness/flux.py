"""Flux for real: source-controller, kustomize-controller and helm-controller install wharf from git and sync its
Apps (scripts/try-flux.sh).

Not part of the test command (it builds three Flux controllers and the operator image, many minutes on a cold
machine): a trial a reader can run, whose findings docs/gitops.md reports. Starts the project's real control plane
(etcd, kube-apiserver, controller-manager, scheduler, kwok fake node, the pull agent), a real registry holding the
example App's image and the operator image (scripts/build-image.sh), a Git server (`git http-backend` over HTTP)
holding this checkout's `deploy/` folder, and Flux's source-controller, kustomize-controller and helm-controller
(scripts/build-flux.sh) with their CRDs. Then it applies deploy/gitops/flux/wharf.yaml (the GitRepository's url
pointed at the Git server; the HelmRelease's image values naming the operator image in the local registry, and its
registry values letting the operator reach that registry on loopback) and deploy/gitops/flux/apps.yaml as it is,
and checks what the docs promise:

1. the GitRepository's artifact carries deploy/helm/wharf/crds/app.yaml as a regular file;
2. the Kustomization applied before the App CRD exists (as before the HelmRelease has installed the chart) fails
   its dry run;
3. the HelmRelease: helm-controller has source-controller build the chart from the GitRepository (a HelmChart
   artifact) and installs it: the App CRD comes from the chart's crds/ (there was none before), the operator
   Deployment names the image given and goes Available (its pod is on a kwok node: the pull agent marks it Running
   once the registry serves that digest; nothing runs there);
4. the Kustomization is retried by itself after retryInterval once the CRD is there and creates the App; the
   operator is started only then (as when its pod is still pulling the image), so the health check first meets an
   App no operator has looked at (only the CRD's default status): it must wait. The operator that reconciles is
   that pod's container run for real from the image by runc
   (harness.pod_run: the pod's own command, args and env, a token of the release's ServiceAccount bound to the
   pod; its ports moved to free loopback ports); while the App cannot be Ready (the registry is down:
   Reconciling=True) the health check waits, Ready=Unknown; once the registry is back and the App Ready, the
   Kustomization is Ready=True;
5. a commit pointing the App at an image that does not exist fails the health check (the App turns Stalled=True,
   which kstatus calls Failed) while the App's instances keep running; a commit putting the image back heals it;
6. the same two commits with the healthCheckExprs of docs/gitops.md added to the Kustomization;
7. upgrade: a commit changing a default in the chart's values.yaml (not installed: reconcileStrategy ChartVersion
   waits for a new chart version), a commit bumping Chart.yaml's version (installed), then a change of the
   HelmRelease's values (installed): the release's revisions, the operator pod replaced each time (its container
   restarted from the new pod, with the new settings), the Apps and their pods untouched;
8. uninstall: deleting the HelmRelease uninstalls the release (the operator Deployment goes; its container is
   stopped, as the kubelet would stop it), the App CRD stays, and the App's instances keep running;
9. deleting the Kustomization (prune: true) deletes the App, and with it what wharf made for it;
10. the Kustomization again, with the healthCheckExprs of docs/gitops.md and a 30 s timeout, while no operator runs:
    what those expressions make of an App no operator has looked at.

The one change to the App in git: its image's registry host is the local registry's (same repository and tag).
Exit status 0 when every step held; each step's outcome is printed.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness import image_run
from harness.controlplane import Proc, terminate_groups
from harness.fixtures_cluster import Cluster, locate_built
from harness.fixtures_operator import ROOT, VERSION, Operator
from harness.git_server import GitRepo
from harness.gitops_trial import (
    APP_RESOURCE,
    NAMESPACE,
    Stage,
    TrialFailedError,
    build_operator_image,
    check_alive,
    describe,
    expect_alive,
    on_stage,
    run_trial,
    say,
    set_image,
)
from harness.pod_run import RunningPod, run_pod_container
from harness.polling import poll
from harness.ports import free_port

FLUX_DIR = ROOT / "deploy" / "gitops" / "flux"
APPS_DIR = ROOT / "deploy" / "gitops" / "apps"
DOC = ROOT / "docs" / "gitops.md"
BUILD_FLUX = ROOT / "scripts" / "build-flux.sh"
CHART_VALUES = ROOT / "deploy" / "helm" / "wharf" / "values.yaml"
CHART_YAML = ROOT / "deploy" / "helm" / "wharf" / "Chart.yaml"
FLUX_NS = "flux-system"


@dataclass
class Flux:
    """The three controllers, run as processes against the control plane (as their Deployments would run them)."""

    cluster: Cluster
    procs: list[Proc]
    storage_url: str

    def get(self, kind: str, name: str) -> dict[str, Any]:
        out = self.cluster.kubectl("get", kind, name, "-n", FLUX_NS, "-o", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def ready(self, kind: str, name: str) -> dict[str, Any]:
        status = self.get(kind, name).get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})

    def attempted(self, kind: str, name: str) -> str:
        """The source revision the object's last reconcile tried (main@sha1:...)."""
        return str((self.get(kind, name).get("status") or {}).get("lastAttemptedRevision", ""))

    def request_reconcile(self, kind: str, name: str) -> None:
        """What `flux reconcile` does: annotate the object so its controller reconciles it now, not at `interval`."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S") + f".{time.time_ns() % 10**9:09d}Z"
        self.cluster.kubectl(
            "annotate", "--overwrite", "-n", FLUX_NS, kind, name, f"reconcile.fluxcd.io/requestedAt={stamp}"
        )

    def check_alive(self) -> None:
        check_alive(self.procs)

    def stop(self) -> None:
        terminate_groups([p.popen.pid for p in self.procs])


def start_flux(cluster: Cluster, flux_bin: Path, workdir: Path) -> Flux:
    cluster.kubectl("apply", "--server-side", "-f", str(flux_bin / "crds"))
    for crd in (
        "gitrepositories.source.toolkit.fluxcd.io",
        "helmcharts.source.toolkit.fluxcd.io",
        "kustomizations.kustomize.toolkit.fluxcd.io",
        "helmreleases.helm.toolkit.fluxcd.io",
    ):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    cluster.create_namespace(FLUX_NS, restricted=False)
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (workdir / "artifacts").mkdir()
    storage_port = free_port()
    storage_url = f"http://127.0.0.1:{storage_port}"
    common = [
        "--enable-leader-election=false",
        "--watch-all-namespaces=true",
        "--log-level=debug",
        "--log-encoding=console",
    ]
    commands = {
        "source-controller": [
            f"--storage-path={workdir / 'artifacts'}",
            f"--storage-addr=127.0.0.1:{storage_port}",
            f"--storage-adv-addr=127.0.0.1:{storage_port}",
        ],
        "kustomize-controller": [],
        "helm-controller": [],
    }
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "RUNTIME_NAMESPACE": FLUX_NS}
    procs = []
    for name, args in commands.items():
        log = logs / f"{name}.log"
        argv = [
            str(flux_bin / name),
            *common,
            *args,
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-addr=127.0.0.1:{free_port()}",
        ]
        popen = subprocess.Popen(argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(Proc(name, popen, log))
    return Flux(cluster, procs, storage_url)


def expect(what: str, predicate: Callable[[], Any], flux: Flux, operator: Operator | None, timeout: float = 180) -> Any:
    return expect_alive(what, predicate, flux.procs, operator, timeout)


def app_object(cluster: Cluster) -> dict[str, Any] | None:
    out = cluster.kubectl("get", "app", "hello", "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def health_after(flux: Flux, created: float, timeout: float = 60) -> dict[str, Any]:
    """The Kustomization's Ready condition once a reconcile that began after `created` (an App's creation) has
    finished (True or False); its Ready=Unknown condition if it is still waiting after `timeout` seconds."""

    def finished() -> dict[str, Any] | None:
        flux.check_alive()
        ready = flux.ready("kustomization", "wharf-apps")
        done = ready.get("status") in ("True", "False") and stamp(ready["lastTransitionTime"]) >= created
        return ready if done else None

    return poll(finished, timeout, 1.0) or flux.ready("kustomization", "wharf-apps")


def patch_kustomization(flux: Flux, spec: dict[str, Any]) -> int:
    """Merge `spec` into the Kustomization's spec (None removes a field); return its new generation."""
    out = flux.cluster.kubectl(
        "patch",
        "kustomization",
        "wharf-apps",
        "-n",
        FLUX_NS,
        "--type=merge",
        "-p",
        json.dumps({"spec": spec}),
        "-o",
        "json",
    )
    return int(json.loads(out.stdout)["metadata"]["generation"])


def app_conditions(operator: Operator) -> dict[str, dict[str, Any]]:
    app = operator.get("app", "hello", NAMESPACE) or {}
    return {c["type"]: c for c in (app.get("status") or {}).get("conditions", [])}


def stamp(timestamp: str) -> float:
    """An RFC 3339 timestamp of the API (2026-11-30T17:18:02Z) in seconds since the epoch."""
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def doc_health_check_exprs() -> dict[str, Any]:
    """The `healthCheckExprs:` snippet of docs/gitops.md, as a spec fragment."""
    doc = DOC.read_text()
    found = re.search(r"```yaml\n(  healthCheckExprs:\n.*?)```", doc, re.S)
    if found is None:
        raise TrialFailedError("docs/gitops.md has no healthCheckExprs snippet")
    fragment: dict[str, Any] = yaml.safe_load(found.group(1))
    return fragment


def commit_image(repo: GitRepo, flux: Flux, operator: Operator, image: str, message: str, ok: bool) -> dict[str, Any]:
    """Commit the App with `image`, ask Flux to fetch it (as `flux reconcile source git` does), and wait for the
    Kustomization to be Ready (`ok`) or to fail its health check at that revision; return its Ready condition."""
    set_image(repo, image)
    sha = repo.commit(message)
    flux.request_reconcile("gitrepository", "wharf")
    want = "True" if ok else "False"
    condition: dict[str, Any] = expect(
        f"the Kustomization to be Ready={want} at {sha}",
        lambda: (
            flux.ready("kustomization", "wharf-apps").get("status") == want
            and sha in flux.attempted("kustomization", "wharf-apps")
            and flux.ready("kustomization", "wharf-apps")
        ),
        flux,
        operator,
        timeout=400,
    )
    return condition


def flux_documents() -> dict[str, dict[str, Any]]:
    """deploy/gitops/flux/wharf.yaml by kind (GitRepository, HelmRelease)."""
    return {d["kind"]: d for d in yaml.safe_load_all((FLUX_DIR / "wharf.yaml").read_text())}


@dataclass
class Release:
    """The HelmRelease of deploy/gitops/flux/wharf.yaml and what it installs."""

    cluster: Cluster
    flux: Flux
    spec: dict[str, Any]  # the HelmRelease as applied

    @property
    def name(self) -> str:
        return str(self.spec["metadata"]["name"])

    @property
    def namespace(self) -> str:
        """The release's target namespace (where the operator runs)."""
        return str(self.spec["spec"]["targetNamespace"])

    @property
    def deployment(self) -> str:
        return str(self.spec["spec"]["releaseName"])  # the chart names its objects after the release

    def status(self) -> dict[str, Any]:
        return dict(self.flux.get("helmrelease", self.name).get("status") or {})

    def history(self) -> list[dict[str, Any]]:
        """Helm's release revisions as the HelmRelease records them, newest first (the last few only)."""
        return list(self.status().get("history") or [])

    def revision(self) -> int:
        """The release's newest Helm revision (0 before the install)."""
        history = self.history()
        return int(history[0]["version"]) if history else 0

    def upgraded(self, what: str, after: int, operator: Operator) -> list[dict[str, Any]]:
        """Wait until the release is past revision `after` and the HelmRelease Ready again; its history then."""
        history: list[dict[str, Any]] = expect(
            what,
            lambda: (
                self.revision() > after
                and self.flux.ready("helmrelease", self.name).get("status") == "True"
                and self.history()
            ),
            self.flux,
            operator,
            timeout=300,
        )
        return history

    def chart(self) -> dict[str, Any]:
        """The HelmChart helm-controller made for the release (status.helmChart: NAMESPACE/NAME)."""
        ref = self.status().get("helmChart", "")
        return self.flux.get("helmchart", ref.split("/", 1)[1]) if "/" in ref else {}

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        out = self.cluster.kubectl("get", kind, name, "-n", self.namespace, "-o", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def running_pod(self) -> dict[str, Any] | None:
        """The operator Deployment's Running pod of its current template (none while a rollout replaces it)."""
        deployment = self.get("deployment", self.deployment)
        if not deployment:
            return None
        labels = deployment["spec"]["selector"]["matchLabels"]
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        pods = json.loads(
            self.cluster.kubectl("get", "pods", "-n", self.namespace, "-l", selector, "-o", "json").stdout
        )["items"]
        template = deployment["spec"]["template"]["spec"]["containers"][0]
        running = [
            p
            for p in pods
            if p["status"].get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")
            and p["spec"]["containers"][0].get("env") == template.get("env")
        ]
        return running[0] if len(running) == 1 and len(pods) == 1 else None


def available(deployment: dict[str, Any] | None) -> bool:
    conditions = {c["type"]: c for c in ((deployment or {}).get("status") or {}).get("conditions", [])}
    return bool(conditions.get("Available", {}).get("status") == "True")


def start_operator(release: Release, bundle: Path, workdir: Path, flux: Flux) -> tuple[RunningPod, Operator]:
    """The release's operator pod run for real from its image (harness.pod_run), once its /healthz answers."""
    pod = expect("the operator Deployment's pod to be Running", release.running_pod, flux, None)
    running = run_pod_container(release.cluster, pod, "operator", bundle, workdir)
    argv = running.argv
    health = next(a.split("=", 1)[1] for a in argv if a.startswith("--liveness="))
    env = running.env
    operator = Operator(
        release.cluster,
        running.container.process,
        running.container.log_file,
        f"http://127.0.0.1:{env['WHARF_METRICS_PORT']}/metrics",
        health.replace("0.0.0.0", "127.0.0.1"),
    )

    def healthy() -> bool:
        if running.container.process.poll() is not None:
            raise TrialFailedError(f"the operator container exited:\n{operator.log_tail()}")
        try:
            with urllib.request.urlopen(operator.health_url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    expect("the operator container's /healthz", healthy, flux, operator, timeout=90)
    return running, operator


def workload(operator: Operator) -> tuple[str, str, int, list[str]]:
    """What must survive an upgrade or uninstall of the operator: the App's uid, its Deployment's uid and
    generation, and the names of its Running pods."""
    app = operator.get("app", "hello", NAMESPACE)
    deployment = operator.get("deployment", "hello-web", NAMESPACE)
    if app is None or deployment is None:
        raise TrialFailedError(f"the App or its Deployment is gone: App {app is not None}, hello-web {deployment}")
    pods = json.loads(
        operator.cluster.kubectl("get", "pods", "-n", NAMESPACE, "-l", "wharf.dev/app=hello", "-o", "json").stdout
    )["items"]
    running = sorted(p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running")
    return app["metadata"]["uid"], deployment["metadata"]["uid"], deployment["metadata"]["generation"], running


def trial(stage: Stage) -> None:
    flux_bin = locate_built(BUILD_FLUX, "FLUX_BIN_DIR")  # scripts/build-flux.sh
    say(f"Flux: {flux_bin}")
    workdir, cluster, registry, repo, image = stage.workdir, stage.cluster, stage.registry, stage.repo, stage.image
    running: RunningPod | None = None
    flux: Flux | None = None
    try:
        operator_digest = build_operator_image(registry)
        operator_repository = f"{registry.host}/wharf"
        say(f"scripts/build-image.sh pushed the operator image {operator_repository}:{VERSION}@{operator_digest}")
        # Unpacked now, while the registry is up: step 4 starts the operator with the registry down.
        (workdir / "operator-image").mkdir()
        bundle = image_run.unpack(
            f"docker://{operator_repository}@{operator_digest}", workdir / "operator-image", tls_verify=False
        )

        flux = start_flux(cluster, flux_bin, workdir / "flux")
        say("source-controller, kustomize-controller and helm-controller run")

        documents = flux_documents()
        source = documents["GitRepository"]
        source["spec"]["url"] = repo.url
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(source))
        ready = expect(
            "the GitRepository to be Ready",
            lambda: (
                flux.ready("gitrepository", "wharf").get("status") == "True" and flux.ready("gitrepository", "wharf")
            ),
            flux,
            None,
        )
        say(f"step 1: GitRepository wharf Ready: {describe(ready)}")
        artifact = flux.get("gitrepository", "wharf")["status"]["artifact"]
        with urllib.request.urlopen(artifact["url"], timeout=30) as response:
            packed = response.read()
        with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as tar:
            crd = tar.getmember("deploy/helm/wharf/crds/app.yaml")
        if not crd.isfile():
            raise TrialFailedError(
                f"the artifact's deploy/helm/wharf/crds/app.yaml is not a regular file: {crd.type!r}"
            )
        say(f"step 1: the artifact ({artifact['revision']}) carries deploy/helm/wharf/crds/app.yaml, {crd.size} bytes")

        # Step 2: the Kustomization applied before the App CRD exists (as when the HelmRelease has not installed the
        # chart yet) fails its dry run. Nothing in this trial applies the CRD but the HelmRelease.
        if cluster.kubectl("get", "crd", APP_RESOURCE, check=False).returncode == 0:
            raise TrialFailedError(f"crd/{APP_RESOURCE} exists before the HelmRelease installed the chart")
        cluster.kubectl("apply", "-f", str(FLUX_DIR / "apps.yaml"))
        no_crd = expect(
            "the Kustomization to fail without the App CRD",
            lambda: (
                flux.ready("kustomization", "wharf-apps").get("status") == "False"
                and flux.ready("kustomization", "wharf-apps")
            ),
            flux,
            None,
        )
        say(f"step 2: without the App CRD, Kustomization Ready: {describe(no_crd)}")

        # Step 3: the HelmRelease as in deploy/gitops/flux/wharf.yaml, with the image built above and the registry
        # settings the operator needs to reach a registry on loopback.
        spec = documents["HelmRelease"]
        values = spec["spec"]["values"]
        values["image"] = {"repository": operator_repository, "tag": VERSION, "digest": operator_digest}
        values["registry"] = {"insecure": [registry.host], "allow": ["127.0.0.0/8"]}
        release = Release(cluster, flux, spec)
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(spec))
        applied_at = time.monotonic()
        say(f"HelmRelease {release.name} applied (values: {json.dumps(values)})")
        chart = expect(
            "the HelmChart's artifact",
            lambda: (release.chart().get("status") or {}).get("artifact") and release.chart(),
            flux,
            None,
        )
        chart_ready = next(c for c in chart["status"]["conditions"] if c["type"] == "Ready")
        say(
            f"step 3: HelmChart {chart['metadata']['namespace']}/{chart['metadata']['name']} "
            f"(spec.chart {chart['spec']['chart']}, from GitRepository {chart['spec']['sourceRef']['name']}, "
            f"reconcileStrategy {chart['spec'].get('reconcileStrategy')}) Ready: {describe(chart_ready)}; artifact "
            f"revision {chart['status']['artifact']['revision']}, from source revision "
            f"{chart['status'].get('observedSourceArtifactRevision')}"
        )
        installed = expect(
            "the HelmRelease to be Ready",
            lambda: (
                flux.ready("helmrelease", release.name).get("status") == "True"
                and flux.ready("helmrelease", release.name)
            ),
            flux,
            None,
            timeout=300,
        )
        say(
            f"step 3: HelmRelease Ready {time.monotonic() - applied_at:.0f} s after it was applied: "
            f"{describe(installed)}"
        )
        (first_revision,) = release.history()
        say(
            f"step 3: release history: revision {first_revision['version']} {first_revision['status']}, chart "
            f"{first_revision['chartName']}@{first_revision['chartVersion']}"
        )
        crd_object = json.loads(cluster.kubectl("get", "crd", APP_RESOURCE, "-o", "json").stdout)
        chart_crd = yaml.safe_load((ROOT / "deploy" / "helm" / "wharf" / "crds" / "app.yaml").read_text())
        served = [v["name"] for v in crd_object["spec"]["versions"]]
        if served != [v["name"] for v in chart_crd["spec"]["versions"]]:
            raise TrialFailedError(f"crd/{APP_RESOURCE} serves {served}, the chart's crds/app.yaml something else")
        say(
            f"step 3: crd/{APP_RESOURCE} (none before) created {crd_object['metadata']['creationTimestamp']} from the "
            f"chart's crds/ (versions {served}; labels {crd_object['metadata'].get('labels', {})})"
        )
        deployment = expect(
            "the operator Deployment to be Available",
            lambda: (
                available(release.get("deployment", release.deployment))
                and release.get("deployment", release.deployment)
            ),
            flux,
            None,
        )
        pod_image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        want = f"{operator_repository}:{VERSION}@{operator_digest}"
        if pod_image != want:
            raise TrialFailedError(f"the operator Deployment runs {pod_image}, not {want}")
        pod = expect("the operator pod", release.running_pod, flux, None)
        image_id = pod["status"]["containerStatuses"][0]["imageID"]
        say(
            f"step 3: Deployment {release.namespace}/{release.deployment} Available, image {pod_image}; its pod "
            f"{pod['metadata']['name']} Running on the kwok node {pod['spec']['nodeName']} with imageID {image_id} "
            "(the pull agent resolved that digest from the registry: nothing runs on a kwok node)"
        )

        # Step 4: the Kustomization creates the App before the operator runs (as when the operator's pod is still
        # pulling its image): what its health check makes of an App without any status. Then the operator pod's
        # container runs from the image, and the health check waits while the App cannot be Ready.
        registry.stop()
        say("registry stopped: the App cannot resolve its image until it is back; the operator is not started yet")
        app = expect("the Kustomization to create the App", lambda: app_object(cluster), flux, None)
        labels = app["metadata"].get("labels", {})
        created = stamp(app["metadata"]["creationTimestamp"])
        say(
            f"step 4: App {NAMESPACE}/hello created by Flux (labels {labels}) at "
            f"{app['metadata']['creationTimestamp']}: "
            f"{created - stamp(crd_object['metadata']['creationTimestamp']):.0f} s after the HelmRelease created the "
            f"CRD, {created - stamp(no_crd['lastTransitionTime']):.0f} s after the failed attempt of step 2; no "
            "reconcile was requested"
        )
        unseen = health_after(flux, created)
        say(
            f"step 4: no operator has looked at the App yet (status: {(app_object(cluster) or {}).get('status')}, "
            f"the CRD's default); the Kustomization's health check (kstatus) on it: Ready: {describe(unseen)}"
        )
        if unseen.get("status") != "Unknown":
            raise TrialFailedError(f"the health check did not wait for an App no operator has seen: {unseen}")

        running, operator = start_operator(release, bundle, workdir, flux)
        say(
            f"step 4: the pod {running.name}'s container runs from the image by runc as uid "
            f"{running.container.proc('status').split('Uid:')[1].split()[0]}, with the release's ServiceAccount "
            f"token; {' '.join(running.argv)} (ports moved: {running.ports})"
        )
        expect(
            "the App to be Reconciling",
            lambda: app_conditions(operator).get("Reconciling", {}).get("status") == "True",
            flux,
            operator,
        )
        waiting = flux.ready("kustomization", "wharf-apps")
        if waiting.get("status") != "Unknown":
            raise TrialFailedError(f"the Kustomization stopped waiting while the App was not Ready: {waiting}")
        say(f"step 4: App Reconciling: {describe(app_conditions(operator)['Reconciling'])}")
        say(f"step 4: the Kustomization, still in the health check it began on the App: {describe(waiting)}")
        time.sleep(20)
        still = flux.ready("kustomization", "wharf-apps")
        if still.get("status") != "Unknown":
            raise TrialFailedError(f"the Kustomization stopped waiting while the App was not Ready: {describe(still)}")
        say(f"step 4: 20 s later, App Ready: {describe(app_conditions(operator)['Ready'])}")
        say(f"step 4: 20 s later, still waiting: {describe(still)}")
        registry.start()
        say("registry started again")
        ready_app = expect(
            "the App to be Ready",
            lambda: app_conditions(operator).get("Ready", {}).get("status") == "True",
            flux,
            operator,
        )
        say(f"step 4: App Ready: {describe(app_conditions(operator)['Ready'])} ({ready_app})")
        done = expect(
            "the Kustomization to be Ready",
            lambda: (
                flux.ready("kustomization", "wharf-apps").get("status") == "True"
                and flux.ready("kustomization", "wharf-apps")
            ),
            flux,
            operator,
        )
        app_ready_at = app_conditions(operator)["Ready"]["lastTransitionTime"]
        say(
            f"step 4: Kustomization Ready: {describe(done)} "
            f"(at {done['lastTransitionTime']}; App Ready at {app_ready_at})"
        )

        # Step 5: a commit naming an image that does not exist.
        broken = stage.broken_image
        failed = commit_image(repo, flux, operator, broken, "hello: an image tag that does not exist", ok=False)
        conditions = app_conditions(operator)
        say(f"step 5: App Ready: {describe(conditions['Ready'])}")
        say(f"step 5: App Stalled: {describe(conditions['Stalled'])}")
        say(f"step 5: Kustomization Ready: {describe(failed)}")
        hello = operator.get("deployment", "hello-web", NAMESPACE) or {}
        instances = (hello.get("status") or {}).get("availableReplicas", 0)
        if instances != 2:
            raise TrialFailedError(f"the running instances did not keep running: hello-web has {instances} available")
        say(f"step 5: hello-web still has {instances} instances available on the last good image")
        warning = [e for e in operator.app_events(NAMESPACE, "hello") if e["type"] == "Warning"][-1]
        say(f"step 5: the App's Warning Event: {warning['reason']}: {warning['message']}")
        healed = commit_image(repo, flux, operator, image, "hello: the image back", ok=True)
        say(f"step 5: after a commit putting the image back, Kustomization Ready: {describe(healed)}")

        # Step 6: the healthCheckExprs docs/gitops.md gives, evaluated by the controller on the same two states.
        generation = patch_kustomization(flux, doc_health_check_exprs())
        current = expect(
            "the Kustomization with healthCheckExprs to be Ready",
            lambda: (
                flux.ready("kustomization", "wharf-apps").get("status") == "True"
                and flux.ready("kustomization", "wharf-apps").get("observedGeneration") == generation
                and flux.ready("kustomization", "wharf-apps")
            ),
            flux,
            operator,
        )
        say(f"step 6: with the docs' healthCheckExprs, Kustomization Ready: {describe(current)}")
        failed = commit_image(repo, flux, operator, broken, "hello: an image tag that does not exist", ok=False)
        say(f"step 6: with the docs' healthCheckExprs and the missing image, Kustomization Ready: {describe(failed)}")
        healed = commit_image(repo, flux, operator, image, "hello: the image back", ok=True)
        say(f"step 6: image back, Kustomization Ready: {describe(healed)}")

        # Step 7: upgrade, first by a commit changing a default in the chart's values.yaml, then by the HelmRelease's
        # own values; each time the operator pod is replaced, so its container is restarted from the new pod.
        before = workload(operator)
        running, operator = upgrade_by_commit(repo, release, running, operator, bundle, workdir)
        running, operator = upgrade_by_values(release, running, operator, bundle, workdir)
        after = workload(operator)
        if after != before:
            raise TrialFailedError(f"the upgrades touched the App: before {before}, after {after}")
        say(f"step 7: the App, its Deployment (uid, generation) and its pods are the same as before: {after}")
        say(f"step 7: App Ready: {describe(app_conditions(operator)['Ready'])}")

        # Step 8: uninstall.
        cluster.kubectl("delete", "helmrelease", release.name, "-n", FLUX_NS, "--wait=true", timeout=180)
        say("step 8: kubectl delete helmrelease wharf returned (helm-controller's finalizer uninstalled the release)")
        expect(
            "the operator Deployment to go",
            lambda: release.get("deployment", release.deployment) is None,
            flux,
            operator,
        )
        running.stop()  # its pod is gone: the kubelet would stop the container
        running = None
        gone = [
            f"{kind}/{name}"
            for kind, name in (("clusterrole", "wharf"), ("serviceaccount", "wharf"))
            if cluster.kubectl("get", kind, name, "-n", release.namespace, check=False).returncode != 0
        ]
        say(f"step 8: the operator Deployment is gone, and with it {', '.join(gone)}; its container stopped")
        crd_left = cluster.kubectl(
            "get", "crd", APP_RESOURCE, "-o", "jsonpath={.metadata.creationTimestamp}", check=False
        )
        if crd_left.returncode != 0:
            raise TrialFailedError(f"the uninstall deleted crd/{APP_RESOURCE}: {crd_left.stderr}")
        say(f"step 8: crd/{APP_RESOURCE} stays (created {crd_left.stdout})")
        leftovers = {
            f"namespace/{release.namespace}": cluster.kubectl("get", "namespace", release.namespace, check=False),
            "the HelmChart": cluster.kubectl("get", "helmcharts", "-n", FLUX_NS, "-o", "name", check=False),
            "Helm's release Secrets": cluster.kubectl(
                "get", "secrets", "-A", "-l", "owner=helm", "-o", "name", check=False
            ),
        }
        say(
            "step 8: after the uninstall: "
            + "; ".join(
                f"{what}: {(out.stdout.strip() or 'none').replace(chr(10), ' ')}"
                if out.returncode == 0
                else f"{what}: gone"
                for what, out in leftovers.items()
            )
        )
        time.sleep(10)
        left = workload(operator)
        if left != before:
            raise TrialFailedError(f"the uninstall touched the App: before {before}, after {left}")
        say(f"step 8: 10 s later the App, hello-web and its pods are still there, unchanged: {left}")
        say(f"step 8: App Ready (the last status the operator wrote): {describe(app_conditions(operator)['Ready'])}")
        say(f"step 8: Kustomization Ready: {describe(flux.ready('kustomization', 'wharf-apps'))}")

        # Step 9: prune (no operator runs any more; the App has no finalizer, so nothing waits for one).
        cluster.kubectl("delete", "kustomization", "wharf-apps", "-n", FLUX_NS, "--wait=true", timeout=120)
        expect("the App to be pruned", lambda: operator.get("app", "hello", NAMESPACE) is None, flux, operator)
        expect(
            "hello-web to be garbage-collected",
            lambda: operator.get("deployment", "hello-web", NAMESPACE) is None,
            flux,
            operator,
        )
        say("step 9: deleting the Kustomization deleted the App and, through owner references, its Deployment")

        # Step 10: the docs' healthCheckExprs on an App no operator has reconciled (none runs now): apps.yaml with
        # them and a 30 s timeout.
        kustomization = yaml.safe_load((FLUX_DIR / "apps.yaml").read_text())
        kustomization["spec"].update({**doc_health_check_exprs(), "timeout": "30s"})
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(kustomization))
        app = expect("the Kustomization to create the App again", lambda: app_object(cluster), flux, None)
        created = stamp(app["metadata"]["creationTimestamp"])
        time.sleep(10)
        pending = flux.ready("kustomization", "wharf-apps")
        say(
            f"step 10: with the docs' healthCheckExprs, 10 s after creating the App (no operator "
            f"runs): Kustomization Ready: {describe(pending)}"
        )
        if pending.get("status") == "True":
            raise TrialFailedError("the docs' healthCheckExprs passed an App no operator has looked at")
        timed_out = health_after(flux, created, timeout=120)
        say(f"step 10: at the Kustomization's 30 s timeout: Ready: {describe(timed_out)}")
        if timed_out.get("status") != "False":
            raise TrialFailedError(f"the docs' healthCheckExprs did not fail the unseen App: {timed_out}")
        say("every step held")
    finally:
        if flux is not None:
            flux.stop()
        if running is not None:
            running.stop()


def replaced_pod(
    release: Release, running: RunningPod, operator: Operator, bundle: Path, workdir: Path, step: str
) -> tuple[RunningPod, Operator]:
    """After an upgrade rolled the operator Deployment: wait for its new pod, stop the old pod's container (as the
    kubelet stopping the old pod would) and run the new pod's."""
    old = running.name
    expect(
        "the operator Deployment to roll out a new pod",
        lambda: (pod := release.running_pod()) is not None and pod["metadata"]["name"] != old,
        release.flux,
        operator,
    )
    running.stop()
    running, operator = start_operator(release, bundle, workdir, release.flux)
    say(
        f"{step}: pod {old} replaced by {running.name}; its container runs from the image (WHARF_LOG_LEVEL="
        f"{running.environ().get('WHARF_LOG_LEVEL')}, WHARF_IMAGE_AGE_WARNING_DAYS="
        f"{running.environ().get('WHARF_IMAGE_AGE_WARNING_DAYS')})"
    )
    return running, operator


def upgrade_by_commit(
    repo: GitRepo, release: Release, running: RunningPod, operator: Operator, bundle: Path, workdir: Path
) -> tuple[RunningPod, Operator]:
    """Two commits to the chart in git: operator.logLevel's default changed in values.yaml, which the
    HelmRelease's reconcileStrategy ChartVersion does not install (the chart's version is the same), then Chart.yaml's
    version bumped, which it does: a new chart artifact, a Helm upgrade, the operator pod replaced."""
    flux = release.flux
    strategy = release.spec["spec"]["chart"]["spec"].get("reconcileStrategy", "ChartVersion")
    if strategy != "ChartVersion":
        raise TrialFailedError(f"this step follows reconcileStrategy ChartVersion, wharf.yaml says {strategy}")

    def commit(path: Path, old: str, new: str, message: str) -> str:
        file = repo.work / path.relative_to(ROOT)
        text = file.read_text()
        if old not in text:
            raise TrialFailedError(f"{path.relative_to(ROOT)} has no {old.strip()!r} to change")
        file.write_text(text.replace(old, new, 1))
        sha = repo.commit(message)
        flux.request_reconcile("gitrepository", "wharf")
        expect(
            f"the GitRepository at {sha}",
            lambda: (
                sha
                in ((flux.get("gitrepository", "wharf").get("status") or {}).get("artifact") or {}).get("revision", "")
            ),
            flux,
            operator,
        )
        return sha

    revisions = release.revision()
    sha = commit(CHART_VALUES, "  logLevel: INFO\n", "  logLevel: DEBUG\n", "chart: operator.logLevel DEBUG by default")
    say(f"step 7: commit {sha[:12]} changes the chart's values.yaml (operator.logLevel: DEBUG); GitRepository at it")
    time.sleep(60)  # source-controller watches the GitRepository's artifact: a rebuild would come within seconds
    chart = release.chart()
    if release.revision() != revisions:
        raise TrialFailedError(f"the release was upgraded although reconcileStrategy is {strategy}")
    say(
        f"step 7: reconcileStrategy {strategy}: 60 s later the HelmChart's artifact is still revision "
        f"{chart['status']['artifact']['revision']} (from source "
        f"{chart['status'].get('observedSourceArtifactRevision')}), the release still at revision "
        f"{release.history()[0]['version']}: the commit is not installed"
    )
    version = yaml.safe_load((ROOT / "deploy" / "helm" / "wharf" / "Chart.yaml").read_text())["version"]
    major, minor, patch = version.split(".")
    bumped = f"{major}.{minor}.{int(patch) + 1}"
    sha = commit(CHART_YAML, f"version: {version}\n", f"version: {bumped}\n", f"chart: version {bumped}")
    upgraded = release.upgraded("the release to be upgraded from the commit", revisions, operator)
    chart = release.chart()
    say(
        f"step 7: commit {sha[:12]} bumps Chart.yaml's version to {bumped}: HelmChart artifact revision "
        f"{chart['status']['artifact']['revision']}; release revision {upgraded[0]['version']} {upgraded[0]['status']} "
        f"(chart {upgraded[0]['chartName']}@{upgraded[0]['chartVersion']}); HelmRelease Ready: "
        f"{describe(flux.ready('helmrelease', release.name))}"
    )
    running, operator = replaced_pod(release, running, operator, bundle, workdir, "step 7")
    if running.environ().get("WHARF_LOG_LEVEL") != "DEBUG":
        raise TrialFailedError("the upgraded operator pod does not have WHARF_LOG_LEVEL=DEBUG")
    return running, operator


def upgrade_by_values(
    release: Release, running: RunningPod, operator: Operator, bundle: Path, workdir: Path
) -> tuple[RunningPod, Operator]:
    """The HelmRelease's values changed (what its Kustomization applies after a commit to the file holding it):
    operator.imageAgeWarningDays 0 -> 365."""
    flux = release.flux
    revisions = release.revision()
    patch = {"spec": {"values": {"operator": {"imageAgeWarningDays": 365}}}}
    release.cluster.kubectl(
        "patch", "helmrelease", release.name, "-n", FLUX_NS, "--type=merge", "-p", json.dumps(patch)
    )
    upgraded = release.upgraded("the release to be upgraded with the new values", revisions, operator)
    say(
        f"step 7: HelmRelease values operator.imageAgeWarningDays: 365: release revision {upgraded[0]['version']} "
        f"{upgraded[0]['status']}; HelmRelease Ready: {describe(flux.ready('helmrelease', release.name))}"
    )
    running, operator = replaced_pod(release, running, operator, bundle, workdir, "step 7")
    if running.environ().get("WHARF_IMAGE_AGE_WARNING_DAYS") != "365":
        raise TrialFailedError("the upgraded operator pod does not have WHARF_IMAGE_AGE_WARNING_DAYS=365")
    return running, operator


def main(argv: list[str] | None = None) -> int:
    return run_trial("try-flux", __doc__, ".run-flux", on_stage(trial), argv)


if __name__ == "__main__":
    sys.exit(main())
