"""A fix for kopf (1.45): a kind whose CRD is deleted and created again is watched again.

kopf watches CRDs and, on each event of one, reads the apiserver's discovery for that CRD's group to learn what it
serves. When the App CRD is created again (`helm uninstall` then `helm install`, an Argo CD sync that replaces it,
`kubectl delete crd` and `apply`), its last event (Established) can come before discovery serves the group: kopf
reads that nothing is served, logs "Unresolved resources cannot be served", and no later event of the CRD comes to
make it look again, so no App is reconciled until the operator restarts. Here an event of an Established CRD of a
group the operator handles, whose kind kopf then still does not serve, is followed by discovery reads, backing off,
until the kind is served (then kopf's view of the group is revised with it) or a minute has passed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kopf._cogs.clients import scanning
from kopf._core.reactor import observation

log = logging.getLogger(__name__)

_kopf_process = observation.process_discovered_resource_event

_PATIENCE = 60.0  # seconds of discovery reads after the CRD's event; the apiserver takes well under a second
_FIRST_DELAY, _MAX_DELAY = 0.2, 5.0


def _established(crd: Any) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def _handled_groups(registry: Any) -> set[str]:
    selectors = (
        registry._indexing.get_all_selectors()
        | registry._watching.get_all_selectors()
        | registry._spawning.get_all_selectors()
        | registry._changing.get_all_selectors()
    )
    return {selector.group for selector in selectors if selector.group}


async def process_discovered_resource_event(
    *, raw_event: Any, settings: Any, registry: Any, insights: Any, **kwargs: Any
) -> None:
    await _kopf_process(raw_event=raw_event, settings=settings, registry=registry, insights=insights, **kwargs)
    crd = raw_event["object"]
    if raw_event["type"] in (None, "DELETED") or crd.get("metadata", {}).get("deletionTimestamp"):
        return
    group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
    if not _established(crd) or group not in _handled_groups(registry):
        return
    loop, delay = asyncio.get_running_loop(), _FIRST_DELAY
    deadline = loop.time() + _PATIENCE
    while not any(r.group == group and r.plural == plural for r in insights.watched_resources):
        if loop.time() > deadline:
            log.warning("%s.%s is Established but discovery has not served it for %.0f s", plural, group, _PATIENCE)
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, _MAX_DELAY)
        resources = await scanning.scan_resources(groups={group}, settings=settings, logger=log)
        if any(r.plural == plural for r in resources):
            log.info("%s.%s is served again: watching it", plural, group)
            async with insights.revised:
                observation.revise_resources(resources=resources, insights=insights, registry=registry, group=group)
                await insights.backbone.fill(resources=resources)
                insights.revised.notify_all()
            return


def install() -> None:
    """Replace kopf's handler of CRD events (looked up when kopf starts observing resources)."""
    observation.process_discovered_resource_event = process_discovered_resource_event
