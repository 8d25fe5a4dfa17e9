"""Issue 14 on the real control plane (proofs, not timings; the figures come from benchmarks/scale.py):

- 200 Apps converge (all Ready) with no error in the operator's log;
- an operator restarted over 200 converged Apps writes nothing: the operator's own request counter
  (wharf_kube_requests) shows no apply, no status patch, no Event, no delete; no App changed (kopf included: its
  resourceVersions are the same) and no Event appeared in the namespace.

One operator of the test's own, watching one `wharf-solo-*` namespace (the session operator leaves those alone).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.apps import app_resource
from harness.fixtures_cluster import Cluster
from harness.fixtures_operator import SOLO_NAMESPACES, Operator, _stop, launch
from harness.images import STANDARD_IMAGES, push_image
from harness.polling import poll
from harness.registry import RegistryServer

pytestmark = [pytest.mark.cluster, pytest.mark.registry]

APPS = 200
WRITES = ("PATCH", "POST", "PUT", "DELETE")
# What an error looks like in the operator's log: a traceback, a kopf handler failure, a logged ERROR, a
# reconcile retried after an apiserver failure.
ERRORS = re.compile(r"Traceback|\bERROR\b|failed with an exception|\(retrying\)")


@dataclass
class Scaled:
    cluster: Cluster
    namespace: str
    env: dict[str, str]
    workdir: Path


def _metrics(op: Operator) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for line in httpx.get(op.metrics_url, timeout=5).text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match and not line.startswith("#"):
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match.group(2) or "")))
            found[(match.group(1), labels)] = float(match.group(3))
    return found


def _total(op: Operator, name: str, **where: str) -> float:
    return sum(
        value
        for (metric, labels), value in _metrics(op).items()
        if metric == name and all((k, v) in labels for k, v in where.items())
    )


def _apps(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(cluster.kubectl("get", "apps", "-n", ns, "-o", "json").stdout)["items"]
    return items


def _ready(app: dict[str, Any]) -> bool:
    conditions = (app.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _versions(cluster: Cluster, ns: str, kinds: str) -> dict[str, str]:
    out = json.loads(cluster.kubectl("get", kinds, "-n", ns, "-o", "json").stdout)["items"]
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in out}


def _errors(op: Operator) -> list[str]:
    return [line for line in op.log_file.read_text(errors="replace").splitlines() if ERRORS.search(line)]


@pytest.fixture(scope="module")
def scaled(
    wharf_operator: Operator, registry_plain: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scaled]:
    cluster = wharf_operator.cluster
    ns = cluster.create_namespace(f"{SOLO_NAMESPACES.rstrip('*')}scale-{uuid.uuid4().hex[:6]}")
    env = {"WHARF_REGISTRY_INSECURE": registry_plain.host, "WHARF_REGISTRY_ALLOW": "127.0.0.0/8"}
    try:
        yield Scaled(cluster, ns, env, tmp_path_factory.mktemp("scale"))
    finally:
        cluster.delete_namespace(ns)


def test_200_apps_converge_with_no_error_in_the_log(scaled: Scaled, registry_plain: RegistryServer) -> None:
    op = launch(scaled.cluster, scaled.env, scaled.workdir / "first.log", "--namespace", scaled.namespace)
    try:
        push_image(registry_plain, "scale/single", "v1", STANDARD_IMAGES["single-port"])
        image = f"{registry_plain.host}/scale/single:v1"
        apps = [app_resource(f"app-{i:03d}", scaled.namespace, image, memory="32M") for i in range(APPS)]
        # `create`: one POST per App (apply would GET each first); on a busy machine 200 take a while.
        listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": apps})
        scaled.cluster.kubectl("create", "-f", "-", input=listed, timeout=300)
        converged = op.wait_for(
            f"{APPS} Apps Ready",
            lambda: sum(_ready(a) for a in _apps(scaled.cluster, scaled.namespace)) == APPS,
            timeout=420,
            interval=3,
        )
        assert converged
        assert _errors(op) == []
        writes = sum(_total(op, "wharf_kube_requests_total", verb=verb) for verb in WRITES)
        print(f"{APPS} Apps converged with {writes:.0f} writes ({writes / APPS:.1f} per App)")
    finally:
        _stop(op)


def test_a_restart_over_200_converged_apps_writes_nothing(scaled: Scaled) -> None:
    cluster, ns = scaled.cluster, scaled.namespace
    apps = _apps(cluster, ns)
    assert len(apps) == APPS
    assert all(_ready(a) for a in apps)  # as the previous test left them (its operator stopped)
    before = _versions(cluster, ns, "apps,deployments,services")
    events = len(json.loads(cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"])

    op = launch(cluster, scaled.env, scaled.workdir / "restart.log", "--namespace", ns)
    try:
        # Every App is looked at once (kopf's initial listing); then nothing is left to do.
        op.wait_for(
            f"{APPS} reconciles",
            lambda: _total(op, "wharf_reconciles_total") >= APPS and _total(op, "wharf_queue_depth") == 0,
            timeout=120,
            interval=1,
        )
        settled = _total(op, "wharf_reconciles_total")
        poll(lambda: False, 5, 1)  # a few seconds more for anything late (a retry, a second look)
        requests = {
            labels: value for (metric, labels), value in _metrics(op).items() if metric == "wharf_kube_requests_total"
        }
        writes = {labels: value for labels, value in requests.items() if dict(labels)["verb"] in WRITES}
        assert writes == {}, writes
        assert requests == {}, requests  # not even a read: everything came from the watches
        assert _versions(cluster, ns, "apps,deployments,services") == before
        assert len(json.loads(cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]) == events
        assert _total(op, "wharf_reconciles_total") >= settled
        assert _errors(op) == []
    finally:
        _stop(op)
