"""Faults on the real control plane (issue 11), each kept short: the kube-apiserver killed and restarted, the
operator killed with SIGKILL in the middle of a burst of changes, the registry stopped during a rolling restart,
and generated App specs (hypothesis) applied next to a good App.

Rule ids: S13, S14 (outages keep what runs and heal alone), S15 (lifecycle), S17 (nothing but what the App owns),
S1-S11 (bad input: refused naming a field, or a clear condition).

The registry stopped during a scale and during a restage (issue 11 item 6, with the restart here) is proven in
test_app_status.py (test_registry_outage_during_scale_is_reported_and_heals_by_itself,
test_restage_while_registry_down_keeps_serving_digest_and_completes_on_return), on the same outage_registry.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.apps import app_resource
from harness.fixtures_operator import CRD, Operator, SoloOperator, _stop, relaunch
from harness.images import STANDARD_IMAGES, push_image
from harness.registry import RegistryServer

pytestmark = [pytest.mark.cluster, pytest.mark.registry]


def _app(name: str, namespace: str, image: str, **manifest: Any) -> dict[str, Any]:
    return app_resource(name, namespace, image, **{"memory": "64M", **manifest})


def _ready(op: Operator, name: str, namespace: str) -> bool:
    return op.condition(name, namespace).get("status") == "True"


def _served(op: Operator, name: str, namespace: str) -> bool:
    """The operator has reconciled the App's current spec: its status is of this generation and its Deployment
    exists (what the operator does, before any other controller has to act)."""
    app = op.get("app", name, namespace) or {}
    observed = (app.get("status") or {}).get("observedGeneration")
    generation = app.get("metadata", {}).get("generation")
    return (
        observed is not None and observed == generation and op.get("deployment", f"{name}-web", namespace) is not None
    )


def _items(op: Operator, kind: str, namespace: str, selector: str = "wharf.dev/app") -> list[dict[str, Any]]:
    out = op.cluster.kubectl("get", kind, "-n", namespace, "-l", selector, "-o", "json")
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return items


def _pods(op: Operator, name: str, namespace: str) -> dict[str, dict[str, Any]]:
    pods = _items(op, "pods", namespace, f"wharf.dev/app={name}")
    return {p["metadata"]["uid"]: p for p in pods if not p["metadata"].get("deletionTimestamp")}


def _no_traceback(op: Operator) -> None:
    log = op.log_file.read_text(errors="replace")
    assert "Traceback" not in log, op.log_tail(120)


# -- the kube-apiserver killed and restarted ------------------------------------------------------------------------
def test_apps_in_namespaces_created_right_after_an_apiserver_restart_are_reconciled(
    wharf_operator: Operator, registry_plain: RegistryServer
) -> None:
    # Five times: SIGKILL the apiserver, start it with the same flags, and at once create a namespace and an App in
    # it. The operator (not restarted) must serve each. kopf lists namespaces again when its watch cannot resume on
    # the new apiserver, and used to ignore what that listing found (wharf.handlers.namespaces).
    op, cluster = wharf_operator, wharf_operator.cluster
    push_image(registry_plain, "faults/app", "v1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/faults/app:v1"
    pid = op.process.pid
    created: list[str] = []
    try:
        for round_ in range(5):
            # The operator is frozen across the restart (as a busy or paused process would be), so the namespace
            # exists before its watches reconnect: it shows up only in kopf's re-listing, never as a watch event.
            os.kill(pid, signal.SIGSTOP)
            try:
                cluster.control_plane.restart("kube-apiserver")
                namespace = cluster.create_namespace(f"restart-{round_}-{uuid.uuid4().hex[:6]}")
                created.append(namespace)
                op.apply(_app("after-restart", namespace, image, instances=0))  # the operator's part, not pods
            finally:
                os.kill(pid, signal.SIGCONT)
            # Served: the operator wrote its Deployment and a status for this generation. Not Ready, which waits
            # on the kube-controller-manager's Deployment status: after five restarts in a row its informers may
            # sit in their back-off (RBAC is refused for a while on each new apiserver) longer than this wait.
            op.wait_for(
                f"round {round_}: the App in {namespace} served",
                lambda ns=namespace: _served(op, "after-restart", ns),
                timeout=90,
            )
        assert op.process.pid == pid
        assert op.process.poll() is None
        for namespace in created:  # all Ready once the control plane has settled
            op.wait_for(f"the App in {namespace} Ready", lambda ns=namespace: _ready(op, "after-restart", ns), 120)
    finally:
        for namespace in created:
            cluster.delete_namespace(namespace)


# -- the App CRD deleted and created again --------------------------------------------------------------------------
def test_apps_are_reconciled_again_after_the_app_crd_is_deleted_and_created_again(
    wharf_operator: Operator, registry_plain: RegistryServer
) -> None:
    # `helm uninstall` then `helm install`, an Argo CD sync that replaces the CRD, `kubectl delete crd` by hand: the
    # operator (not restarted) stops its App watches while the kind is gone and must start them again once the CRD
    # is back, in new namespaces too. kopf re-reads discovery on each event of the CRD, but the apiserver serves a new
    # CRD's group in discovery a moment after its last event, and kopf then watched nothing until it was restarted
    # (wharf.handlers.kind_back). Three rounds, the CRD back at once and after a pause.
    op, cluster = wharf_operator, wharf_operator.cluster
    push_image(registry_plain, "faults/crd", "v1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/faults/crd:v1"
    created: list[str] = []
    try:
        for round_, pause in enumerate((0.0, 3.0, 0.0)):
            cluster.kubectl("delete", "crd", "apps.wharf.dev", "--timeout=60s")
            time.sleep(pause)
            cluster.kubectl("apply", "-f", str(CRD))
            cluster.kubectl("wait", "--for=condition=Established", "crd/apps.wharf.dev", "--timeout=60s")
            namespace = cluster.create_namespace(f"crd-back-{round_}-{uuid.uuid4().hex[:6]}")
            created.append(namespace)
            # Until the new CRD's storage answers, creating an App may be refused (429/404): retry the apply.
            op.wait_for(
                f"round {round_}: the App created",
                lambda ns=namespace: op.apply(_app("after-crd", ns, image, instances=0), check=False).returncode == 0,
                timeout=60,
            )
            op.wait_for(
                f"round {round_}: the App in {namespace} Ready",
                lambda ns=namespace: _ready(op, "after-crd", ns),
                timeout=60,
            )
        assert op.process.poll() is None
        _no_traceback(op)
    finally:
        for namespace in created:
            cluster.delete_namespace(namespace)


# -- the operator killed with SIGKILL during a burst of changes -----------------------------------------------------
def test_an_operator_killed_mid_burst_leaves_no_orphan_no_duplicate_and_converges(
    solo_operator: SoloOperator, registry_plain: RegistryServer
) -> None:
    op, ns = solo_operator({})
    push_image(registry_plain, "faults/burst", "v1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/faults/burst:v1"
    names = [f"burst-{i:02d}" for i in range(50)]

    def apply_all(bodies: list[dict[str, Any]]) -> None:
        op.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(bodies), timeout=120)

    # instances: 0 keeps the burst about the operator, not about 50 pods on the shared machine.
    apply_all([_app(name, ns, image, instances=0, env={"ROUND": "1"}) for name in names])
    time.sleep(2)  # some reconciled, some in flight, most not yet seen
    op = relaunch(op)  # SIGKILL: no clean-up, kopf's progress annotations as they were
    try:
        edited, deleted = names[:20], names[40:]
        apply_all([_app(name, ns, image, instances=0, env={"ROUND": "2"}) for name in edited])
        op.cluster.kubectl("delete", "app", *deleted, "-n", ns, "--wait=false")
        time.sleep(1)
        op = relaunch(op)  # and once more while it catches up
        kept = names[:40]

        def converged() -> bool:
            apps = {a["metadata"]["name"]: a for a in _items(op, "apps", ns, "!nothing")}
            if sorted(apps) != kept:
                return False
            for app in apps.values():
                status = app.get("status") or {}
                ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
                if status.get("observedGeneration") != app["metadata"]["generation"] or ready.get("status") != "True":
                    return False
            return True

        op.wait_for("all 40 Apps Ready at their generation", converged, timeout=180, interval=2)

        # The deleted Apps' objects are collected (owner references); no App has two of anything.
        def collected() -> bool:
            owners = [o["metadata"]["labels"]["wharf.dev/app"] for o in _items(op, "deployments", ns)]
            owners += [o["metadata"]["labels"]["wharf.dev/app"] for o in _items(op, "services", ns)]
            return sorted(owners) == sorted(kept * 2)

        op.wait_for("one Deployment and one Service per App, none of the deleted", collected, timeout=60)
        apps = {a["metadata"]["name"]: a for a in _items(op, "apps", ns, "!nothing")}
        for deployment in _items(op, "deployments", ns):
            app = deployment["metadata"]["labels"]["wharf.dev/app"]
            (owner,) = deployment["metadata"]["ownerReferences"]
            assert owner["uid"] == apps[app]["metadata"]["uid"]  # no orphan, no stale owner
            env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert env["ROUND"] == ("2" if app in edited else "1"), (app, env["ROUND"])
        _no_traceback(op)
    finally:
        _stop(op)


# -- the registry stopped during a rolling restart --------------------------------------------------------------------
def test_a_restart_while_the_registry_is_down_keeps_the_running_pods_and_heals_alone(
    wharf_operator: Operator, outage_registry: RegistryServer, app_ns: str
) -> None:
    # S13, S14, S15: `restartedAt` rolls new pods; they cannot pull while the registry is down, so the old ones keep
    # serving (maxUnavailable 0), the status says so within seconds without contradicting itself, and once the
    # registry is back the restart completes with nobody touching anything.
    op, reg = wharf_operator, outage_registry
    push_image(reg, "faults/restart", "v1", STANDARD_IMAGES["single-port"])
    body = _app("roller", app_ns, f"{reg.host}/faults/restart:v1", instances=2)
    op.apply(body)
    op.wait_for("Ready 2/2", lambda: _ready(op, "roller", app_ns), timeout=90)
    before = _pods(op, "roller", app_ns)
    assert len(before) == 2

    reg.stop()
    op.apply({**body, "spec": {**body["spec"], "restartedAt": "2026-01-01T00:00:00Z"}})

    def reported() -> dict[str, Any] | None:
        ready = op.condition("roller", app_ns)
        return ready if ready.get("status") == "False" and ready.get("reason") not in ("Starting", None) else None

    ready = op.wait_for("a pull failure reported", reported, timeout=30)
    assert ready["reason"] in ("RegistryUnavailable", "ImagePullFailed"), ready
    available = op.condition("roller", app_ns, "InstancesAvailable")
    assert available["status"] == "False"
    assert "on the current spec: not yet rolled out" in available["message"], available  # never a bare "2/2"
    now = _pods(op, "roller", app_ns)
    assert set(before) <= set(now)  # the running pods are untouched
    assert all(now[uid]["status"]["phase"] == "Running" for uid in before)

    reg.start()
    op.wait_for("the restart completes by itself", lambda: _ready(op, "roller", app_ns), timeout=90)
    after = _pods(op, "roller", app_ns)
    assert len(after) == 2
    assert not set(before) & set(after)  # restarted: new pods
    assert op.condition("roller", app_ns, "InstancesAvailable")["message"] == "2/2 instances available"


# -- generated specs next to a good App -------------------------------------------------------------------------------
_SIZES = st.sampled_from(["64M", "1G", "512X", "lots", "", "0", "-1M", "1.5G", "10 MB"])
_ROUTES = st.sampled_from(
    ["shop.example.com", "shop.example.com:99999", "*.example.com/x", "bad..host", "a.example.com:8080/p", ""]
)
_SERVICE = st.one_of(
    st.sampled_from(["db", "", "My DB", "x" * 300]),
    st.fixed_dictionaries({"name": st.sampled_from(["db", "", "Bad Name"])}),
    st.integers(),
)
_MANIFEST = st.fixed_dictionaries(
    {},
    optional={
        "memory": _SIZES,
        "disk_quota": _SIZES,
        "instances": st.integers(min_value=-2, max_value=1),
        "routes": st.lists(st.fixed_dictionaries({"route": _ROUTES}), max_size=2),
        "services": st.lists(_SERVICE, max_size=2),
        "log-rate-limit-per-second": st.sampled_from(["16K", "-1", "abc", "1 lot"]),
        "health-check-type": st.sampled_from(["port", "http", "tcp", "process"]),
        "health-check-http-endpoint": st.sampled_from(["/health", "health"]),
        "timeout": st.integers(min_value=-1, max_value=200),
        "env": st.dictionaries(st.sampled_from(["A", "PORT", "VCAP_X", "a b"]), st.sampled_from(["1", ""]), max_size=2),
        "command": st.sampled_from(["/app/server", ""]),
        "no-route": st.booleans(),
        "processes": st.lists(
            st.fixed_dictionaries({"type": st.sampled_from(["worker", "Web", ""])}), max_size=2, unique_by=str
        ),
    },
)


def _images(good: str, host: str) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [good, "0177.0.0.1:5000/x/y:1", "127.1:5000/x/y", "sha256:" + "a" * 64, f"{host}/faults/none:v1", "Bad Image"]
    )


def _clear(condition: dict[str, Any]) -> bool:
    """Ready says what is what: True, or False/Unknown with a reason other than the first visit's and a message."""
    if condition.get("status") == "True":
        return True
    return condition.get("reason") not in (None, "Pending") and bool(condition.get("message"))


def test_generated_specs_are_refused_naming_a_field_or_get_a_clear_condition(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    push_image(registry_plain, "faults/fuzz", "v1", STANDARD_IMAGES["single-port"])
    good = f"{registry_plain.host}/faults/fuzz:v1"
    op.apply(_app("good", app_ns, good))
    op.wait_for("the good App Ready", lambda: _ready(op, "good", app_ns), timeout=90)
    good_pods = set(_pods(op, "good", app_ns))
    seen = {"refused": 0, "reported": 0}
    log_before = len(op.log_file.read_text(errors="replace"))

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(image=_images(good, registry_plain.host), manifest=_MANIFEST)
    def one(image: str, manifest: dict[str, Any]) -> None:
        name = f"fuzz-{uuid.uuid4().hex[:8]}"
        body = {**_app(name, app_ns, image), "spec": {"dockerImage": image, "manifest": manifest}}
        result = op.apply(body, check=False)
        if result.returncode != 0:
            seen["refused"] += 1
            assert "spec." in result.stderr or "metadata." in result.stderr, result.stderr  # names a field
            return
        seen["reported"] += 1
        try:
            condition = op.wait_for(
                f"{name}: a clear Ready condition ({manifest}, {image})",
                lambda: (c := op.condition(name, app_ns)) and _clear(c) and c,
                timeout=40,
            )
            assert condition["message"] or condition["status"] == "True"
        finally:
            op.cluster.kubectl("delete", "app", name, "-n", app_ns, "--wait=false", check=False)

    one()
    assert seen["refused"], seen  # both paths were exercised
    assert seen["reported"], seen
    assert _ready(op, "good", app_ns)
    assert set(_pods(op, "good", app_ns)) == good_pods
    assert "Traceback" not in op.log_file.read_text(errors="replace")[log_before:], op.log_tail(120)
