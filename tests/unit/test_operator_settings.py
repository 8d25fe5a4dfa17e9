"""The kopf settings wharf runs with (wharf.handlers.operator.configure), read the way kopf's watcher reads them."""

from __future__ import annotations

import kopf
import pytest
from kopf._cogs.structs.references import Resource

from wharf.api.app import GROUP, PLURAL, VERSION
from wharf.config import Settings
from wharf.handlers.operator import configure

PODS = Resource("", "v1", "pods", kind="Pod", namespaced=True)
DEPLOYMENTS = Resource("apps", "v1", "deployments", kind="Deployment", namespaced=True)
APPS = Resource(GROUP, VERSION, PLURAL, kind="App", namespaced=True)


def _label_selector(settings: kopf.OperatorSettings, resource: Resource) -> str:
    # What kopf's watch stream sends as `labelSelector` (kopf._cogs.clients.watching.watch_objs).
    return ",".join(sorted(set(settings.watching.label_selectors.collect(resource))))


def test_only_wharfs_pods_and_deployments_are_streamed() -> None:
    # The apiserver filters: a cluster's other pods and Deployments never reach the operator's event loop.
    settings = kopf.OperatorSettings()
    configure(settings, Settings())
    assert _label_selector(settings, PODS) == "wharf.dev/app"
    assert _label_selector(settings, DEPLOYMENTS) == "wharf.dev/app"
    assert _label_selector(settings, APPS) == ""  # every App is wharf's


def test_kopf_bookkeeping_stays_out_of_status_and_events_are_wharfs_own() -> None:
    settings = kopf.OperatorSettings()
    configure(settings, Settings())
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert settings.posting.enabled is False


@pytest.mark.parametrize("selector", ["wharf.dev/shard notin (b,c)", "wharf.dev/shard=b", "!wharf.dev/shard"])
def test_a_shard_is_sent_only_its_own_apps_and_their_objects(selector: str) -> None:
    # Sharding on the shard label: each replica's App watch carries its selector, and so do its watches of pods and
    # Deployments (wharf copies the label onto what an App owns): a shard's caches hold only its slice.
    settings = kopf.OperatorSettings()
    configure(settings, Settings.from_env({"WHARF_APP_SELECTOR": selector}))
    assert _label_selector(settings, APPS) == selector
    assert _label_selector(settings, PODS) == f"wharf.dev/app,{selector}"
    assert _label_selector(settings, DEPLOYMENTS) == f"wharf.dev/app,{selector}"


@pytest.mark.parametrize("selector", ["team=shop", "wharf.dev/shard=b,team=shop", "team in (a,b)"])
def test_a_selector_on_other_labels_narrows_only_the_apps(selector: str) -> None:
    # Labels wharf does not copy onto what an App owns cannot select those objects: every shard then watches them.
    settings = kopf.OperatorSettings()
    configure(settings, Settings.from_env({"WHARF_APP_SELECTOR": selector}))
    assert _label_selector(settings, APPS) == selector
    assert _label_selector(settings, PODS) == "wharf.dev/app"


def test_a_standby_replica_takes_over_after_the_peering_lifetime() -> None:
    settings = kopf.OperatorSettings()
    configure(settings, Settings())
    assert settings.peering.lifetime == 10  # kopf's own default (60 s) would leave Apps unserved for a minute
    configure(settings, Settings.from_env({"WHARF_PEERING_LIFETIME_SECONDS": "20"}))
    assert settings.peering.lifetime == 20
