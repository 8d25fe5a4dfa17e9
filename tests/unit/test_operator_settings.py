"""The kopf settings wharf runs with (wharf.handlers.operator.configure), read the way kopf's watcher reads them."""

from __future__ import annotations

import kopf
from kopf._cogs.structs.references import Resource

from wharf.api.app import GROUP, PLURAL, VERSION
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
    configure(settings)
    assert _label_selector(settings, PODS) == "wharf.dev/app"
    assert _label_selector(settings, DEPLOYMENTS) == "wharf.dev/app"
    assert _label_selector(settings, APPS) == ""  # every App is wharf's


def test_kopf_bookkeeping_stays_out_of_status_and_events_are_wharfs_own() -> None:
    settings = kopf.OperatorSettings()
    configure(settings)
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert settings.posting.enabled is False
