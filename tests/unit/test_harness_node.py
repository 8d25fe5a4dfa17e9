"""harness.node without starting anything: a machine that cannot run the real node says why (the tests that need
it then fail with that reason, never skip), and what places a namespace's pods there."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness import node
from harness.node import NODE_LABEL, NODE_VALUE, TAINT, NodeError, RealNode, check_machine, namespace_annotations


def test_missing_binaries_are_named_with_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(NodeError) as error:
        check_machine(tmp_path)
    message = str(error.value)
    assert f"{tmp_path / 'kubelet'}" in message
    assert f"{tmp_path / 'kube-proxy'}" in message
    assert "tests/harness/apt-packages.txt" in message
    assert "build-binaries.sh" in message


def test_a_second_real_node_on_the_machine_fails_naming_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node, "LOCK", tmp_path / "lock")
    first = RealNode.__new__(RealNode)
    first._lock = None
    first._take_lock()
    try:
        second = RealNode.__new__(RealNode)
        second._lock = None
        with pytest.raises(NodeError, match=f"another real node runs on this machine \\(pid {os.getpid()}"):
            second._take_lock()
    finally:
        assert first._lock is not None
        os.close(first._lock)


def test_namespace_annotations_give_pods_the_nodes_selector_and_toleration_of_its_taint() -> None:
    annotations = namespace_annotations()
    assert annotations["scheduler.alpha.kubernetes.io/node-selector"] == f"{NODE_LABEL}={NODE_VALUE}"
    (toleration,) = json.loads(annotations["scheduler.alpha.kubernetes.io/defaultTolerations"])
    assert {k: toleration[k] for k in ("key", "value", "effect")} == TAINT
    assert toleration["operator"] == "Equal"
