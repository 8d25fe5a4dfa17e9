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

import argparse
import io
import json
import os
import re
import shutil
import signal
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

from harness.certs import CA
from harness.controlplane import ControlPlane, Proc, terminate_groups
from harness.fixtures_cluster import Cluster, locate_binaries, locate_built
from harness.fixtures_operator import ROOT, Operator, _start, _stop
from harness.git_server import GitRepo, GitServer
from harness.images import STANDARD_IMAGES, push_image
from harness.polling import poll
from harness.ports import free_port
from harness.pull_agent import PullAgent
from harness.registry import RegistryServer

FLUX_DIR = ROOT / "deploy" / "gitops" / "flux"
APPS_DIR = ROOT / "deploy" / "gitops" / "apps"
DOC = ROOT / "docs" / "gitops.md"
BUILD_FLUX = ROOT / "scripts" / "build-flux.sh"
IMAGE = "docker.io/nginxinc/nginx-unprivileged:1.27"  # the image deploy/gitops/apps/hello.yaml names
NAMESPACE = "default"  # the Kustomization's targetNamespace
FLUX_NS = "flux-system"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class TrialFailedError(AssertionError):
    pass


@dataclass
class Flux:
    """The two controllers, run as processes against the control plane (as their Deployments would run them)."""

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
        for proc in self.procs:
            if not proc.alive():
                raise TrialFailedError(f"{proc.name} exited:\n{proc.tail()}")

    def stop(self) -> None:
        terminate_groups([p.popen.pid for p in self.procs])


def start_flux(cluster: Cluster, flux_bin: Path, workdir: Path) -> Flux:
    cluster.kubectl("apply", "--server-side", "-f", str(flux_bin / "crds"))
    for crd in ("gitrepositories.source.toolkit.fluxcd.io", "kustomizations.kustomize.toolkit.fluxcd.io"):
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
    def check() -> Any:
        flux.check_alive()
        return predicate()

    last = poll(check, timeout, 1.0)
    if not last:
        raise TrialFailedError(
            f"timed out after {timeout}s waiting for {what}\n"
            + "\n".join(f"--- {p.name} ---\n{p.tail(30)}" for p in flux.procs)
            + (f"\n--- operator ---\n{operator.log_tail(30)}" if operator else "")
        )
    return last


def app_conditions(operator: Operator) -> dict[str, dict[str, Any]]:
    app = operator.get("app", "hello", NAMESPACE) or {}
    return {c["type"]: c for c in (app.get("status") or {}).get("conditions", [])}


def describe(condition: dict[str, Any]) -> str:
    return f"{condition.get('status')} {condition.get('reason')}: {condition.get('message')}"


def set_image(repo: GitRepo, image: str) -> None:
    hello = repo.work / "deploy" / "gitops" / "apps" / "hello.yaml"
    text = hello.read_text()
    line = next(x for x in text.splitlines() if x.strip().startswith("dockerImage:"))
    hello.write_text(text.replace(line, f"  dockerImage: {image}"))


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
    return expect(
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


def trial(workdir: Path) -> None:
    bin_dir = locate_binaries()
    flux_bin = locate_built(BUILD_FLUX, "FLUX_BIN_DIR")  # scripts/build-flux.sh
    say(f"binaries: {bin_dir}; Flux: {flux_bin}")
    control_plane = ControlPlane(workdir / "cluster", bin_dir)
    ca = CA(workdir / "ca")
    registry = RegistryServer("plain", ca=ca, workdir=workdir / "registry")
    git_server = GitServer(workdir / "git")
    agent: PullAgent | None = None
    operator: Operator | None = None
    flux: Flux | None = None
    try:
        control_plane.start()
        agent = PullAgent(control_plane.kubeconfig).start()
        cluster = Cluster(control_plane, agent)
        registry.start()
        repository, tag = IMAGE.split("/", 1)[1].rsplit(":", 1)
        digest = push_image(registry, repository, tag, STANDARD_IMAGES["single-port"])
        image = f"{registry.host}/{repository}:{tag}"
        say(f"registry {registry.host} holds {image} ({digest})")

        repo = GitRepo(git_server, "wharf", workdir / "checkout")
        repo.copy_in(ROOT / "deploy", "deploy")
        set_image(repo, image)
        first = repo.commit("deploy/ of this checkout; the App's image from the local registry")
        say(f"git: {repo.url} branch main at {first}")

        flux = start_flux(cluster, flux_bin, workdir / "flux")
        say("source-controller and kustomize-controller run")

        source = next(
            d for d in yaml.safe_load_all((FLUX_DIR / "wharf.yaml").read_text()) if d["kind"] == "GitRepository"
        )
        source["spec"]["url"] = repo.url
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(source))
        ready = expect(
            "the GitRepository to be Ready",
            lambda: (
                flux.ready("gitrepository", "wharf").get("status") == "True" and flux.ready("gitrepository", "wharf")
            ),
            flux,
            operator,
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
        # chart yet) fails its dry run, and is retried after retryInterval once the CRD is there.
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
        # Step 3: the health check waits while the App cannot be Ready.
        registry.stop()
        say("registry stopped: the App cannot resolve its image until it is back")
        operator = _start(cluster, [registry], ca.cert, workdir)
        crd_at = time.monotonic()
        say("the App CRD is installed and the wharf operator runs; no reconcile of the Kustomization is requested")
        app = expect(
            "the Kustomization to create the App", lambda: operator.get("app", "hello", NAMESPACE), flux, operator
        )
        labels = app["metadata"].get("labels", {})
        say(f"step 3: App {NAMESPACE}/hello created by Flux {time.monotonic() - crd_at:.0f} s later (labels {labels})")
        waiting = expect(
            "the Kustomization to wait on the App's health",
            lambda: (
                app_conditions(operator).get("Reconciling", {}).get("status") == "True"
                and flux.ready("kustomization", "wharf-apps").get("status") == "Unknown"
                and flux.ready("kustomization", "wharf-apps")
            ),
            flux,
            operator,
        )
        say(f"step 3: App Reconciling: {describe(app_conditions(operator)['Reconciling'])}")
        say(f"step 3: Kustomization Ready: {describe(waiting)}")
        time.sleep(20)
        still = flux.ready("kustomization", "wharf-apps")
        if still.get("status") != "Unknown":
            raise TrialFailedError(f"the Kustomization stopped waiting while the App was not Ready: {describe(still)}")
        say(f"step 3: 20 s later, App Ready: {describe(app_conditions(operator)['Ready'])}")
        say(f"step 3: 20 s later, still waiting: {describe(still)}")
        registry.start()
        say("registry started again")
        ready_app = expect(
            "the App to be Ready",
            lambda: app_conditions(operator).get("Ready", {}).get("status") == "True",
            flux,
            operator,
        )
        say(f"step 3: App Ready: {describe(app_conditions(operator)['Ready'])} ({ready_app})")
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
            f"step 3: Kustomization Ready: {describe(done)} "
            f"(at {done['lastTransitionTime']}; App Ready at {app_ready_at})"
        )

        # Step 4: a commit naming an image that does not exist.
        broken = f"{registry.host}/{repository}:does-not-exist"
        failed = commit_image(repo, flux, operator, broken, "hello: an image tag that does not exist", ok=False)
        conditions = app_conditions(operator)
        say(f"step 4: App Ready: {describe(conditions['Ready'])}")
        say(f"step 4: App Stalled: {describe(conditions['Stalled'])}")
        say(f"step 4: Kustomization Ready: {describe(failed)}")
        deployment = operator.get("deployment", "hello-web", NAMESPACE) or {}
        available = (deployment.get("status") or {}).get("availableReplicas", 0)
        if available != 2:
            raise TrialFailedError(f"the running instances did not keep running: hello-web has {available} available")
        say(f"step 4: hello-web still has {available} instances available on the last good image")
        warning = [e for e in operator.app_events(NAMESPACE, "hello") if e["type"] == "Warning"][-1]
        say(f"step 4: the App's Warning Event: {warning['reason']}: {warning['message']}")
        healed = commit_image(repo, flux, operator, image, "hello: the image back", ok=True)
        say(f"step 4: after a commit putting the image back, Kustomization Ready: {describe(healed)}")

        # Step 5: the healthCheckExprs docs/gitops.md gives, evaluated by the controller on the same two states.
        exprs = doc_health_check_exprs()
        cluster.kubectl(
            "patch", "kustomization", "wharf-apps", "-n", FLUX_NS, "--type=merge", "-p", json.dumps({"spec": exprs})
        )
        generation = flux.get("kustomization", "wharf-apps")["metadata"]["generation"]
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
        say(f"step 5: with the docs' healthCheckExprs, Kustomization Ready: {describe(current)}")
        failed = commit_image(repo, flux, operator, broken, "hello: an image tag that does not exist", ok=False)
        say(f"step 5: with the docs' healthCheckExprs and the missing image, Kustomization Ready: {describe(failed)}")
        healed = commit_image(repo, flux, operator, image, "hello: the image back", ok=True)
        say(f"step 5: image back, Kustomization Ready: {describe(healed)}")

        # Step 6: prune.
        cluster.kubectl("delete", "kustomization", "wharf-apps", "-n", FLUX_NS, "--wait=true", timeout=120)
        expect("the App to be pruned", lambda: operator.get("app", "hello", NAMESPACE) is None, flux, operator)
        expect(
            "hello-web to be garbage-collected",
            lambda: operator.get("deployment", "hello-web", NAMESPACE) is None,
            flux,
            operator,
        )
        say("step 6: deleting the Kustomization deleted the App and, through owner references, its Deployment")
        say("every step held")
    finally:
        if flux is not None:
            flux.stop()
        if operator is not None:
            _stop(operator)
        if agent is not None:
            agent.stop()
        git_server.close()
        registry.close()
        control_plane.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="try-flux", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--dir", type=Path, default=ROOT / ".run-flux", help="work directory (logs, kubeconfig)")
    args = parser.parse_args(argv)
    workdir: Path = args.dir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        trial(workdir)
    except TrialFailedError as failure:
        say(f"FAILED: {failure}")
        say(f"logs under {workdir}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
