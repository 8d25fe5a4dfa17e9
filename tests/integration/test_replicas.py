"""Past one process, on the real control plane (issue 14): high availability by kopf peering, and sharding.

- HA: two `wharf run --peering` replicas watch one `wharf-solo-*` namespace (the session operator leaves those
  alone). The higher-priority one serves, the other pauses; killed with SIGKILL (no goodbye in the peering object),
  the active one's keep-alive expires after WHARF_PEERING_LIFETIME_SECONDS (10 s by default) and the standby
  resumes within 15 s and serves the Apps, including one created while nobody was serving.
- Sharding: two standalone replicas, each with an App selector (WHARF_APP_SELECTOR) that splits the Apps by the
  `wharf.dev/shard` label into disjoint slices: each App is served by exactly one of them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.apps import app_resource
from harness.fixtures_cluster import Cluster
from harness.fixtures_operator import ROOT, SOLO_NAMESPACES, Operator, _stop, launch
from harness.images import STANDARD_IMAGES
from harness.polling import poll
from harness.registry import RegistryServer

pytestmark = [pytest.mark.cluster, pytest.mark.registry]
PEERING_CRDS = ROOT / "deploy" / "helm" / "wharf" / "crds" / "kopf-peering.yaml"
TAKEOVER_SECONDS = 15  # the bound: the standby serves within this long after the active one dies
RESUMED = "Resuming operations after the pause"


def _app(name: str, namespace: str, image: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return app_resource(name, namespace, image, labels=labels, instances=1, memory="64M")


def _log(operator: Operator) -> str:
    return operator.log_file.read_text(errors="replace")


@pytest.fixture
def solo_namespace(wharf_operator: Operator) -> Iterator[str]:
    cluster = wharf_operator.cluster
    namespace = cluster.create_namespace(f"{SOLO_NAMESPACES.rstrip('*')}{uuid.uuid4().hex[:8]}")
    yield namespace
    cluster.delete_namespace(namespace)


@pytest.fixture
def start_replica(
    wharf_operator: Operator, registry_plain: RegistryServer, tmp_path: Path
) -> Iterator[Callable[..., Operator]]:
    """`start_replica(namespace, *args, peering=None, **env)`: a `wharf run` of its own watching `namespace`,
    stopped after the test."""
    started: list[Operator] = []

    def start(namespace: str, *args: str, peering: str | None = None, **env: str) -> Operator:
        base = {
            "WHARF_REGISTRY_INSECURE": registry_plain.host,
            "WHARF_REGISTRY_ALLOW": "127.0.0.0/8",
            "WHARF_LOG_LEVEL": "DEBUG",
        }
        log_file = tmp_path / f"replica-{len(started)}.log"
        replica = launch(
            wharf_operator.cluster, {**base, **env}, log_file, "--namespace", namespace, *args, peering=peering
        )
        started.append(replica)
        return replica

    yield start
    for replica in started:
        _stop(replica)


def _deployment_of(operator: Operator, app: str, namespace: str) -> Callable[[], dict[str, Any] | None]:
    return lambda: operator.get("deployment", f"{app}-web", namespace)


def _peers(cluster: Cluster, namespace: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "kopfpeering", "wharf-ha", "-n", namespace, "-o", "json")
    return json.loads(out.stdout).get("status") or {}


def _install_peering(cluster: Cluster, namespace: str, name: str) -> None:
    cluster.kubectl("apply", "-f", str(PEERING_CRDS))
    cluster.kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "--timeout=60s")
    peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": name, "namespace": namespace}}
    listable = poll(
        lambda: cluster.kubectl("get", "kopfpeerings", "-n", namespace, check=False).returncode == 0, 60, 0.5
    )
    assert listable, "KopfPeerings cannot be listed 60 s after their CRD was Established"
    cluster.kubectl("apply", "-f", "-", input=json.dumps(peering))


def test_the_standby_replica_takes_over_within_15_s_of_the_active_one_dying(
    wharf_operator: Operator,
    registry_plain: RegistryServer,
    push_image: Callable[..., str],
    solo_namespace: str,
    start_replica: Callable[..., Operator],
) -> None:
    cluster = wharf_operator.cluster
    push_image(registry_plain, "ha/app", "1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/ha/app:1"
    _install_peering(cluster, solo_namespace, "wharf-ha")
    active = start_replica(solo_namespace, "--priority=200", peering="wharf-ha")
    active.wait_for("the first replica to serve", lambda: RESUMED in _log(active))
    # A replica starts paused and stays so while a live peer of higher priority is in the peering object.
    standby = start_replica(solo_namespace, "--priority=100", peering="wharf-ha")
    standby.wait_for("both replicas in the peering object", lambda: len(_peers(cluster, solo_namespace)) == 2)

    wharf_operator.apply(_app("before", solo_namespace, image))
    active.wait_for("the active replica to serve an App", _deployment_of(active, "before", solo_namespace))
    active.wait_for("the active replica to count its reconcile", lambda: active.metric("wharf_reconciles_total") > 0)
    assert standby.metric("wharf_reconciles_total") == 0, "the paused standby reconciled an App"
    assert RESUMED not in _log(standby)

    active.process.kill()  # SIGKILL: no goodbye in the peering object, as when a node dies
    killed = time.monotonic()
    active.process.wait()
    wharf_operator.apply(_app("during", solo_namespace, image))
    standby.wait_for(
        f"the standby to resume within {TAKEOVER_SECONDS} s of the kill",
        lambda: RESUMED in _log(standby),  # it never resumed before the kill (asserted above)
        timeout=TAKEOVER_SECONDS - (time.monotonic() - killed),
        interval=0.2,
    )
    # The App created while nobody served, and the one served before, are the standby's now.
    standby.wait_for(
        "the new active replica to serve the App created meanwhile", _deployment_of(standby, "during", solo_namespace)
    )
    standby.wait_for(
        "both Apps Ready",
        lambda: all(standby.condition(n, solo_namespace).get("status") == "True" for n in ("before", "during")),
    )
    standby.wait_for("the new active replica to count both Apps", lambda: standby.metric("wharf_apps") == 2)


def test_shards_serve_disjoint_slices_of_the_apps(
    wharf_operator: Operator,
    registry_plain: RegistryServer,
    push_image: Callable[..., str],
    solo_namespace: str,
    start_replica: Callable[..., Operator],
) -> None:
    push_image(registry_plain, "shard/app", "1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/shard/app:1"
    # Shard "a" also serves every App without the label (`notin` matches those): the slices cover all Apps.
    shard_a = start_replica(solo_namespace, WHARF_APP_SELECTOR="wharf.dev/shard notin (b)")
    shard_b = start_replica(solo_namespace, WHARF_APP_SELECTOR="wharf.dev/shard=b")
    apps = {"app-a": {"wharf.dev/shard": "a"}, "app-b": {"wharf.dev/shard": "b"}, "app-none": {}}
    for name, labels in apps.items():
        wharf_operator.apply(_app(name, solo_namespace, image, labels))
    for name in apps:
        shard_a.wait_for(f"{name} Ready", lambda n=name: shard_a.condition(n, solo_namespace).get("status") == "True")
    # Each replica counts the Apps it serves (wharf_apps, by Ready): the slices are disjoint and cover all three.
    shard_a.wait_for("shard a to count its two Apps Ready", lambda: shard_a.metric("wharf_apps", ready="True") == 2)
    assert shard_b.metric("wharf_apps") == 1
    assert shard_b.metric("wharf_apps", ready="True") == 1
    # What an App owns carries its shard label, so each shard's watches of pods, Deployments and Services are sent
    # only its slice (b saw app-b's pods through its narrowed pod watch: app-b is Ready).
    assert _shards_of(shard_b, "app-b", solo_namespace) == {"b"}
    assert _shards_of(shard_a, "app-none", solo_namespace) == {""}

    # Relabelled to shard b, an App is b's: b serves it, a forgets it.
    shard_b.cluster.kubectl("label", "app", "app-none", "-n", solo_namespace, "wharf.dev/shard=b")
    shard_b.wait_for("shard b to take the relabelled App", lambda: shard_b.metric("wharf_apps", ready="True") == 2)
    shard_a.wait_for("shard a to forget the relabelled App", lambda: shard_a.metric("wharf_apps") == 1)
    shard_b.wait_for(
        "the relabelled App's objects to carry shard b",
        lambda: _shards_of(shard_b, "app-none", solo_namespace) == {"b"},
    )


def _shards_of(operator: Operator, app: str, namespace: str) -> set[str]:
    """The shard labels on the App's pods, Deployments and Services ("" where there is none)."""
    out = operator.cluster.kubectl(
        "get", "pods,deployments,services", "-n", namespace, "-l", f"wharf.dev/app={app}", "-o", "json"
    )
    items = json.loads(out.stdout)["items"]
    assert {item["kind"] for item in items} >= {"Pod", "Deployment", "Service"}, items
    return {item["metadata"].get("labels", {}).get("wharf.dev/shard", "") for item in items}
