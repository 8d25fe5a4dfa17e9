"""What the GitOps trials (harness.flux: scripts/try-flux.sh; harness.argocd: scripts/try-argocd.sh) share.

A trial is a program a reader runs by hand, not a test of the test command; its findings are in docs/gitops.md.
`staged(workdir)` starts the project's real control plane (etcd, kube-apiserver, controller-manager, scheduler, the
kwok fake node, the pull agent), a real registry holding the image deploy/gitops/apps/hello.yaml names (same
repository and tag, the registry's host), and a Git server (`git http-backend` over HTTP) holding this checkout's
`deploy/` folder with one change: the App's image points at that registry. The GitOps tool's processes are started
with `Stage.spawn`; the wharf operator, as a process, with `Stage.start_operator`; everything is stopped on the
way out. `run_trial` is the command line both trials have (`on_stage` runs a trial on that set-up).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.certs import CA
from harness.controlplane import ControlPlane, Proc, terminate_groups
from harness.fixtures_cluster import Cluster, locate_binaries
from harness.fixtures_operator import ROOT, Operator, _start, _stop, push_operator_image
from harness.git_server import GitRepo, GitServer
from harness.images import STANDARD_IMAGES, push_image
from harness.polling import poll
from harness.pull_agent import PullAgent
from harness.registry import RegistryServer

IMAGE = "docker.io/nginxinc/nginx-unprivileged:1.27"  # the image deploy/gitops/apps/hello.yaml names
APP = "hello"  # the App deploy/gitops/apps holds
NAMESPACE = "default"  # where both tools put it (Kustomization targetNamespace, Application destination)
APP_RESOURCE = "apps.wharf.dev"  # not `app`: Argo CD's Application CRD takes the short names app and apps
HELLO = Path("deploy") / "gitops" / "apps" / "hello.yaml"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class TrialFailedError(AssertionError):
    pass


def describe(condition: Mapping[str, Any]) -> str:
    return f"{condition.get('status')} {condition.get('reason')}: {condition.get('message')}"


def set_image(repo: GitRepo, image: str) -> None:
    """Point the App in `repo`'s work tree at `image` (not committed)."""
    hello = repo.work / HELLO
    text = hello.read_text()
    line = next(x for x in text.splitlines() if x.strip().startswith("dockerImage:"))
    hello.write_text(text.replace(line, f"  dockerImage: {image}"))


def build_operator_image(registry: RegistryServer) -> str:
    """harness.fixtures_operator.push_operator_image, its failure a failed step of the trial."""
    try:
        return push_operator_image(registry)
    except AssertionError as error:
        raise TrialFailedError(str(error)) from error


def apply_crds(cluster: Cluster, folder: Path, *names: str) -> None:
    """Apply the CRDs in `folder` (server-side: some are too large for the last-applied annotation) and wait until
    each of `names` is Established."""
    cluster.kubectl("apply", "--server-side", "-f", str(folder))
    for name in names:
        # `kubectl wait` fails at once on a CRD whose status has no conditions yet.
        def established(crd: str = name) -> bool:
            wait = ("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=10s")
            return cluster.kubectl(*wait, check=False).returncode == 0

        if not poll(established, 60, 0.5):
            raise TrialFailedError(f"CRD {name} not Established 60 s after it was applied")


def check_alive(procs: list[Proc]) -> None:
    """Fail the trial if one of the GitOps tool's processes has exited."""
    for proc in procs:
        if not proc.alive():
            raise TrialFailedError(f"{proc.name} exited:\n{proc.tail()}")


def expect_alive(
    what: str, predicate: Callable[[], Any], procs: list[Proc], operator: Operator | None, timeout: float = 180
) -> Any:
    """Poll `predicate` until it is truthy, `procs` still alive; fail with their logs and the operator's."""

    def check() -> Any:
        check_alive(procs)
        return predicate()

    last = poll(check, timeout, 1.0)
    if not last:
        raise TrialFailedError(
            f"timed out after {timeout}s waiting for {what}\n"
            + "\n".join(f"--- {p.name} ---\n{p.tail(30)}" for p in procs)
            + (f"\n--- operator ---\n{operator.log_tail(30)}" if operator else "")
        )
    return last


@dataclass
class Stage:
    """The running set-up of a trial: cluster, registry, the Git repository, and what runs against them."""

    workdir: Path
    cluster: Cluster
    ca: CA
    registry: RegistryServer
    repo: GitRepo
    image: str  # IMAGE, from the local registry
    procs: list[Proc] = field(default_factory=list)  # the GitOps tool's processes
    operator: Operator | None = None

    @property
    def broken_image(self) -> str:
        """The App's image with a tag the registry does not have."""
        return self.image.rsplit(":", 1)[0] + ":does-not-exist"

    def spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> Proc:
        """Start `argv` in a session of its own, its output in logs/NAME.log; stopped when the trial ends."""
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{name}.log"
        popen = subprocess.Popen(argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def start_operator(self) -> Operator:
        """The wharf operator as a process (harness.fixtures_operator), trusting the registry; applies crds/."""
        self.operator = _start(self.cluster, [self.registry], self.ca.cert, self.workdir)
        return self.operator

    def expect(self, what: str, predicate: Callable[[], Any], timeout: float = 180) -> Any:
        """Poll `predicate` until it is truthy (the tool's processes still alive); fail with their logs."""
        return expect_alive(what, predicate, self.procs, self.operator, timeout)

    def get(self, kind: str, name: str, namespace: str | None = NAMESPACE) -> dict[str, Any] | None:
        where = ["-n", namespace] if namespace else []
        out = self.cluster.kubectl("get", kind, name, *where, "-o", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def app(self) -> dict[str, Any] | None:
        return self.get(APP_RESOURCE, APP)

    def app_conditions(self) -> dict[str, dict[str, Any]]:
        return {c["type"]: c for c in ((self.app() or {}).get("status") or {}).get("conditions", [])}

    def set_image(self, image: str) -> None:
        """Point the App in the work tree at `image` (not committed)."""
        set_image(self.repo, image)

    def commit_image(self, image: str, message: str) -> str:
        """Commit and push the App with `image`; return the commit."""
        self.set_image(image)
        return self.repo.commit(message)

    def available_instances(self) -> int:
        deployment = self.get("deployment", f"{APP}-web") or {}
        return int((deployment.get("status") or {}).get("availableReplicas", 0))


@contextmanager
def staged(workdir: Path) -> Iterator[Stage]:
    """The control plane, the registry with the App's image, the Git repository with deploy/; torn down after."""
    bin_dir = locate_binaries()
    say(f"binaries: {bin_dir}")
    control_plane = ControlPlane(workdir / "cluster", bin_dir)
    ca = CA(workdir / "ca")
    registry = RegistryServer("plain", ca=ca, workdir=workdir / "registry")
    git_server = GitServer(workdir / "git")
    agent: PullAgent | None = None
    stage: Stage | None = None
    try:
        control_plane.start()
        agent = PullAgent(control_plane.kubeconfig).start()
        cluster = Cluster(control_plane, agent)
        registry.start()
        cluster.trust_registry(registry)
        repository, tag = IMAGE.split("/", 1)[1].rsplit(":", 1)
        digest = push_image(registry, repository, tag, STANDARD_IMAGES["single-port"])
        image = f"{registry.host}/{repository}:{tag}"
        say(f"registry {registry.host} holds {image} ({digest})")
        repo = GitRepo(git_server, "wharf", workdir / "checkout")
        repo.copy_in(ROOT / "deploy", "deploy")
        stage = Stage(workdir, cluster, ca, registry, repo, image)
        stage.set_image(image)
        first = repo.commit("deploy/ of this checkout; the App's image from the local registry")
        say(f"git: {repo.url} branch main at {first}")
        yield stage
    finally:
        if stage is not None:
            terminate_groups([p.popen.pid for p in stage.procs])
            if stage.operator is not None:
                _stop(stage.operator)
        if agent is not None:
            agent.stop()
        git_server.close()
        registry.close()
        control_plane.stop()


def on_stage(trial: Callable[[Stage], None]) -> Callable[[Path], None]:
    """`trial` run on the set-up of `staged` in the work directory it is given."""

    def run(workdir: Path) -> None:
        with staged(workdir) as stage:
            trial(stage)

    return run


def run_trial(
    prog: str, doc: str | None, default_dir: str, trial: Callable[[Path], None], argv: list[str] | None
) -> int:
    """The trials' command line: `--dir` (default ROOT/default_dir, emptied first), then `trial(dir)`; exit status 0
    when it returns, 1 (with the failure and where the logs are) when it raises TrialFailedError."""
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dir", type=Path, default=ROOT / default_dir, help="work directory (logs, kubeconfig)")
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
