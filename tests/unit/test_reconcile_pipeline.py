"""The reconcile's orchestration against an in-memory apiserver (httpx.MockTransport): which requests it makes
and when it makes none (issue 14: apply only what differs, status only when it changes, nothing when the caches
agree), what it does with a name it did not make (S17) and with drift, and what it retries. Orchestration only:
how the cluster behaves is proven on the real control plane (tests/integration)."""

from __future__ import annotations

from typing import Any

import pytest
from render_support import DIGEST, make_facts

from harness.fake_apiserver import FakeApiserver, reconciler_on
from wharf.api.image import ImageFacts
from wharf.config import Settings
from wharf.handlers.reconciler import Reconciler
from wharf.registry import Credentials, NotFound, Unavailable

NS = "space"
APPS = f"/apis/wharf.dev/v1alpha1/namespaces/{NS}/apps"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
SERVICES = f"/api/v1/namespaces/{NS}/services"
SECRETS = f"/api/v1/namespaces/{NS}/secrets"
IMAGE = "registry.example.com:5000/team/shop:1.0"


class FakeResolver:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.error: Exception | None = None

    async def resolve(
        self, reference: str, credentials: Credentials | None = None, *, fresh: bool = False
    ) -> ImageFacts:
        self.calls.append(reference)
        if self.error is not None:
            raise self.error
        return make_facts((8080,), reference=reference)


def _app(name: str = "shop", **manifest: Any) -> dict[str, Any]:
    return {
        "apiVersion": "wharf.dev/v1alpha1",
        "kind": "App",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"dockerImage": IMAGE, "manifest": manifest},
    }


@pytest.fixture
def fake() -> FakeApiserver:
    return FakeApiserver()


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver()


@pytest.fixture
def reconciler(fake: FakeApiserver, resolver: FakeResolver) -> Reconciler:
    reconciler: Reconciler = reconciler_on(fake, resolver, Settings())
    return reconciler


def _conditions(fake: FakeApiserver, name: str = "shop") -> dict[str, dict[str, Any]]:
    status = fake.objects[f"{APPS}/{name}"].get("status") or {}
    return {c["type"]: c for c in status.get("conditions", [])}


def _roll_out(fake: FakeApiserver, name: str = "shop-web") -> None:
    """What the Deployment controller would write: every replica updated and available."""
    deployment = fake.objects[f"{DEPLOYMENTS}/{name}"]
    replicas = deployment["spec"]["replicas"]
    deployment["status"] = {
        "observedGeneration": deployment["metadata"]["generation"],
        **dict.fromkeys(("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"), replicas),
    }
    deployment["metadata"]["resourceVersion"] = fake._next()


async def _converged(fake: FakeApiserver, reconciler: Reconciler) -> None:
    fake.put(f"{APPS}/shop", _app())
    assert await reconciler.reconcile((NS, "shop")) is False
    _roll_out(fake)
    assert await reconciler.reconcile((NS, "shop")) is False
    assert _conditions(fake)["Ready"]["reason"] == "Running"


async def test_a_new_app_is_applied_once_and_a_reconcile_with_nothing_changed_makes_no_request(
    fake: FakeApiserver, reconciler: Reconciler, resolver: FakeResolver
) -> None:
    fake.put(f"{APPS}/shop", _app())
    assert await reconciler.reconcile((NS, "shop")) is False
    verbs = [(r.method, r.path.rsplit("/", 2)[-2] if r.method != "POST" else "events") for r in fake.requests]
    # First status (Reconciling) before the registry; a look at each name never seen; the applies; the status.
    assert verbs[0] == ("PATCH", "shop")  # .../apps/shop/status
    assert ("GET", "deployments") in verbs
    assert ("GET", "services") in verbs
    applies = [r.path for r in fake.requests if r.content_type.startswith("application/apply-patch")]
    assert applies == [f"{DEPLOYMENTS}/shop-web", f"{SERVICES}/shop"]
    assert resolver.calls == [IMAGE]
    assert fake.objects[f"{DEPLOYMENTS}/shop-web"]["metadata"]["annotations"]["wharf.dev/applied-hash"]

    _roll_out(fake)
    fake.clear()
    assert await reconciler.reconcile((NS, "shop")) is False
    assert [(r.method, r.path) for r in fake.requests] == [("PATCH", f"{APPS}/shop/status")] + [
        ("POST", f"/api/v1/namespaces/{NS}/events")
    ] * (len(fake.requests) - 1)  # the status turns Running (and says so once); nothing is applied again
    assert _conditions(fake)["Ready"]["reason"] == "Running"

    fake.clear()
    for _ in range(3):  # the safety net, a pod event, a resync: the caches agree, nothing is sent
        assert await reconciler.reconcile((NS, "shop")) is False
    assert fake.requests == []
    assert resolver.calls == [IMAGE]  # S13: never resolved again


async def test_writes_the_watch_has_not_delivered_yet_are_not_repeated(
    fake: FakeApiserver, reconciler: Reconciler
) -> None:
    await _converged(fake, reconciler)
    app = fake.objects[f"{APPS}/shop"]
    app["spec"]["manifest"]["instances"] = 3  # kubectl scale app
    app["metadata"]["generation"] += 1
    app["metadata"]["resourceVersion"] = fake._next()
    fake.lag()  # from here the indexes show neither the Deployment wharf applies nor the status it writes
    fake.clear()
    assert await reconciler.reconcile((NS, "shop")) is False
    applies = [r.path for r in fake.writes() if r.content_type.startswith("application/apply-patch")]
    assert applies == [f"{DEPLOYMENTS}/shop-web"]
    assert [r.path for r in fake.writes() if r.path.endswith("/status")] == [f"{APPS}/shop/status"]
    assert _conditions(fake)["Ready"]["reason"] == "Starting"  # the applied generation is not rolled out yet

    fake.clear()
    assert await reconciler.reconcile((NS, "shop")) is False  # another event, before the watch delivered
    assert fake.writes() == []
    fake.catch_up()
    assert await reconciler.reconcile((NS, "shop")) is False
    assert fake.writes() == []


async def test_a_service_of_someone_else_is_left_untouched_and_the_app_is_stalled(
    fake: FakeApiserver, reconciler: Reconciler
) -> None:
    # S17: nothing adopted; nothing of the App is written either (the names are checked before any write).
    user = fake.put(f"{SERVICES}/shop", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop"}})
    fake.put(f"{APPS}/shop", _app())
    assert await reconciler.reconcile((NS, "shop")) is False  # waits for a person, not retried
    assert fake.objects[f"{SERVICES}/shop"] == user
    assert not any(r.content_type.startswith("application/apply-patch") for r in fake.requests)
    stalled = _conditions(fake)["Stalled"]
    assert (stalled["status"], stalled["reason"]) == ("True", "NameConflict")
    assert "the Service shop already exists" in stalled["message"]
    assert "rename" in stalled["message"]


async def test_drift_makes_the_fields_wharfs_before_it_applies_again(
    fake: FakeApiserver, reconciler: Reconciler
) -> None:
    await _converged(fake, reconciler)
    deployment = fake.objects[f"{DEPLOYMENTS}/shop-web"]
    deployment["metadata"]["managedFields"].append(
        {
            "manager": "intruder",
            "operation": "Update",
            "apiVersion": "apps/v1",
            "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:hostNetwork": {}}}}},
        }
    )
    deployment["spec"]["template"]["spec"]["hostNetwork"] = True
    deployment["metadata"]["resourceVersion"] = fake._next()
    fake.clear()
    assert await reconciler.reconcile((NS, "shop")) is False
    calls = [(r.method, r.content_type.split(";")[0]) for r in fake.requests if r.path == f"{DEPLOYMENTS}/shop-web"]
    assert calls == [("GET", ""), ("PATCH", "application/merge-patch+json"), ("PATCH", "application/apply-patch+yaml")]
    taken = fake.requests[1].body["metadata"]
    assert taken["resourceVersion"]  # only over the version it read
    (ours,) = [e for e in taken["managedFields"] if e["manager"] == "wharf"]
    assert ours["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:hostNetwork"] == {}
    assert not [e for e in taken["managedFields"] if e["manager"] == "intruder"]


@pytest.mark.parametrize(("error", "retried"), [(Unavailable("down"), True), (NotFound("no such tag"), False)])
async def test_a_registry_failure_is_retried_only_when_it_heals_by_itself(
    fake: FakeApiserver, reconciler: Reconciler, resolver: FakeResolver, error: Exception, retried: bool
) -> None:
    resolver.error = error
    fake.put(f"{APPS}/shop", _app())
    assert await reconciler.reconcile((NS, "shop")) is retried
    assert not any(r.content_type.startswith("application/apply-patch") for r in fake.requests)
    assert _conditions(fake)["Stalled"]["status"] == ("False" if retried else "True")


async def test_an_apiserver_failure_is_retried_and_a_deleted_app_leaves_nothing_behind(
    fake: FakeApiserver, reconciler: Reconciler
) -> None:
    fake.put(f"{APPS}/shop", _app())
    fake.refuse[f"{DEPLOYMENTS}/shop-web"] = (500, "etcd is sad")
    assert await reconciler.reconcile((NS, "shop")) is True  # backoff, then again
    del fake.refuse[f"{DEPLOYMENTS}/shop-web"]
    assert await reconciler.reconcile((NS, "shop")) is False
    assert reconciler.tracked() == 1
    del fake.objects[f"{APPS}/shop"]
    fake.clear()
    assert await reconciler.reconcile((NS, "shop")) is False
    assert fake.requests == []
    assert reconciler.tracked() == 0


def test_digest_of_the_fake_image_is_the_one_resolved() -> None:
    assert make_facts((8080,)).digest == DIGEST


def _gone_while_cached(fake: FakeApiserver) -> None:
    """The App and its namespace deleted while no watch saw it: the indexes keep what they had (kopf removes an
    entry only on a DELETED event), the apiserver has none of it."""
    fake.lag()
    for path in [p for p in fake.objects if p.startswith(f"/apis/wharf.dev/v1alpha1/namespaces/{NS}/")]:
        del fake.objects[path]
    for path in [p for p in fake.objects if f"/namespaces/{NS}/" in p]:
        del fake.objects[path]
    assert fake._frozen is not None
    # Seen before the watch stopped: the pods going, so the App's status would change (a status patch is due).
    fake._frozen[f"{DEPLOYMENTS}/shop-web"]["status"]["availableReplicas"] = 0
    for path in (f"{DEPLOYMENTS}/shop-web", f"{SERVICES}/shop"):  # and the namespace's end: nothing can be made
        fake.refuse[path] = (404, f'namespaces "{NS}" not found')


@pytest.mark.parametrize("spec_changed", [False, True], ids=["status-patch-404", "apply-404"])
async def test_an_app_gone_while_the_cache_still_holds_it_is_forgotten_for_good(
    fake: FakeApiserver, reconciler: Reconciler, spec_changed: bool
) -> None:
    await _converged(fake, reconciler)
    _gone_while_cached(fake)
    if spec_changed:  # an edit seen just before: the apply comes first, and is refused
        assert fake._frozen is not None
        app = fake._frozen[f"{APPS}/shop"]
        app["spec"]["manifest"]["instances"] = 2
        app["metadata"]["generation"] += 1
    fake.clear()
    assert await reconciler.reconcile((NS, "shop")) is False  # not retried
    assert ("GET", f"{APPS}/shop") in [(r.method, r.path) for r in fake.requests]  # confirmed with one look
    assert reconciler.tracked() == 0  # nothing of the App kept
    caches = reconciler._caches
    assert caches.live_keys() == []
    assert caches.app((NS, "shop")) is None
    assert caches.objects("Deployment", (NS, "shop")) == []
    assert caches.pods_of((NS, "shop")) == []

    fake.clear()
    for _ in range(3):  # the safety net, an event of its stale Deployment: nothing is sent, nothing retried
        assert await reconciler.reconcile((NS, "shop")) is False
    assert fake.requests == []

    fake.catch_up()  # the index drops it (its DELETED came after all): the tombstone goes with it
    assert caches.live_keys() == []
    assert caches.buried == {}


async def test_a_404_for_an_app_that_still_exists_is_retried_and_a_new_app_of_the_same_name_is_served(
    fake: FakeApiserver, reconciler: Reconciler
) -> None:
    fake.put(f"{APPS}/shop", _app())
    fake.refuse[f"{APPS}/shop/status"] = (404, "the status subresource is not served yet")
    assert await reconciler.reconcile((NS, "shop")) is True  # the App is there (one GET): backoff, then again
    assert reconciler._caches.buried == {}
    del fake.refuse[f"{APPS}/shop/status"]
    await _converged(fake, reconciler)

    _gone_while_cached(fake)
    assert await reconciler.reconcile((NS, "shop")) is False
    fake.refuse.clear()
    # The namespace made again, and an App of the same name in it, seen while the Deployment's index still holds
    # the earlier App's (S17: the earlier App's object would be a conflict; the apiserver says it is gone).
    new = fake.put(f"{APPS}/shop", _app())
    assert fake._frozen is not None
    fake._frozen[f"{APPS}/shop"] = new
    assert reconciler._caches.app((NS, "shop")) is not None
    assert reconciler._caches.buried == {}  # the tombstone was the earlier App's
    assert await reconciler.reconcile((NS, "shop")) is False
    deployment = fake.objects[f"{DEPLOYMENTS}/shop-web"]
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == new["metadata"]["uid"]
    assert "Stalled" not in _conditions(fake) or _conditions(fake)["Stalled"]["status"] == "False"
