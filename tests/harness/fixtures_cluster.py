"""pytest plugin: a real control plane (+ the test-only pull agent) for the whole session.

Fixtures:
- `cluster` (session): a `Cluster` (see below). Binaries come from `$WHARF_BIN_DIR` or from
  `tests/cluster/build-binaries.sh` (cached under ~/.cache/wharf; a cold build takes many minutes).
- `namespace` (function): a fresh `restricted` namespace name, deleted after the test.
- `gateway_api` (module): the Gateway API's standard-channel CRDs (GatewayClass, Gateway, HTTPRoute, as
  build-binaries.sh fetched them into `$WHARF_BIN_DIR/gateway-api`) installed for the tests of one module, and
  deleted after them: other tests rely on a cluster without the Gateway API (an HTTPRoute refused, S11).

Registries: the pull agent reaches a registry only as a configured node would. Call
`cluster.trust_registry(server)` (a `harness.registry.RegistryServer`: its CA if TLS, else insecure) before
expecting pods on that registry's images to run.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client, config

from harness.controlplane import ControlPlane
from harness.pull_agent import PullAgent

if TYPE_CHECKING:
    from harness.node import RealNode

BUILD_SCRIPT = Path(__file__).resolve().parents[1] / "cluster" / "build-binaries.sh"
GATEWAY_API_CRDS = ("gatewayclasses", "gateways", "httproutes")


def locate_binaries() -> Path:
    """`$WHARF_BIN_DIR`, else the directory build-binaries.sh prints on its last line (building if needed)."""
    return locate_built(BUILD_SCRIPT, "WHARF_BIN_DIR")


def locate_built(script: Path, variable: str) -> Path:
    """`$variable`, else the directory the build `script` prints on its last line (building if needed)."""
    if os.environ.get(variable):
        return Path(os.environ[variable])
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{script.name} failed ({out.returncode}):\n{out.stderr[-4000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


@dataclass
class Cluster:
    control_plane: ControlPlane
    agent: PullAgent
    real_nodes: list[RealNode] = field(default_factory=list)  # harness.node, once a test asks for one
    _trusted: list[Any] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.control_plane.kubeconfig

    @property
    def bin_dir(self) -> Path:
        return self.control_plane.bin_dir

    @property
    def kubectl_path(self) -> Path:
        return self.control_plane.kubectl_path

    @property
    def node_names(self) -> list[str]:
        return self.control_plane.node_names

    def api_client(self) -> client.ApiClient:
        """A new synchronous `kubernetes` ApiClient for the admin user (close it, or use it as a context)."""
        api: client.ApiClient = config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]
        return api

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as the admin (or as the user of `kubeconfig`: ControlPlane.client_kubeconfig,
        token_kubeconfig); with check=True a non-zero exit raises (stderr in the message)."""
        return self.control_plane.kubectl(*args, input=input, check=check, timeout=timeout, kubeconfig=kubeconfig)

    def create_namespace(
        self,
        name: str,
        restricted: bool = True,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> str:
        all_labels = dict(labels or {})
        if restricted:
            all_labels.update(
                {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                }
            )
        meta = client.V1ObjectMeta(name=name, labels=all_labels, annotations=annotations)
        body = client.V1Namespace(metadata=meta)
        with self.api_client() as api:
            client.CoreV1Api(api).create_namespace(body)
        return name

    def delete_namespace(self, name: str) -> None:
        self.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)

    def trust_registry(self, server: Any) -> None:
        """Let every node pull from `server` (TLS: trust its CA; plain HTTP: mark it insecure): the fake nodes
        (the pull agent) and each real node, including one added later (`add_real_node`)."""
        self._trusted.append(server)
        self.agent.trust_registry(server)
        for node in self.real_nodes:
            node.trust_registry(server)

    def add_real_node(self, node: RealNode) -> None:
        """A started harness.node.RealNode joins: it trusts every registry the fake nodes trust."""
        self.real_nodes.append(node)
        for server in self._trusted:
            node.trust_registry(server)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    bin_dir = locate_binaries()
    cp = ControlPlane(tmp_path_factory.mktemp("cluster"), bin_dir)
    cp.start()
    agent = None
    try:
        agent = PullAgent(cp.kubeconfig).start()
        yield Cluster(cp, agent)
    finally:
        if agent:
            agent.stop()
        cp.stop()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = cluster.create_namespace(f"t-{uuid.uuid4().hex[:10]}")
    yield name
    cluster.delete_namespace(name)


@pytest.fixture(scope="module")
def gateway_api(cluster: Cluster) -> Iterator[None]:
    folder = cluster.bin_dir / "gateway-api"
    files = [folder / f"gateway.networking.k8s.io_{plural}.yaml" for plural in GATEWAY_API_CRDS]
    missing = [str(f) for f in files if not f.is_file()]
    assert not missing, f"no Gateway API CRDs {missing}: run tests/cluster/build-binaries.sh (it fetches them)"
    names = [f"crd/{plural}.gateway.networking.k8s.io" for plural in GATEWAY_API_CRDS]
    for file in files:
        cluster.kubectl("apply", "--server-side", "-f", str(file))
    cluster.kubectl("wait", "--for=condition=Established", *names, "--timeout=60s")
    try:
        yield
    finally:
        # A CRD deleted moments after it was made can take a minute to go: the apiserver's CRD finalizer fails
        # while the kind's storage is still initializing and retries with back-off (seen in CI: 56 s).
        cluster.kubectl("delete", *names, "--wait=true", "--timeout=180s", check=False)
