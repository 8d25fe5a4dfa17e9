"""Flux for real: source-controller and kustomize-controller sync the Apps folder from git (scripts/try-flux.sh).

Not part of the test command (it builds two Flux controllers, minutes on a cold machine): a trial a reader can run,
whose findings docs/gitops.md reports. Starts the project's real control plane (etcd, kube-apiserver,
controller-manager, scheduler, kwok fake node, the pull agent), a real registry holding the example App's image,
the wharf operator, a Git server (`git http-backend` over HTTP) holding this checkout's `deploy/` folder, and
Flux's source-controller and kustomize-controller (built from the Go module proxy by scripts/build-flux.sh) with
their CRDs. Then it applies the GitRepository of deploy/gitops/flux/wharf.yaml (its url pointed at the Git server)
and the Kustomization of deploy/gitops/flux/apps.yaml as they are, and checks what the docs promise:

1. the GitRepository's artifact carries deploy/helm/wharf/crds/app.yaml as a regular file;
2. the Kustomization applied before the App CRD exists (as before the HelmRelease has installed the chart) fails
   its dry run, and is retried by itself after retryInterval once the CRD is there;
3. it creates the App; while the App cannot be Ready (the registry is down: Reconciling=True) its health check
   waits, Ready=Unknown; once the registry is back and the App Ready, the Kustomization is Ready=True;
4. a commit pointing the App at an image that does not exist fails the health check (the App turns Stalled=True,
   which kstatus calls Failed) while the App's instances keep running; a commit putting the image back heals it;
5. the same two commits with the healthCheckExprs of docs/gitops.md added to the Kustomization;
6. deleting the Kustomization (prune: true) deletes the App, and with it what wharf made for it.

The one change to the App in git: its image's registry host is the local registry's (same repository and tag).
HelmRelease is not tried: helm-controller is not served by the Go module proxy.
Exit status 0 when every step held; each step's outcome is printed.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.fixtures_cluster import Cluster, locate_built
from harness.fixtures_operator import ROOT
from harness.gitops_trial import APP, NAMESPACE, Stage, TrialFailedError, apply_crds, describe, run_trial, say
from harness.ports import free_port

FLUX_DIR = ROOT / "deploy" / "gitops" / "flux"
DOC = ROOT / "docs" / "gitops.md"
BUILD_FLUX = ROOT / "scripts" / "build-flux.sh"
FLUX_NS = "flux-system"


@dataclass
class Flux:
    """The two controllers, run as processes against the control plane (as their Deployments would run them)."""

    cluster: Cluster
    storage_url: str

    def get(self, kind: str, name: str) -> dict[str, Any]:
        out = self.cluster.kubectl("get", kind, name, "-n", FLUX_NS, "-o", "json", check=False)
        found: dict[str, Any] = json.loads(out.stdout) if out.returncode == 0 else {}
        return found

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


def start_flux(stage: Stage, flux_bin: Path) -> Flux:
    cluster = stage.cluster
    apply_crds(
        cluster,
        flux_bin / "crds",
        "gitrepositories.source.toolkit.fluxcd.io",
        "kustomizations.kustomize.toolkit.fluxcd.io",
    )
    cluster.create_namespace(FLUX_NS, restricted=False)
    artifacts = stage.workdir / "flux" / "artifacts"
    artifacts.mkdir(parents=True)
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
            f"--storage-path={artifacts}",
            f"--storage-addr=127.0.0.1:{storage_port}",
            f"--storage-adv-addr=127.0.0.1:{storage_port}",
        ],
        "kustomize-controller": [],
    }
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "RUNTIME_NAMESPACE": FLUX_NS}
    for name, args in commands.items():
        argv = [
            str(flux_bin / name),
            *common,
            *args,
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-addr=127.0.0.1:{free_port()}",
        ]
        stage.spawn(name, argv, env)
    return Flux(cluster, storage_url)


def doc_health_check_exprs() -> dict[str, Any]:
    """The `healthCheckExprs:` snippet of docs/gitops.md, as a spec fragment."""
    doc = DOC.read_text()
    found = re.search(r"```yaml\n(  healthCheckExprs:\n.*?)```", doc, re.S)
    if found is None:
        raise TrialFailedError("docs/gitops.md has no healthCheckExprs snippet")
    fragment: dict[str, Any] = yaml.safe_load(found.group(1))
    return fragment


def commit_image(stage: Stage, flux: Flux, image: str, message: str, ok: bool) -> dict[str, Any]:
    """Commit the App with `image`, ask Flux to fetch it (as `flux reconcile source git` does), and wait for the
    Kustomization to be Ready (`ok`) or to fail its health check at that revision; return its Ready condition."""
    sha = stage.commit_image(image, message)
    flux.request_reconcile("gitrepository", "wharf")
    want = "True" if ok else "False"
    ready: dict[str, Any] = stage.expect(
        f"the Kustomization to be Ready={want} at {sha}",
        lambda: (
            flux.ready("kustomization", "wharf-apps").get("status") == want
            and sha in flux.attempted("kustomization", "wharf-apps")
            and flux.ready("kustomization", "wharf-apps")
        ),
        timeout=400,
    )
    return ready


def trial(stage: Stage) -> None:
    flux_bin = locate_built(BUILD_FLUX, "FLUX_BIN_DIR")  # scripts/build-flux.sh
    say(f"Flux: {flux_bin}")
    cluster, repo, registry = stage.cluster, stage.repo, stage.registry
    flux = start_flux(stage, flux_bin)
    say("source-controller and kustomize-controller run")

    source = next(d for d in yaml.safe_load_all((FLUX_DIR / "wharf.yaml").read_text()) if d["kind"] == "GitRepository")
    source["spec"]["url"] = repo.url
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(source))
    ready = stage.expect(
        "the GitRepository to be Ready",
        lambda: flux.ready("gitrepository", "wharf").get("status") == "True" and flux.ready("gitrepository", "wharf"),
    )
    say(f"step 1: GitRepository wharf Ready: {describe(ready)}")
    artifact = flux.get("gitrepository", "wharf")["status"]["artifact"]
    with urllib.request.urlopen(artifact["url"], timeout=30) as response:
        packed = response.read()
    with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as tar:
        crd = tar.getmember("deploy/helm/wharf/crds/app.yaml")
    if not crd.isfile():
        raise TrialFailedError(f"the artifact's deploy/helm/wharf/crds/app.yaml is not a regular file: {crd.type!r}")
    say(f"step 1: the artifact ({artifact['revision']}) carries deploy/helm/wharf/crds/app.yaml, {crd.size} bytes")

    # Step 2: the Kustomization applied before the App CRD exists (as when the HelmRelease has not installed the
    # chart yet) fails its dry run, and is retried after retryInterval once the CRD is there.
    cluster.kubectl("apply", "-f", str(FLUX_DIR / "apps.yaml"))
    no_crd = stage.expect(
        "the Kustomization to fail without the App CRD",
        lambda: (
            flux.ready("kustomization", "wharf-apps").get("status") == "False"
            and flux.ready("kustomization", "wharf-apps")
        ),
    )
    say(f"step 2: without the App CRD, Kustomization Ready: {describe(no_crd)}")
    # Step 3: the health check waits while the App cannot be Ready.
    registry.stop()
    say("registry stopped: the App cannot resolve its image until it is back")
    operator = stage.start_operator()
    crd_at = time.monotonic()
    say("the App CRD is installed and the wharf operator runs; no reconcile of the Kustomization is requested")
    app = stage.expect("the Kustomization to create the App", stage.app)
    labels = app["metadata"].get("labels", {})
    say(f"step 3: App {NAMESPACE}/{APP} created by Flux {time.monotonic() - crd_at:.0f} s later (labels {labels})")
    waiting = stage.expect(
        "the Kustomization to wait on the App's health",
        lambda: (
            stage.app_conditions().get("Reconciling", {}).get("status") == "True"
            and flux.ready("kustomization", "wharf-apps").get("status") == "Unknown"
            and flux.ready("kustomization", "wharf-apps")
        ),
    )
    say(f"step 3: App Reconciling: {describe(stage.app_conditions()['Reconciling'])}")
    say(f"step 3: Kustomization Ready: {describe(waiting)}")
    time.sleep(20)
    still = flux.ready("kustomization", "wharf-apps")
    if still.get("status") != "Unknown":
        raise TrialFailedError(f"the Kustomization stopped waiting while the App was not Ready: {describe(still)}")
    say(f"step 3: 20 s later, App Ready: {describe(stage.app_conditions()['Ready'])}")
    say(f"step 3: 20 s later, still waiting: {describe(still)}")
    registry.start()
    say("registry started again")
    ready_app = stage.expect(
        "the App to be Ready", lambda: stage.app_conditions().get("Ready", {}).get("status") == "True"
    )
    say(f"step 3: App Ready: {describe(stage.app_conditions()['Ready'])} ({ready_app})")
    done = stage.expect(
        "the Kustomization to be Ready",
        lambda: (
            flux.ready("kustomization", "wharf-apps").get("status") == "True"
            and flux.ready("kustomization", "wharf-apps")
        ),
    )
    app_ready_at = stage.app_conditions()["Ready"]["lastTransitionTime"]
    say(f"step 3: Kustomization Ready: {describe(done)} (at {done['lastTransitionTime']}; App Ready at {app_ready_at})")

    # Step 4: a commit naming an image that does not exist.
    broken = stage.broken_image
    failed = commit_image(stage, flux, broken, "hello: an image tag that does not exist", ok=False)
    conditions = stage.app_conditions()
    say(f"step 4: App Ready: {describe(conditions['Ready'])}")
    say(f"step 4: App Stalled: {describe(conditions['Stalled'])}")
    say(f"step 4: Kustomization Ready: {describe(failed)}")
    available = stage.available_instances()
    if available != 2:
        raise TrialFailedError(f"the running instances did not keep running: {APP}-web has {available} available")
    say(f"step 4: {APP}-web still has {available} instances available on the last good image")
    warning = [e for e in operator.app_events(NAMESPACE, APP) if e["type"] == "Warning"][-1]
    say(f"step 4: the App's Warning Event: {warning['reason']}: {warning['message']}")
    healed = commit_image(stage, flux, stage.image, "hello: the image back", ok=True)
    say(f"step 4: after a commit putting the image back, Kustomization Ready: {describe(healed)}")

    # Step 5: the healthCheckExprs docs/gitops.md gives, evaluated by the controller on the same two states.
    exprs = doc_health_check_exprs()
    cluster.kubectl(
        "patch", "kustomization", "wharf-apps", "-n", FLUX_NS, "--type=merge", "-p", json.dumps({"spec": exprs})
    )
    generation = flux.get("kustomization", "wharf-apps")["metadata"]["generation"]
    current = stage.expect(
        "the Kustomization with healthCheckExprs to be Ready",
        lambda: (
            flux.ready("kustomization", "wharf-apps").get("status") == "True"
            and flux.ready("kustomization", "wharf-apps").get("observedGeneration") == generation
            and flux.ready("kustomization", "wharf-apps")
        ),
    )
    say(f"step 5: with the docs' healthCheckExprs, Kustomization Ready: {describe(current)}")
    failed = commit_image(stage, flux, broken, "hello: an image tag that does not exist", ok=False)
    say(f"step 5: with the docs' healthCheckExprs and the missing image, Kustomization Ready: {describe(failed)}")
    healed = commit_image(stage, flux, stage.image, "hello: the image back", ok=True)
    say(f"step 5: image back, Kustomization Ready: {describe(healed)}")

    # Step 6: prune.
    cluster.kubectl("delete", "kustomization", "wharf-apps", "-n", FLUX_NS, "--wait=true", timeout=120)
    stage.expect("the App to be pruned", lambda: stage.app() is None)
    stage.expect("hello-web to be garbage-collected", lambda: stage.get("deployment", f"{APP}-web") is None)
    say("step 6: deleting the Kustomization deleted the App and, through owner references, its Deployment")


def main(argv: list[str] | None = None) -> int:
    return run_trial("try-flux", __doc__, ".run-flux", trial, argv)


if __name__ == "__main__":
    sys.exit(main())
