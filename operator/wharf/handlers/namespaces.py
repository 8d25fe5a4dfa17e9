"""A fix for kopf (1.45): namespaces that appear in a re-listing are served.

With namespace patterns (`wharf run --namespace='!kube-*'`), kopf watches Namespaces and starts a watch of Apps in
each matching one. Its namespace watch ignores the items of every listing, taking them for the initial state it
already has. But it lists again whenever its watch cannot resume: after a kube-apiserver restart, the new
apiserver's watch cache no longer holds the old resource version (410 Gone), and a namespace created while the
apiserver was away, or before the watch resumed, shows up only in that listing: kopf never watched it, and its
Apps were never reconciled until the operator restarted (issue 11). Here a listed namespace that matches is
added like a watched one (adding is idempotent; deletions still come from the watch).
"""

from __future__ import annotations

from typing import Any

from kopf._core.reactor import observation

_kopf_process = observation.process_discovered_namespace_event


async def process_discovered_namespace_event(*, raw_event: Any, namespaces: Any, insights: Any, **kwargs: Any) -> None:
    if raw_event["type"] is None:
        async with insights.revised:
            observation.revise_namespaces(raw_events=[raw_event], insights=insights, namespaces=namespaces)
            insights.revised.notify_all()
        return
    await _kopf_process(raw_event=raw_event, namespaces=namespaces, insights=insights, **kwargs)


def install() -> None:
    """Replace kopf's handler of namespace events (looked up when kopf starts observing namespaces)."""
    observation.process_discovered_namespace_event = process_discovered_namespace_event
