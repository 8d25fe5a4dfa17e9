"""The README's run command: wharf on an embedded default, on one machine, without Docker.

Starts a real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok fake node) with the
test-only pull agent, a real Registry V2 server (plain HTTP on loopback) holding an example image, installs the
CRD, runs the operator (`wharf run`), applies `examples/minimal-app.yaml` (its image pointed at the local
registry) and waits for the App to be Ready. Then it prints how to look with kubectl and stays up until Ctrl-C;
`--check` stops everything once the App is Ready (CI uses it to prove the command works).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import yaml

from harness.certs import CA
from harness.controlplane import ControlPlane
from harness.fixtures_cluster import Cluster, locate_binaries
from harness.fixtures_operator import ROOT, Operator, _start, _stop
from harness.images import ImageSpec, push_image
from harness.pull_agent import PullAgent
from harness.registry import RegistryServer

EXAMPLE = ROOT / "examples" / "minimal-app.yaml"
EXAMPLE_IMAGE = ImageSpec(
    exposed_ports=["9000/tcp", "8080/tcp"], user="1001", cmd=["/app/server"], env=["GREETING=hello"]
)


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
    try:
        control_plane.start()
        agent = PullAgent(control_plane.kubeconfig).start()
        cluster = Cluster(control_plane, agent)
        registry.start()
        digest = push_image(registry, "examples/hello", "1", EXAMPLE_IMAGE)
        operator = _start(cluster, [registry], ca.cert, workdir)
        app = yaml.safe_load(EXAMPLE.read_text())
        app["spec"]["dockerImage"] = f"{registry.host}/examples/hello:1"
        namespace = "demo"
        cluster.create_namespace(namespace)
        app["metadata"]["namespace"] = namespace
        operator.apply(app)
        name = app["metadata"]["name"]
        operator.wait_for(
            "the example App to be Ready",
            lambda: operator.condition(name, namespace).get("status") == "True",
            timeout=120,
        )
        kubectl = f"{bin_dir}/kubectl --kubeconfig {control_plane.kubeconfig}"
        print(cluster.kubectl("get", "apps,deployments,services,pods", "-n", namespace).stdout)
        elapsed = time.monotonic() - started
        print(
            f"""wharf is up in {elapsed:.0f}s: the example App {name} is Ready (image digest {digest}).
Look at it:
  {kubectl} get apps -n {namespace} -o wide
  {kubectl} describe app {name} -n {namespace}
  {kubectl} get deployment {name}-web -n {namespace} -o yaml
Registry: http://{registry.host}   operator log: {operator.log_file}
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
        registry.close()
        control_plane.stop()


if __name__ == "__main__":
    sys.exit(main())
