"""The README's run command: wharf on an embedded default, on one machine, without Docker.

Starts a real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok fake node) with the
test-only pull agent, a real node beside it (harness.node: kubelet + containerd + runc, CNI, kube-proxy), a real
Registry V2 server (plain HTTP on loopback) holding an example image that really serves HTTP (busybox httpd),
installs the CRD, runs the operator (`wharf run`), applies `examples/minimal-app.yaml` (its image pointed at the
local registry) in namespace `demo`, which the apiserver places on the real node, and waits for the App to be
Ready. Then it prints how to look with kubectl and how to curl the App through a port-forward, and stays up until
Ctrl-C; `--check` does that port-forward and curl itself, then stops everything (CI uses it to prove the command
works).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import yaml

from harness.certs import CA
from harness.controlplane import ControlPlane
from harness.fixtures_cluster import Cluster, locate_binaries
from harness.fixtures_operator import ROOT, Operator, _start, _stop
from harness.images import DEFAULT_PATH, RUNNABLE_IMAGES, push_image
from harness.node import RealNode, namespace_annotations
from harness.polling import poll
from harness.ports import free_port
from harness.pull_agent import PullAgent
from harness.registry import RegistryServer

EXAMPLE = ROOT / "examples" / "minimal-app.yaml"
EXAMPLE_IMAGE = replace(RUNNABLE_IMAGES["web"], env=[DEFAULT_PATH, "GREETING=hello"])
EXAMPLE_ANSWER = "hello from a wharf test image\n"


def port_forward_answers(kubectl: list[str], namespace: str, service: str, port: int) -> str:
    """`kubectl port-forward svc/SERVICE LOCAL:PORT` and one GET through it: what a new user does to see the App."""
    local = free_port()
    forward = subprocess.Popen(
        [*kubectl, "port-forward", "-n", namespace, f"svc/{service}", f"{local}:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def get() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=3) as r:
                    return str(r.read().decode())
            except OSError:
                return ""

        body = poll(get, 30, 0.5)
        if not body:
            forward.terminate()
            out = forward.communicate(timeout=10)[0].decode(errors="replace")
            raise RuntimeError(f"nothing answered through kubectl port-forward to svc/{service}:\n{out}")
        return body
    finally:
        forward.terminate()
        forward.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run-local", description=__doc__)
    parser.add_argument("--dir", type=Path, default=ROOT / ".run", help="work directory (logs, kubeconfig)")
    parser.add_argument("--check", action="store_true", help="exit once the example App is Ready")
    args = parser.parse_args(argv)
    workdir: Path = args.dir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)  # every run starts from an empty cluster and registry
    workdir.mkdir(parents=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    started = time.monotonic()
    print("building or locating the control-plane binaries (a cold build takes many minutes)...", flush=True)
    bin_dir = locate_binaries()
    control_plane = ControlPlane(workdir / "cluster", bin_dir)
    ca = CA(workdir / "ca")
    registry = RegistryServer("plain", ca=ca, workdir=workdir / "registry")
    agent: PullAgent | None = None
    operator: Operator | None = None
    node: RealNode | None = None
    try:
        control_plane.start()
        agent = PullAgent(control_plane.kubeconfig).start()
        cluster = Cluster(control_plane, agent)
        print("starting the real node (kubelet + containerd)...", flush=True)
        node = RealNode(control_plane, workdir / "node").start()
        cluster.add_real_node(node)
        registry.start()
        digest = push_image(registry, "examples/hello", "1", EXAMPLE_IMAGE)
        operator = _start(cluster, [registry], ca.cert, workdir)
        app = yaml.safe_load(EXAMPLE.read_text())
        app["spec"]["dockerImage"] = f"{registry.host}/examples/hello:1"
        namespace = "demo"
        cluster.create_namespace(namespace, annotations=namespace_annotations())  # its pods go to the real node
        app["metadata"]["namespace"] = namespace
        operator.apply(app)
        name = app["metadata"]["name"]
        operator.wait_for(
            "the example App to be Ready",
            lambda: operator.condition(name, namespace).get("status") == "True",
            timeout=120,
        )
        kubectl = f"{bin_dir}/kubectl --kubeconfig {control_plane.kubeconfig}"
        print(cluster.kubectl("get", "apps,deployments,services,pods", "-n", namespace, "-o", "wide").stdout)
        port = operator.get("app", name, namespace)["status"]["port"]  # type: ignore[index]
        answer = port_forward_answers(kubectl.split(), namespace, name, port)
        if answer != EXAMPLE_ANSWER:
            raise RuntimeError(f"the example App answered {answer!r} through a port-forward, not {EXAMPLE_ANSWER!r}")
        elapsed = time.monotonic() - started
        print(
            f"""wharf is up in {elapsed:.0f}s: the example App {name} is Ready (image digest {digest}) and runs on the
real node {node.name}; it answered through a port-forward: {answer.strip()!r}.
Look at it:
  {kubectl} get apps -n {namespace} -o wide
  {kubectl} describe app {name} -n {namespace}
  {kubectl} logs -n {namespace} deployment/{name}-web
Curl it (in another shell):
  {kubectl} port-forward -n {namespace} svc/{name} 8080:{port}
  curl http://127.0.0.1:8080/
Registry: http://{registry.host}   operator log: {operator.log_file}   node logs: {control_plane.workdir / "logs"}
""",
            flush=True,
        )
        if not args.check:
            print("Ctrl-C stops everything.", flush=True)
            stop.wait()
        return 0
    finally:
        if operator is not None:
            _stop(operator)
        if agent is not None:
            agent.stop()
        if node is not None:
            node.stop()
        registry.close()
        control_plane.stop()


if __name__ == "__main__":
    sys.exit(main())
