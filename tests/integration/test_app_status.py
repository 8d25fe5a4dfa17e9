"""The App's status on the real control plane and the real registry (issue 5: status a person and a tool can act on).

S13 (pinned digest, restage re-resolves), S14 (the registry is needed to deploy/scale/restage; an outage keeps
running instances and the last good resolution, says so, and heals by itself; pull failures show within seconds as
`Failed to create container`), S12 (Basic and Bearer-token auth, TLS with the admin's CA bundle).

Ready is what `kubectl wait`, Argo CD and Flux read; Reconciling/Stalled/observedGeneration are what kstatus (kpt,
Flux's health checks, cli-utils) reads: `kstatus()` below restates its documented rules for custom resources and
is evaluated on App objects read back from the apiserver.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from harness.apps import app_resource
from harness.fixtures_operator import Operator, SoloOperator
from harness.images import STANDARD_IMAGES, push_image
from harness.registry import TEST_PASSWORD, TEST_USERNAME, RegistryServer

pytestmark = [pytest.mark.cluster, pytest.mark.registry]

APP_LABEL = "wharf.dev/app"


# -- helpers ---------------------------------------------------------------------------------------------------
def app(name: str, namespace: str, image: str, spec: dict[str, Any] | None = None, **manifest: Any) -> dict[str, Any]:
    return app_resource(name, namespace, image, spec=spec, **manifest)


def conditions(obj: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions", [])}


def app_when(
    op: Operator, name: str, ns: str, type_: str, status: str | None = None, reason: str | None = None
) -> Callable[[], dict[str, Any] | None]:
    """For `op.wait_for`: the App once its `type_` condition has this status and/or reason, else None."""

    def check() -> dict[str, Any] | None:
        obj = op.get("app", name, ns)
        found = conditions(obj).get(type_, {})
        matches = (status is None or found.get("status") == status) and (
            reason is None or found.get("reason") == reason
        )
        return obj if matches else None

    return check


def kstatus(obj: dict[str, Any]) -> str:
    """kstatus's rules for custom resources (sigs.k8s.io/cli-utils/pkg/kstatus, "CRD Status Convention"):
    InProgress while metadata.generation > status.observedGeneration or Reconciling is True; Failed when Stalled is
    True; Current when Ready is True. A Ready that is not True with neither of the others set is not done yet."""
    generation = obj["metadata"].get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    if observed is not None and generation is not None and generation > observed:
        return "InProgress"
    conds = conditions(obj)
    if conds.get("Reconciling", {}).get("status") == "True":
        return "InProgress"
    if conds.get("Stalled", {}).get("status") == "True":
        return "Failed"
    if conds.get("Ready", {}).get("status") == "True":
        return "Current"
    return "InProgress"


def assert_kstatus_consistent(obj: dict[str, Any]) -> None:
    """Tools that read only Reconciling/Stalled (older kstatus) must agree with Ready: a Ready that is not True
    always comes with Reconciling or Stalled True, and never both."""
    conds = conditions(obj)
    ready = conds["Ready"]["status"]
    reconciling = conds["Reconciling"]["status"] == "True"
    stalled = conds["Stalled"]["status"] == "True"
    assert not (reconciling and stalled), conds
    if ready != "True":
        assert reconciling or stalled, conds
    else:
        assert not reconciling, conds
        assert not stalled, conds


def pods(op: Operator, name: str, ns: str) -> list[dict[str, Any]]:
    out = op.cluster.kubectl("get", "pods", "-n", ns, "-l", f"{APP_LABEL}={name}", "-o", "json").stdout
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def running(pod: dict[str, Any]) -> bool:
    return pod["status"].get("phase") == "Running" and all(
        c.get("ready") for c in pod["status"].get("containerStatuses") or [{}]
    )


def is_ready(op: Operator, name: str, ns: str) -> bool:
    return op.condition(name, ns).get("status") == "True"


def wait_ready(op: Operator, name: str, ns: str, instances: str | None = None, timeout: float = 60) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = op.get("app", name, ns)
        if not obj or conditions(obj).get("Ready", {}).get("status") != "True":
            return None
        if instances is not None and (obj.get("status") or {}).get("instances") != instances:
            return None
        return obj

    result: dict[str, Any] = op.wait_for(f"App {name} Ready {instances or ''}", check, timeout=timeout)
    return result


def deployed_objects(op: Operator, ns: str) -> list[str]:
    out = op.cluster.kubectl("get", "deployments,services,pods", "-n", ns, "-o", "name").stdout
    return out.split()


def reconciles(op: Operator) -> float:
    text = httpx.get(op.metrics_url, timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("wharf_reconciles_total"))


def secret(name: str, ns: str, password: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "Opaque",
        "data": {"password": base64.b64encode(password.encode()).decode()},
    }


# -- kubectl wait, a missing tag, kstatus ---------------------------------------------------------------------
def test_kubectl_wait_succeeds_for_good_app_and_times_out_for_missing_tag(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    digest = push_image(registry_plain, "status/good", "v1", STANDARD_IMAGES["single-port"])
    op.apply(app("good", app_ns, f"{registry_plain.host}/status/good:v1"))
    op.apply(app("bad", app_ns, f"{registry_plain.host}/status/good:no-such-tag"))

    # Ready is what GitOps scripts wait on (issue 5).
    op.cluster.kubectl("wait", "--for=condition=Ready", "app/good", "-n", app_ns, "--timeout=60s", timeout=70)
    waited = op.cluster.kubectl(
        "wait", "--for=condition=Ready", "app/bad", "-n", app_ns, "--timeout=5s", check=False, timeout=20
    )
    assert waited.returncode != 0, waited.stdout

    good = op.get("app", "good", app_ns)
    assert good is not None
    assert good["status"]["image"]["digest"] == digest  # S13: pinned, shown in status
    assert kstatus(good) == "Current"
    assert_kstatus_consistent(good)

    # S13/S14: a missing tag is ImageNotFound, names the tag, and nothing is deployed; only a person can fix it.
    bad = op.wait_for("bad App reported", app_when(op, "bad", app_ns, "ImageResolved", status="False"))
    conds = conditions(bad)
    assert conds["ImageResolved"]["reason"] == "ImageNotFound", conds
    assert "no-such-tag" in conds["ImageResolved"]["message"]
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "ImageNotFound"
    assert "no-such-tag" in conds["Ready"]["message"]
    assert conds["Stalled"]["status"] == "True"
    assert kstatus(bad) == "Failed"
    assert_kstatus_consistent(bad)
    assert op.get("deployment", "bad-web", app_ns) is None
    assert op.get("service", "bad", app_ns) is None
    assert not pods(op, "bad", app_ns)
    warnings = [e for e in op.app_events(app_ns, "bad") if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["ImageNotFound"], warnings


def test_kstatus_in_progress_until_observed_generation_catches_up(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    push_image(registry_plain, "status/gen", "v1", STANDARD_IMAGES["single-port"])
    op.apply(app("gen", app_ns, f"{registry_plain.host}/status/gen:v1"))
    before = wait_ready(op, "gen", app_ns, "1/1")
    assert kstatus(before) == "Current"
    assert before["status"]["observedGeneration"] == before["metadata"]["generation"]

    # The object the apiserver returns for the write itself: generation moved, the operator has not seen it yet.
    out = op.cluster.kubectl(
        "patch",
        "app",
        "gen",
        "-n",
        app_ns,
        "--type=merge",
        "-o",
        "json",
        "-p",
        json.dumps({"spec": {"manifest": {"instances": 2}}}),
    ).stdout
    written = json.loads(out)
    assert written["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert kstatus(written) == "InProgress"

    # The operator observes the new generation, and kstatus says Current once 2/2 run.
    after = wait_ready(op, "gen", app_ns, "2/2")
    assert after["status"]["observedGeneration"] == after["metadata"]["generation"]
    assert all(c.get("observedGeneration") == after["metadata"]["generation"] for c in after["status"]["conditions"])
    assert kstatus(after) == "Current"
    assert_kstatus_consistent(after)


# -- S14: a registry outage while scaling ---------------------------------------------------------------------
def test_registry_outage_during_scale_is_reported_and_heals_by_itself(
    wharf_operator: Operator, outage_registry: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    reg = outage_registry
    digest = push_image(reg, "status/outage", "v1", STANDARD_IMAGES["single-port"])
    op.apply(app("out", app_ns, f"{reg.host}/status/outage:v1", instances=1))
    wait_ready(op, "out", app_ns, "1/1")
    (first,) = pods(op, "out", app_ns)
    assert running(first)

    reg.stop()
    op.apply(app("out", app_ns, f"{reg.host}/status/outage:v1", instances=3))  # S14: scaling needs the registry

    pull_failure = app_when(op, "out", app_ns, "Ready", status="False", reason="RegistryUnavailable")

    # Within seconds (not a 10-minute progress deadline): the kubelet's words, classified.
    failing = op.wait_for("Ready False RegistryUnavailable", pull_failure, timeout=20)
    ready = conditions(failing)["Ready"]
    assert ready["message"].startswith("Failed to create container:"), ready
    assert "ErrImagePull" in ready["message"] or "ImagePullBackOff" in ready["message"], ready
    assert kstatus(failing) == "InProgress"  # the kubelet retries: not Failed
    assert_kstatus_consistent(failing)
    assert failing["status"]["image"]["digest"] == digest  # the last good resolution is kept

    # The running instance keeps running; the new ones cannot pull.
    now = {p["metadata"]["name"]: p for p in pods(op, "out", app_ns)}
    assert first["metadata"]["name"] in now
    assert running(now[first["metadata"]["name"]])
    new = [p for n, p in now.items() if n != first["metadata"]["name"]]
    assert len(new) == 2
    assert not any(running(p) for p in new)
    deployment = op.get("deployment", "out-web", app_ns)
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{reg.host}/status/outage@{digest}"

    # It stays reported as failing across several refreshes, with one Warning, not one per reconcile.
    op.wait_for(
        "a Warning event for the pull failure",
        lambda: any(e["type"] == "Warning" for e in op.app_events(app_ns, "out")),
        timeout=10,
    )
    warnings_before = [e for e in op.app_events(app_ns, "out") if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings_before] == ["RegistryUnavailable"], warnings_before
    assert warnings_before[0]["message"].startswith("Failed to create container:")
    for i in range(3):  # each touch of the Deployment is a refresh (a reconcile that reports the same status)
        count = reconciles(op)
        op.cluster.kubectl("annotate", "deployment/out-web", "-n", app_ns, f"wharf-test/touch={i}", "--overwrite")
        op.wait_for(f"refresh {i}", lambda count=count: reconciles(op) > count, timeout=20)
    assert pull_failure() is not None
    warnings_after = [e for e in op.app_events(app_ns, "out") if e["type"] == "Warning"]
    assert len(warnings_after) == 1, warnings_after
    assert (warnings_after[0].get("count") or 1) == 1, warnings_after

    # The registry comes back: nobody touches anything, the App is Ready with 3/3.
    reg.start()
    healed = wait_ready(op, "out", app_ns, "3/3", timeout=60)
    assert kstatus(healed) == "Current"
    assert_kstatus_consistent(healed)
    assert first["metadata"]["name"] in {p["metadata"]["name"] for p in pods(op, "out", app_ns)}
    assert all(running(p) for p in pods(op, "out", app_ns))
    events = op.app_events(app_ns, "out")
    normal_after = [e["reason"] for e in events if e["type"] == "Normal" and e["reason"] in ("Recovered", "Running")]
    # Recovered when the App was failing right before; Running when the last step was a plain rollout.
    assert normal_after, [(e["type"], e["reason"]) for e in events]
    assert len(events) <= 8, [(e["type"], e["reason"], e["message"]) for e in events]  # transitions only


# -- S13/S14: restage while the registry is down --------------------------------------------------------------
def test_restage_while_registry_down_keeps_serving_digest_and_completes_on_return(
    wharf_operator: Operator, outage_registry: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    reg = outage_registry
    digest = push_image(reg, "status/restage", "v1", STANDARD_IMAGES["single-port"])
    op.apply(app("rs", app_ns, f"{reg.host}/status/restage:v1", instances=2))
    ready_before = wait_ready(op, "rs", app_ns, "2/2")
    resolved_before = ready_before["status"]["image"]["resolvedAt"]
    old_pods = {p["metadata"]["name"] for p in pods(op, "rs", app_ns)}

    reg.stop()
    op.cluster.kubectl("patch", "app", "rs", "-n", app_ns, "--type=merge", "-p", '{"spec":{"restage":"r1"}}')

    def unavailable() -> dict[str, Any] | None:
        obj = op.get("app", "rs", app_ns)
        ready = conditions(obj).get("Ready", {})
        gen_seen = (obj or {}).get("status", {}).get("observedGeneration") == (obj or {}).get("metadata", {}).get(
            "generation"
        )
        return (
            obj
            if gen_seen and ready.get("status") == "False" and ready.get("reason") == "RegistryUnavailable"
            else None
        )

    down = op.wait_for("Ready False RegistryUnavailable after restage", unavailable, timeout=30)
    conds = conditions(down)
    assert "keep serving" in conds["Ready"]["message"], conds["Ready"]  # S14: says instances keep serving
    assert "2/2" in conds["Ready"]["message"], conds["Ready"]
    assert conds["ImageResolved"]["status"] == "False"
    assert conds["ImageResolved"]["reason"] == "RegistryUnavailable"
    assert digest in conds["ImageResolved"]["message"]  # the last good digest, kept
    assert conds["Stalled"]["status"] == "False"  # an outage heals by itself
    assert kstatus(down) == "InProgress"
    assert_kstatus_consistent(down)
    assert down["status"]["image"]["digest"] == digest

    # The old pods keep running and the Deployment still runs digest A.
    current = pods(op, "rs", app_ns)
    assert {p["metadata"]["name"] for p in current} == old_pods
    assert all(running(p) for p in current)
    deployment = op.get("deployment", "rs-web", app_ns)
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{reg.host}/status/restage@{digest}"

    # The registry returns: the restage completes by itself (the operator retries transient failures soon).
    reg.start()

    def restaged() -> dict[str, Any] | None:
        obj = op.get("app", "rs", app_ns)
        c = conditions(obj)
        image = (obj or {}).get("status", {}).get("image") or {}
        ok = c.get("Ready", {}).get("status") == "True" and c.get("ImageResolved", {}).get("status") == "True"
        return obj if ok and image.get("restage") == "r1" else None

    done = op.wait_for("restage completes", restaged, timeout=45)
    assert done["status"]["image"]["digest"] == digest
    assert done["status"]["image"]["resolvedAt"] >= resolved_before
    assert kstatus(done) == "Current"
    assert_kstatus_consistent(done)


# -- S12: authentication and TLS ------------------------------------------------------------------------------
def test_wrong_password_is_unauthorized_and_stalled_fixing_the_secret_deploys(
    wharf_operator: Operator, registry_basic: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    digest = push_image(registry_basic, "status/private", "v1", STANDARD_IMAGES["single-port"])
    op.apply(secret("regpass", app_ns, "wrong-password"))
    spec = {"dockerUsername": TEST_USERNAME, "dockerPasswordSecretRef": {"name": "regpass", "key": "password"}}
    op.apply(app("priv", app_ns, f"{registry_basic.host}/status/private:v1", spec=spec))

    reported = app_when(op, "priv", app_ns, "ImageResolved", status="False")
    bad = op.wait_for("Unauthorized reported", reported, timeout=30)
    conds = conditions(bad)
    assert conds["ImageResolved"]["reason"] == "Unauthorized", conds["ImageResolved"]
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "Unauthorized"
    assert conds["Stalled"]["status"] == "True"  # only someone fixing the password helps
    assert kstatus(bad) == "Failed"
    assert_kstatus_consistent(bad)
    assert TEST_PASSWORD not in json.dumps(bad)
    assert "wrong-password" not in json.dumps(bad)
    assert deployed_objects(op, app_ns) == []

    # Fixing the Secret: wharf never watches Secrets (RBAC: get only, see the chart), so the fix is picked up at
    # the slow retry of a failure only a person can fix (60 s after the last attempt), by itself, with no touch.
    op.apply(secret("regpass", app_ns, TEST_PASSWORD))
    good = wait_ready(op, "priv", app_ns, "1/1", timeout=90)
    assert good["status"]["image"]["digest"] == digest
    assert kstatus(good) == "Current"
    # The derived pull Secret lets the pods pull from the authenticated registry.
    deployment = op.get("deployment", "priv-web", app_ns)
    assert deployment is not None
    pull_secrets = [s["name"] for s in deployment["spec"]["template"]["spec"].get("imagePullSecrets", [])]
    assert pull_secrets, deployment["spec"]["template"]["spec"]
    derived = op.get("secret", pull_secrets[0], app_ns)
    assert derived is not None
    assert derived["type"] == "kubernetes.io/dockerconfigjson"
    assert all(running(p) for p in pods(op, "priv", app_ns))


def test_right_password_deploys_and_derived_pull_secret_lets_pods_pull(
    wharf_operator: Operator, registry_basic: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    push_image(registry_basic, "status/private2", "v1", STANDARD_IMAGES["single-port"])
    op.apply(secret("regpass", app_ns, TEST_PASSWORD))
    spec = {"dockerUsername": TEST_USERNAME, "dockerPasswordSecretRef": {"name": "regpass"}}
    op.apply(app("priv2", app_ns, f"{registry_basic.host}/status/private2:v1", spec=spec, instances=2))
    ready = wait_ready(op, "priv2", app_ns, "2/2")
    assert kstatus(ready) == "Current"
    current = pods(op, "priv2", app_ns)
    assert len(current) == 2
    assert all(running(p) for p in current)
    assert all(p["spec"].get("imagePullSecrets") for p in current)


@pytest.mark.parametrize("which", ["token", "tls"])
def test_token_and_tls_registries_resolve_and_run(
    wharf_operator: Operator, registry_token: RegistryServer, registry_tls: RegistryServer, app_ns: str, which: str
) -> None:
    op = wharf_operator
    reg = registry_token if which == "token" else registry_tls
    digest = push_image(reg, f"status/{which}", "v1", STANDARD_IMAGES["multi-port"])
    spec: dict[str, Any] = {}
    if which == "token":  # S12: Bearer tokens from the WWW-Authenticate realm, with the App's credentials
        op.apply(secret("regpass", app_ns, TEST_PASSWORD))
        spec = {"dockerUsername": TEST_USERNAME, "dockerPasswordSecretRef": {"name": "regpass"}}
    op.apply(app(which, app_ns, f"{reg.host}/status/{which}:v1", spec=spec))
    ready = wait_ready(op, which, app_ns, "1/1")
    assert ready["status"]["image"]["digest"] == digest
    assert ready["status"]["port"] == 8080  # S6: the config was read through auth / TLS
    assert conditions(ready)["ImageResolved"]["status"] == "True"
    assert kstatus(ready) == "Current"
    assert all(running(p) for p in pods(op, which, app_ns))


def _pull_secret(name: str, ns: str, type_: str, key: str, content: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": type_,
        "data": {key: base64.b64encode(json.dumps(content).encode()).decode()},
    }


def test_image_pull_secrets_path_scoped_legacy_and_unreadable(
    wharf_operator: Operator, registry_basic: RegistryServer, app_ns: str
) -> None:
    # S1/S14: imagePullSecrets are read as the kubelet reads them; one that cannot be read is reported, by name.
    op = wharf_operator
    host = registry_basic.host
    push_image(registry_basic, "team/app", "v1", STANDARD_IMAGES["single-port"])
    good = base64.b64encode(f"{TEST_USERNAME}:{TEST_PASSWORD}".encode()).decode()
    wrong = base64.b64encode(f"{TEST_USERNAME}:wrong".encode()).decode()
    # The key scoped to the repository's path wins over the host-wide one (the kubelet's rule).
    scoped = {"auths": {host: {"auth": wrong}, f"{host}/team": {"auth": good}}}
    op.apply(_pull_secret("scoped", app_ns, "kubernetes.io/dockerconfigjson", ".dockerconfigjson", scoped))
    op.apply(app("scoped", app_ns, f"{host}/team/app:v1", spec={"imagePullSecrets": [{"name": "scoped"}]}))
    # The legacy kubernetes.io/dockercfg type: the registries map without "auths".
    op.apply(_pull_secret("legacy", app_ns, "kubernetes.io/dockercfg", ".dockercfg", {host: {"auth": good}}))
    op.apply(app("legacy", app_ns, f"{host}/team/app:v1", spec={"imagePullSecrets": [{"name": "legacy"}]}))
    # Valid JSON (the apiserver checks that much) whose `auth` is not base64.
    broken = {"auths": {host: {"auth": "%%% not base64 %%%"}}}
    op.apply(_pull_secret("broken", app_ns, "kubernetes.io/dockerconfigjson", ".dockerconfigjson", broken))
    op.apply(app("broken", app_ns, f"{host}/team/app:v1", spec={"imagePullSecrets": [{"name": "broken"}]}))

    wait_ready(op, "scoped", app_ns, "1/1", timeout=90)
    wait_ready(op, "legacy", app_ns, "1/1", timeout=90)

    stalled = app_when(op, "broken", app_ns, "Stalled", status="True")
    condition = conditions(op.wait_for("broken pull Secret reported", stalled, timeout=30))["Stalled"]
    assert condition["reason"] == "CredentialsMissing"
    assert "image pull Secret broken" in condition["message"]
    assert "base64" in condition["message"]
    assert op.get("deployment", "broken-web", app_ns) is None


def test_an_untrusted_registry_certificate_is_stalled_not_retried(
    solo_operator: SoloOperator, registry_tls: RegistryServer
) -> None:
    # S14: a TLS trust failure heals only when the cluster admin adds the CA; retrying every few seconds would
    # show "Reconciling" forever. This operator has no WHARF_REGISTRY_CA_BUNDLE for the test CA.
    op, ns = solo_operator({})
    push_image(registry_tls, "status/tls", "v1", STANDARD_IMAGES["single-port"])
    op.apply(app("tls", ns, f"{registry_tls.host}/status/tls:v1"))

    found = op.wait_for("Stalled", app_when(op, "tls", ns, "Stalled", status="True"), timeout=60)
    conds = conditions(found)
    assert conds["Stalled"]["reason"] == "RegistryUnavailable"
    assert "WHARF_REGISTRY_CA_BUNDLE" in conds["Stalled"]["message"]
    assert conds["Reconciling"]["status"] == "False"
    assert kstatus(found) == "Failed"
    assert_kstatus_consistent(found)


def test_status_of_a_new_image_keeps_nothing_of_the_old_one(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    # S5, S7, S13: status is written as a merge patch; keys the new status lacks must go, or the next reconcile
    # would read the old image's CMD back from status and deploy an image that has no start command.
    op = wharf_operator
    repo = f"{registry_plain.host}/status/switch"
    push_image(registry_plain, "status/switch", "root", STANDARD_IMAGES["user-root"])
    push_image(registry_plain, "status/switch", "bare", STANDARD_IMAGES["no-command"])
    push_image(registry_plain, "status/switch", "numeric", STANDARD_IMAGES["user-numeric"])
    op.apply(app("switch", app_ns, f"{repo}:root", memory="64M"))
    first = wait_ready(op, "switch", app_ns, "1/1")
    assert first["status"]["image"]["cmd"] == ["/app/server"]
    assert "running as uid 2000" in first["status"]["runAsNote"]
    running_digest = first["status"]["image"]["digest"]

    op.apply(app("switch", app_ns, f"{repo}:bare", memory="64M"))

    bare = op.wait_for("NoStartCommand", app_when(op, "switch", app_ns, "Stalled", reason="NoStartCommand"), timeout=30)
    assert "cmd" not in bare["status"]["image"]
    assert bare["status"]["image"]["digest"] != running_digest
    # A pod event makes the operator reconcile again: it must still refuse, and keep the old instances running.
    for pod in pods(op, "switch", app_ns):
        op.cluster.kubectl("delete", "pod", pod["metadata"]["name"], "-n", app_ns, "--wait=false")
    wait_ready_instances = op.wait_for("a new pod", lambda: [p for p in pods(op, "switch", app_ns) if running(p)])
    assert wait_ready_instances
    assert conditions(op.get("app", "switch", app_ns))["Stalled"]["reason"] == "NoStartCommand"
    deployment = op.get("deployment", "switch-web", app_ns) or {}
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(running_digest)

    op.apply(app("switch", app_ns, f"{repo}:numeric", memory="64M"))
    numeric = op.wait_for(
        "Ready on the numeric image",
        lambda: (
            (o := op.get("app", "switch", app_ns))
            and o["status"].get("runAsUser") == 1001
            and is_ready(op, "switch", app_ns)
            and o
        ),
        timeout=60,
    )
    assert numeric["status"]["runAsNote"] == "image USER 1001"  # the root image's note does not outlive it
    assert numeric["status"]["image"]["cmd"] == ["/app/server"]


def _watched(stream: str) -> list[dict[str, Any]]:
    """The objects of a raw watch stream (`{"type": ..., "object": ...}` events one after another), in order."""
    decoder, objects, at = json.JSONDecoder(), [], 0
    while (at := stream.find("{", at)) != -1:
        event, at = decoder.raw_decode(stream, at)
        objects.append(event["object"])
    return objects


def test_a_new_app_is_in_progress_before_the_registry_answers(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    # S14, kstatus: an App with no status at all reads as Current, so Flux's `wait` and `kubectl wait` could pass before
    # wharf looked at it. The CRD's default status says generation 0 observed from the start, and the first status
    # wharf writes says InProgress (Reconciling, observedGeneration) at once.
    op = wharf_operator
    push_image(registry_plain, "status/first", "v1", STANDARD_IMAGES["single-port"])
    cp = op.cluster.control_plane
    apps_path = f"/apis/wharf.dev/v1alpha1/namespaces/{app_ns}/apps"
    # The watch starts from a resourceVersion read before the App exists, so the apiserver replays every write
    # after it however late kubectl gets going (a plain `kubectl get --watch` can start after the first status).
    listed = json.loads(op.cluster.kubectl("get", "--raw", apps_path).stdout)
    since = listed["metadata"]["resourceVersion"]
    command = [
        str(cp.kubectl_path),
        f"--kubeconfig={cp.kubeconfig}",
        "get",
        "--raw",
        f"{apps_path}?watch=true&resourceVersion={since}",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as watch:
        try:
            op.apply(app("first", app_ns, f"{registry_plain.host}/status/first:v1", memory="64M"))
            wait_ready(op, "first", app_ns, "1/1")
        finally:
            watch.terminate()
        stream, _ = watch.communicate(timeout=10)
    watched = _watched(stream)
    # Before wharf writes anything, the CRD's default says no generation was observed: kstatus's InProgress, where
    # an App with no status at all would be Current to it (Flux's health checks passed such an App at once).
    created = watched[0]
    assert created["status"] == {"observedGeneration": 0}, created
    assert created["metadata"]["generation"] == 1
    with_status = [o for o in watched if (o.get("status") or {}).get("conditions")]
    assert with_status, stream
    first = with_status[0]
    assert kstatus(first) == "InProgress"
    assert first["status"]["observedGeneration"] == first["metadata"]["generation"]
    assert conditions(first)["Reconciling"]["status"] == "True"
    assert "image" not in first["status"]  # written before the registry was asked


# -- instances that cannot be created or scheduled ------------------------------------------------------------
def warning_reasons(op: Operator, name: str, ns: str) -> list[str]:
    return [e["reason"] for e in op.app_events(ns, name) if e["type"] == "Warning"]


def test_a_resource_quota_refusing_the_instances_is_stalled_with_its_message_and_heals_when_lifted(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-pods", "namespace": app_ns},
        "spec": {"hard": {"pods": "0"}},
    }
    op.apply(quota)
    # Admission says `exceeded quota` once the quota controller has counted the namespace's usage.
    op.wait_for(
        "the quota counted",
        lambda: ((op.get("resourcequota", "no-pods", app_ns) or {}).get("status") or {}).get("used"),
        timeout=30,
    )
    push_image(registry_plain, "status/quota", "v1", STANDARD_IMAGES["single-port"])
    op.apply(app("quota", app_ns, f"{registry_plain.host}/status/quota:v1"))

    refused = op.wait_for(
        "Ready False InstancesForbidden",
        app_when(op, "quota", app_ns, "Ready", status="False", reason="InstancesForbidden"),
    )
    conds = conditions(refused)
    message = conds["Ready"]["message"]
    # The apiserver's words, as the Deployment controller copied them from the ReplicaSet, and what to change.
    deployment = op.get("deployment", "quota-web", app_ns)
    assert deployment is not None
    failure = next(c for c in deployment["status"]["conditions"] if c["type"] == "ReplicaFailure")
    assert (failure["status"], failure["reason"]) == ("True", "FailedCreate")
    assert "exceeded quota: no-pods" in failure["message"], failure
    assert failure["message"] in message
    assert "raise the namespace's ResourceQuota no-pods or lower the App's instances, memory or disk_quota" in message
    # Only someone can help: Stalled, which kstatus (Flux) calls Failed and the Argo CD script Degraded.
    assert (conds["Stalled"]["status"], conds["Stalled"]["reason"]) == ("True", "InstancesForbidden")
    assert conds["Reconciling"]["status"] == "False"
    assert kstatus(refused) == "Failed"
    assert_kstatus_consistent(refused)
    assert not pods(op, "quota", app_ns)
    op.wait_for(
        "a Warning event InstancesForbidden",
        lambda: "InstancesForbidden" in warning_reasons(op, "quota", app_ns),
        timeout=10,
    )
    # A new quota's usage may not be counted at the very first try (`status unknown for quota`): retried, not more.
    assert set(warning_reasons(op, "quota", app_ns)) <= {"InstancesNotCreated", "InstancesForbidden"}
    assert warning_reasons(op, "quota", app_ns).count("InstancesForbidden") == 1

    # The quota is lifted: nobody touches the App, the ReplicaSet controller's retry creates the pod, Ready.
    op.cluster.kubectl("delete", "resourcequota", "no-pods", "-n", app_ns)
    healed = wait_ready(op, "quota", app_ns, "1/1", timeout=90)
    assert kstatus(healed) == "Current"
    assert_kstatus_consistent(healed)
    assert all(running(p) for p in pods(op, "quota", app_ns))


def test_more_memory_than_any_node_has_is_unschedulable_stalls_at_the_progress_deadline_and_heals(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    op = wharf_operator
    image = f"{registry_plain.host}/status/big:v1"
    push_image(registry_plain, "status/big", "v1", STANDARD_IMAGES["single-port"])
    # The fake nodes have 1Ti of memory (tests/harness/kwok-stages.yaml).
    op.apply(app("big", app_ns, image, memory="2T"))

    waiting = op.wait_for(
        "Ready False Unschedulable", app_when(op, "big", app_ns, "Ready", status="False", reason="Unschedulable")
    )
    conds = conditions(waiting)
    message = conds["Ready"]["message"]
    (pending,) = pods(op, "big", app_ns)
    scheduled = next(c for c in pending["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    assert "Insufficient memory" in scheduled["message"], scheduled
    assert message.startswith(f"web instances cannot be scheduled: {scheduled['message']}"), message
    assert f"(pod {pending['metadata']['name']})" in message
    assert "lower the App's memory, or add nodes with more room" in message
    # Nodes may come (a cluster autoscaler): waiting, InProgress for kstatus, Progressing for Argo CD.
    assert (conds["Reconciling"]["status"], conds["Reconciling"]["reason"]) == ("True", "Unschedulable")
    assert conds["Stalled"]["status"] == "False"
    assert kstatus(waiting) == "InProgress"
    assert_kstatus_consistent(waiting)
    op.wait_for(
        "a Warning event Unschedulable",
        lambda: warning_reasons(op, "big", app_ns) == ["Unschedulable"],
        timeout=10,
    )

    # No room ever comes: the Deployment gives up at its progress deadline (600 s by default; shortened here, on a
    # field wharf does not set, so its server-side apply leaves it alone), and the App turns Stalled.
    op.cluster.kubectl(
        "patch", "deployment", "big-web", "-n", app_ns, "--type=merge", "-p", '{"spec":{"progressDeadlineSeconds":2}}'
    )

    gave_up = app_when(op, "big", app_ns, "Stalled", status="True")

    stalled = op.wait_for("Stalled ProgressDeadlineExceeded", gave_up, timeout=30)
    conds = conditions(stalled)
    assert conds["Stalled"]["reason"] == "ProgressDeadlineExceeded", conds["Stalled"]
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", "Unschedulable")  # still the cause
    assert "Insufficient memory" in conds["Ready"]["message"]
    assert "has timed out progressing" in conds["Ready"]["message"]
    assert conds["Reconciling"]["status"] == "False"
    assert kstatus(stalled) == "Failed"
    assert_kstatus_consistent(stalled)
    op.wait_for(
        "a Warning event ProgressDeadlineExceeded",
        lambda: sorted(warning_reasons(op, "big", app_ns)) == ["ProgressDeadlineExceeded", "Unschedulable"],
        timeout=10,
    )

    # The App asks for what a node has: a new rollout, scheduled, Ready.
    op.cluster.kubectl(
        "patch",
        "deployment",
        "big-web",
        "-n",
        app_ns,
        "--type=merge",
        "-p",
        '{"spec":{"progressDeadlineSeconds":null}}',
    )
    op.apply(app("big", app_ns, image, memory="256M"))
    healed = wait_ready(op, "big", app_ns, "1/1", timeout=90)
    assert kstatus(healed) == "Current"
    assert_kstatus_consistent(healed)
    assert all(running(p) for p in pods(op, "big", app_ns))


def test_a_password_secret_that_goes_missing_keeps_what_runs(
    wharf_operator: Operator, registry_basic: RegistryServer, app_ns: str
) -> None:
    # S1, S14: the password Secret deleted (or renamed) under a running App: the App says so, and the pull Secret
    # the running pods were started with, and the Deployment pulling with it, stay as they are.
    op = wharf_operator
    push_image(registry_basic, "status/keep", "v1", STANDARD_IMAGES["single-port"])
    op.apply(secret("keep-pass", app_ns, TEST_PASSWORD))
    spec = {"dockerUsername": TEST_USERNAME, "dockerPasswordSecretRef": {"name": "keep-pass"}}
    op.apply(app("keep", app_ns, f"{registry_basic.host}/status/keep:v1", spec=spec))
    wait_ready(op, "keep", app_ns, "1/1")
    before = op.get("deployment", "keep-web", app_ns) or {}

    op.cluster.kubectl("delete", "secret", "keep-pass", "-n", app_ns)
    op.cluster.kubectl("annotate", "app", "keep", "-n", app_ns, "example.com/touched=1")  # a reconcile, now

    stalled = app_when(op, "keep", app_ns, "Stalled", reason="CredentialsMissing")
    condition = conditions(op.wait_for("CredentialsMissing", stalled, timeout=30))["Stalled"]
    assert "keep-pass" in condition["message"]
    assert op.get("secret", "keep-registry", app_ns) is not None
    after = op.get("deployment", "keep-web", app_ns) or {}
    assert after["spec"]["template"] == before["spec"]["template"]
    assert all(running(p) for p in pods(op, "keep", app_ns))

    op.apply(secret("keep-pass", app_ns, TEST_PASSWORD))
    op.cluster.kubectl("annotate", "app", "keep", "-n", app_ns, "example.com/touched=2", "--overwrite")
    wait_ready(op, "keep", app_ns, "1/1")


def _apps_gauge(op: Operator) -> float:
    text = httpx.get(op.metrics_url, timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("wharf_apps{"))


def test_a_deleted_app_is_forgotten(wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str) -> None:
    # S15: Apps carry no finalizer, so no delete handler runs: the operator forgets a deleted App when it next looks
    # (its pods going away). The wharf_apps gauge counts only Apps that exist.
    op = wharf_operator
    push_image(registry_plain, "status/forget", "v1", STANDARD_IMAGES["single-port"])
    op.apply(app("forget", app_ns, f"{registry_plain.host}/status/forget:v1", memory="64M"))
    wait_ready(op, "forget", app_ns, "1/1")
    counted = _apps_gauge(op)
    op.cluster.kubectl("delete", "app", "forget", "-n", app_ns)
    op.wait_for("the App forgotten", lambda: _apps_gauge(op) == counted - 1, timeout=30)
