"""Argo CD for real: Argo CD's own controller syncs the Applications of deploy/gitops/argocd/ (scripts/try-argocd.sh).

Not part of the test command (Argo CD takes minutes to build on a cold machine): a trial a reader can run, whose
findings docs/gitops.md reports. On the set-up of harness.gitops_trial (the project's real control plane, a real
registry with the example App's image, a Git server holding this checkout's `deploy/`), it runs Argo CD v3.6.1
(scripts/build-argocd.sh) as processes, as its Deployments would run them: Redis (Debian's redis-server),
argocd-repo-server (plaintext gRPC; Helm from tests/cluster/build-binaries.sh, kustomize and git-verify-wrapper.sh
from scripts/build-argocd.sh on its PATH) and argocd-application-controller (namespace `argocd`, the control plane's
kubeconfig, ARGOCD_FAKE_IN_CLUSTER for the in-cluster destination, each resource's health persisted in the
Application's status so kubectl can read it). No argocd-server: it serves the UI and API; the `default` AppProject
it would create is applied here. The config is an install's (the module's manifests/base/config) with the App
health check added to argocd-cm as docs/gitops.md says, taken from the doc's snippet. The operator image is built by
scripts/build-image.sh and pushed to the registry, so the chart's Deployment has an image its (kwok, fake) node can
pull; the Apps are reconciled by the wharf operator run as a process (harness.fixtures_operator; a kwok pod runs
nothing, and unlike the Flux trial this one does not run the pod's container from the image).

Steps, each outcome printed:
1. the Apps Application applied first, before the App CRD exists (SkipDryRunOnMissingResource);
2. the chart Application (repoURL and image changed) syncs and is Healthy: the App CRD from the chart's crds/, the
   operator's Deployment available;
3. the Apps Application creates the App; while the App is not Ready (registry down: Reconciling=True) it is
   Progressing, and Healthy once the registry is back and the App Ready;
4. a commit with a tag that does not exist makes it Degraded (the App Stalled) while the instances keep running; a
   commit putting the image back makes it Healthy again;
5. `kubectl scale` of the App is left alone (ignoreDifferences), also when a commit changes something else in it;
6. deleting the chart Application (with Argo CD's resources finalizer, what `argocd app delete` does) removes the
   operator and keeps the CRD and the Apps;
7. deleting the Apps Application without the finalizer leaves the App; with it, the App is deleted.
Exit status 0 when every step held.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.fixtures_cluster import Cluster, locate_binaries, locate_built
from harness.fixtures_operator import ROOT, VERSION
from harness.gitops_trial import (
    APP,
    APP_RESOURCE,
    HELLO,
    NAMESPACE,
    Stage,
    TrialFailedError,
    apply_crds,
    build_operator_image,
    describe,
    on_stage,
    run_trial,
    say,
)
from harness.polling import poll
from harness.ports import free_port

ARGOCD_DIR = ROOT / "deploy" / "gitops" / "argocd"
DOC = ROOT / "docs" / "gitops.md"
BUILD_ARGOCD = ROOT / "scripts" / "build-argocd.sh"
ARGOCD_NS = "argocd"
FINALIZER = "resources-finalizer.argocd.argoproj.io"  # `argocd app delete` (cascade) sets it before deleting


def doc_argocd_cm() -> dict[str, Any]:
    """The argocd-cm ConfigMap of docs/gitops.md, as users copy it."""
    found = re.search(
        r"```yaml\n(apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n.*?)```", DOC.read_text(), re.S
    )
    if found is None:
        raise TrialFailedError("docs/gitops.md has no argocd-cm snippet")
    config: dict[str, Any] = yaml.safe_load(found.group(1))
    return config


def application(name: str, stage: Stage, **values: Any) -> dict[str, Any]:
    """deploy/gitops/argocd/NAME.yaml with only repoURL changed (and the chart's image values, when given)."""
    app: dict[str, Any] = yaml.safe_load((ARGOCD_DIR / f"{name}.yaml").read_text())
    app["spec"]["source"]["repoURL"] = stage.repo.url
    if values:
        app["spec"]["source"]["helm"]["valuesObject"].update(values)
    return app


@dataclass
class ArgoCD:
    stage: Stage

    def get(self, name: str) -> dict[str, Any]:
        return self.stage.get("applications.argoproj.io", name, ARGOCD_NS) or {}

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def health(self, name: str) -> str:
        return str((self.status(name).get("health") or {}).get("status", ""))

    def sync(self, name: str) -> str:
        return str((self.status(name).get("sync") or {}).get("status", ""))

    def revision(self, name: str) -> str:
        return str((self.status(name).get("sync") or {}).get("revision", ""))

    def operation(self, name: str) -> dict[str, Any]:
        return dict(self.status(name).get("operationState") or {})

    def resource_health(self, name: str, kind: str, resource: str) -> dict[str, Any]:
        for entry in self.status(name).get("resources", []):
            if entry.get("kind") == kind and entry.get("name") == resource:
                return dict(entry.get("health") or {})
        return {}

    def app_health(self) -> str:
        """The App's health as Argo CD judged it with the health check (status and message)."""
        health = self.resource_health("wharf-apps", "App", APP)
        return f"health {health.get('status')}: {health.get('message')}"

    def summary(self, name: str) -> str:
        status = self.status(name)
        sync = status.get("sync") or {}
        operation = status.get("operationState") or {}
        conditions = "; ".join(f"{c.get('type')}: {c.get('message')}" for c in status.get("conditions", []))
        return (
            f"sync {sync.get('status')} at {str(sync.get('revision', ''))[:12]}, "
            f"health {(status.get('health') or {}).get('status')}"
            + (f", last operation {operation.get('phase')}: {operation.get('message')}" if operation else "")
            + (f", conditions: {conditions}" if conditions else "")
        )

    def resources(self, name: str) -> str:
        return ", ".join(
            f"{r.get('kind')}/{r.get('name')} {r.get('status')}"
            + (f" {r['health'].get('status')}" if r.get("health") else "")
            for r in self.status(name).get("resources", [])
        )

    def seen(self, name: str, status: dict[str, Any] | None = None) -> str:
        """What `kubectl get application` shows, the health message (which resources, when not Healthy) and each
        such resource's own health message."""
        status = self.status(name) if status is None else status
        health = status.get("health") or {}
        unhealthy = [
            f"{r.get('kind')}/{r.get('name')}: {r['health'].get('status')} {r['health'].get('message')!r}"
            for r in status.get("resources", [])
            if r.get("health") and r["health"].get("status") != "Healthy"
        ]
        return (
            f"{(status.get('sync') or {}).get('status')} {health.get('status', '')}"
            + (f" ({health['message']})" if health.get("message") else "")
            + (f" [{'; '.join(unhealthy)}]" if unhealthy else "")
        )

    def watch(self, name: str, until: str, what: str, revision: str = "", timeout: float = 300) -> str:
        """Wait until the Application's health is `until` (and Synced, at `revision` when given), printing each
        state it passes through."""
        last = [""]

        def check() -> str | bool:
            status = self.status(name)
            now = self.seen(name, status)
            if now != last[0]:
                say(f"  {name}: {now}")
                last[0] = now
            sync = status.get("sync") or {}
            at = not revision or sync.get("revision") == revision
            healthy = (status.get("health") or {}).get("status") == until
            return at and sync.get("status") == "Synced" and healthy and self.summary(name)

        return str(self.stage.expect(what, check, timeout=timeout))

    def refresh(self, name: str) -> None:
        """What `argocd app get --refresh` does: the controller compares with git now, not at its next resync."""
        self.stage.cluster.kubectl(
            "annotate", "--overwrite", "-n", ARGOCD_NS, "application", name, "argocd.argoproj.io/refresh=normal"
        )


def start_argocd(stage: Stage, argocd_bin: Path, wharf_bin: Path) -> ArgoCD:
    cluster = stage.cluster
    apply_crds(cluster, argocd_bin / "crds", "applications.argoproj.io", "appprojects.argoproj.io")
    cluster.create_namespace(ARGOCD_NS, restricted=False)
    # What an install applies (manifests/base/config of the module: argocd-cm with its default
    # ignoreResourceUpdates, and empty argocd-cmd-params-cm, argocd-rbac-cm, argocd-secret; the processes take the
    # settings argocd-cmd-params-cm would give their Deployments as flags), then the health check added to argocd-cm
    # as docs/gitops.md says, and the `default` project argocd-server would create at start-up (it does not run).
    cluster.kubectl("apply", "-n", ARGOCD_NS, "-f", str(argocd_bin / "config"))
    cluster.kubectl(
        "patch",
        "configmap",
        "argocd-cm",
        "-n",
        ARGOCD_NS,
        "--type=merge",
        "-p",
        json.dumps({"data": doc_argocd_cm()["data"]}),
    )
    project = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": "default", "namespace": ARGOCD_NS},
        "spec": {
            "sourceRepos": ["*"],
            "destinations": [{"namespace": "*", "server": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(project))

    home = stage.workdir / "argocd"
    for sub in ("redis", "tmp", "home"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    redis = f"127.0.0.1:{free_port()}"
    repo_server = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "PATH": f"{argocd_bin}:{wharf_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home / "home"),
        "TMPDIR": str(home / "tmp"),
        "ARGOCD_GPG_ENABLED": "false",  # no GnuPG keyring set up (the Deployment mounts one)
        # The in-cluster destination (https://kubernetes.default.svc) from $KUBECONFIG instead of a pod's service
        # account, as Argo CD's own Procfile runs its components outside a cluster.
        "ARGOCD_FAKE_IN_CLUSTER": "true",
        "KUBECONFIG": str(cluster.kubeconfig),
    }
    stage.spawn(
        "redis",
        [
            *("redis-server", "--bind", "127.0.0.1", "--port", redis.rsplit(":", 1)[1]),
            *("--save", "", "--appendonly", "no", "--dir", str(home / "redis")),
        ],
        env,
    )
    if not poll(
        lambda: (
            subprocess.run(
                ["redis-cli", "-u", f"redis://{redis}", "ping"], capture_output=True, text=True
            ).stdout.strip()
            == "PONG"
        ),
        20,
        0.2,
    ):
        raise TrialFailedError(f"redis-server did not answer on {redis}:\n{stage.procs[-1].tail()}")
    common = ["--loglevel", "debug", "--logformat", "text", "--redis", redis]
    stage.spawn(
        "argocd-repo-server",
        [
            *(str(argocd_bin / "argocd-repo-server"), *common, "--disable-tls", "--client-ca-path="),
            *("--address", "127.0.0.1", "--port", repo_server.rsplit(":", 1)[1]),
            *("--metrics-address", "127.0.0.1", "--metrics-port", str(free_port())),
        ],
        env,
    )
    stage.spawn(
        "argocd-application-controller",
        [
            *(str(argocd_bin / "argocd-application-controller"), *common),
            *("--kubeconfig", str(cluster.kubeconfig), "--namespace", ARGOCD_NS),
            *("--repo-server", repo_server, "--repo-server-plaintext", "--metrics-port", str(free_port())),
            # Each resource's health (the App's message included) in the Application's status, where kubectl reads
            # it; by default (v3) it is kept only in the resource tree the UI and `argocd app get` read.
            "--persist-resource-health",
        ],
        env,
    )
    return ArgoCD(stage)


def instances(stage: Stage) -> Any:
    return ((stage.app() or {}).get("spec") or {}).get("manifest", {}).get("instances")


def delete_application(cluster: Cluster, name: str, cascade: bool) -> None:
    """`kubectl delete` the Application `name`; with `cascade`, first add Argo CD's resources finalizer (what
    `argocd app delete` does), so that Argo CD deletes what the Application deployed."""
    if cascade:
        finalizers = [{"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}]
        cluster.kubectl("patch", "application", name, "-n", ARGOCD_NS, "--type=json", "-p", json.dumps(finalizers))
    cluster.kubectl("delete", "application", name, "-n", ARGOCD_NS, "--wait=true", timeout=180)


def trial(stage: Stage) -> None:
    argocd_bin = locate_built(BUILD_ARGOCD, "ARGOCD_BIN_DIR")
    say(f"Argo CD: {argocd_bin}")
    repository, digest = f"{stage.registry.host}/wharf", build_operator_image(stage.registry)
    say(f"operator image {repository}:{VERSION}@{digest} (scripts/build-image.sh)")
    argo = start_argocd(stage, argocd_bin, locate_binaries())
    say("redis-server, argocd-repo-server and argocd-application-controller run")
    cluster = stage.cluster

    # Step 1: the Apps Application before the App CRD exists.
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(application("apps", stage)))
    applied = time.monotonic()
    first = stage.expect(
        "the Apps Application's first sync attempt to fail on the missing CRD",
        lambda: (
            "no matches for kind" in str(argo.operation("wharf-apps").get("message")) and argo.summary("wharf-apps")
        ),
        timeout=240,
    )
    say(f"step 1: Apps Application without the App CRD, {time.monotonic() - applied:.0f} s after applying: {first}")

    # Step 2: the chart.
    chart = application("wharf", stage, image={"repository": repository, "tag": VERSION, "digest": digest})
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(chart))
    applied = time.monotonic()
    healthy = argo.watch("wharf", "Healthy", "the chart Application to be Synced and Healthy", timeout=400)
    say(f"step 2: chart Application, {time.monotonic() - applied:.0f} s after applying: {healthy}")
    say(f"step 2: its resources: {argo.resources('wharf')}")
    crd = stage.get("crd", "apps.wharf.dev", None) or {}
    say(f"step 2: CRD apps.wharf.dev annotations {crd.get('metadata', {}).get('annotations')}")
    deployment = stage.get("deployment", "wharf", "wharf-system") or {}
    pods = json.loads(cluster.kubectl("get", "pods", "-n", "wharf-system", "-o", "json").stdout)["items"]
    say(
        f"step 2: Deployment wharf-system/wharf available {deployment.get('status', {}).get('availableReplicas')}, "
        f"pods {[(p['metadata']['name'], p['status'].get('phase'), p['spec']['containers'][0]['image']) for p in pods]}"
    )

    # Step 3: the Apps Application retries by itself; the App, not Ready while the registry is down, then Ready.
    created = poll(stage.app, 300, 1.0)
    if not created:
        say(f"step 3: the App is still not created 300 s later: {argo.summary('wharf-apps')}; requesting a sync")
        request_sync = {"operation": {"initiatedBy": {"username": "try-argocd"}, "sync": {}}}
        cluster.kubectl(
            "patch", "application", "wharf-apps", "-n", ARGOCD_NS, "--type=merge", "-p", json.dumps(request_sync)
        )
        created = stage.expect("the App to be created", stage.app)
    operation = argo.operation("wharf-apps")
    say(
        f"step 3: App {NAMESPACE}/{APP} created at {created['metadata']['creationTimestamp']}; the Apps "
        f"Application's operation: {operation.get('phase')}, retryCount {operation.get('retryCount')}, started "
        f"{operation.get('startedAt')}, finished {operation.get('finishedAt')}: {operation.get('message')}"
    )
    stage.expect("the App's health", lambda: argo.resource_health("wharf-apps", "App", APP).get("status"))
    say(f"step 3: no operator running yet: {argo.seen('wharf-apps')}; App {argo.app_health()}")
    stage.registry.stop()
    say("registry stopped: the App cannot resolve its image until it is back")
    stage.start_operator()
    say("the wharf operator runs (as a process)")
    stage.expect(
        "the App to be Reconciling", lambda: stage.app_conditions().get("Reconciling", {}).get("status") == "True"
    )
    say(f"step 3: App Ready: {describe(stage.app_conditions()['Ready'])}")
    say(f"step 3: App Reconciling: {describe(stage.app_conditions()['Reconciling'])}")
    time.sleep(10)
    say(f"step 3: 10 s later, Apps Application: {argo.seen('wharf-apps')}; App {argo.app_health()}")
    argo.refresh("wharf-apps")
    stage.expect(
        "the App's health to carry the operator's message after a refresh",
        lambda: (
            argo.resource_health("wharf-apps", "App", APP).get("message")
            == stage.app_conditions().get("Ready", {}).get("message")
        ),
        timeout=60,
    )
    say(f"step 3: after a refresh: {argo.seen('wharf-apps')}; App {argo.app_health()}")
    time.sleep(20)
    if argo.health("wharf-apps") != "Progressing":
        raise TrialFailedError(f"the Application stopped being Progressing: {argo.summary('wharf-apps')}")
    say(f"step 3: 20 s later, still {argo.seen('wharf-apps')}")
    stage.registry.start()
    say("registry started again")
    stage.expect("the App to be Ready", lambda: stage.app_conditions().get("Ready", {}).get("status") == "True")
    ready_at = time.monotonic()
    say(f"step 3: App Ready: {describe(stage.app_conditions()['Ready'])}")
    healthy = argo.watch("wharf-apps", "Healthy", "the Apps Application to be Healthy")
    say(f"step 3: {time.monotonic() - ready_at:.0f} s later, Apps Application: {healthy}; App {argo.app_health()}")

    # Step 4: a tag that does not exist, then the image back.
    for image, message, want in (
        (stage.broken_image, "hello: an image tag that does not exist", "Degraded"),
        (stage.image, "hello: the image back", "Healthy"),
    ):
        sha = stage.commit_image(image, message)
        committed = time.monotonic()
        argo.refresh("wharf-apps")
        seen = argo.watch("wharf-apps", want, f"the Apps Application to be {want} at {sha}", revision=sha)
        say(f"step 4: commit {sha[:12]} ({message}), {time.monotonic() - committed:.0f} s later: {seen}")
        say(f"step 4: App {argo.app_health()}")
        conditions = stage.app_conditions()
        say(f"step 4: App Ready: {describe(conditions['Ready'])}; Stalled: {describe(conditions.get('Stalled', {}))}")
        available = stage.available_instances()
        if available != 2:
            raise TrialFailedError(f"the running instances did not keep running: {APP}-web has {available} available")
        say(f"step 4: {APP}-web has {available} instances available")

    # Step 5: instances left to `kubectl scale` (ignoreDifferences on /spec/manifest/instances), then a commit
    # changing something else in the App.
    cluster.kubectl("scale", APP_RESOURCE, APP, "-n", NAMESPACE, "--replicas=3")
    stage.expect(f"{APP}-web to have 3 instances", lambda: stage.available_instances() == 3)
    time.sleep(15)
    argo.refresh("wharf-apps")
    time.sleep(5)
    say(
        f"step 5: `kubectl scale --replicas=3`, 20 s and a refresh later: App instances {instances(stage)}, "
        f"{APP}-web {stage.available_instances()} available; Apps Application {argo.seen('wharf-apps')}"
    )
    hello = stage.repo.work / HELLO
    hello.write_text(hello.read_text().replace(f"  name: {APP}\n", f"  name: {APP}\n  labels:\n    team: web\n"))
    sha = stage.repo.commit("hello: a label")
    argo.refresh("wharf-apps")
    argo.watch("wharf-apps", "Healthy", f"the Apps Application to be Healthy at {sha}", revision=sha)
    stage.expect("the label", lambda: (stage.app() or {})["metadata"].get("labels", {}).get("team") == "web")
    time.sleep(5)
    say(
        f"step 5: commit {sha[:12]} (a label on the App) synced: App instances {instances(stage)}, "
        f"{APP}-web {stage.available_instances()} available; Apps Application {argo.seen('wharf-apps')}"
    )
    if instances(stage) != 3:
        raise TrialFailedError("the sync of another change put the instances in git back")

    running = stage.available_instances()
    # Step 6: uninstall the operator through Argo CD.
    delete_application(cluster, "wharf", cascade=True)
    stage.expect(
        "the operator Deployment to be deleted", lambda: stage.get("deployment", "wharf", "wharf-system") is None
    )
    kept = stage.get("crd", "apps.wharf.dev", None)
    say(
        f"step 6: chart Application deleted with {FINALIZER}: Deployment wharf-system/wharf gone, "
        f"CRD apps.wharf.dev {'kept' if kept else 'DELETED'}, App {'kept' if stage.app() else 'DELETED'}, "
        f"{APP}-web {stage.available_instances()} available"
    )
    if kept is None or stage.app() is None or stage.available_instances() != running:
        raise TrialFailedError("uninstalling the operator took the CRD, the App or its instances with it")

    # Step 7: deleting the Apps Application, without and with the finalizer.
    delete_application(cluster, "wharf-apps", cascade=False)
    time.sleep(10)
    say(f"step 7: Apps Application deleted without {FINALIZER}: App {'kept' if stage.app() else 'DELETED'}")
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(application("apps", stage)))
    stage.expect(
        "the Apps Application to be Healthy again",
        lambda: argo.health("wharf-apps") == "Healthy" and argo.summary("wharf-apps"),
    )
    delete_application(cluster, "wharf-apps", cascade=True)
    stage.expect("the App to be deleted", lambda: stage.app() is None)
    stage.expect(f"{APP}-web to be garbage-collected", lambda: stage.get("deployment", f"{APP}-web") is None)
    say(f"step 7: with {FINALIZER}: the App was deleted and, through owner references, its Deployment")
    say("every step held")


def main(argv: list[str] | None = None) -> int:
    return run_trial("try-argocd", __doc__, ".run-argocd", on_stage(trial), argv)


if __name__ == "__main__":
    sys.exit(main())
