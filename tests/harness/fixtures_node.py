"""pytest plugin: the real node (harness.node) for tests whose App containers must really run.

Fixtures:
- `real_node` (session): a `RealNode` (kubelet + containerd + runc + CNI + kube-proxy) registered with the session
  cluster, trusting every registry the cluster trusts. Started on first use (~10 s); a machine that cannot run it
  makes the tests that ask for it FAIL with the reason (NodeError), never skip.
- `real_ns` (function): a fresh `restricted` namespace placed on the real node by the apiserver's PodNodeSelector
  and PodTolerationRestriction admission (harness.node.namespace_annotations): every pod created there, an App's
  included, gets the node's selector and toleration, with nothing changed in the App or in wharf.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from harness.fixtures_cluster import Cluster
from harness.node import RealNode, namespace_annotations


@pytest.fixture(scope="session")
def real_node(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNode]:
    node = RealNode(cluster.control_plane, tmp_path_factory.mktemp("real-node"))
    node.start()
    try:
        cluster.add_real_node(node)
        yield node
    finally:
        if node in cluster.real_nodes:
            cluster.real_nodes.remove(node)
        node.stop()


@pytest.fixture
def real_ns(cluster: Cluster, real_node: RealNode) -> Iterator[str]:
    name = cluster.create_namespace(f"real-{uuid.uuid4().hex[:8]}", annotations=namespace_annotations())
    yield name
    cluster.delete_namespace(name)
