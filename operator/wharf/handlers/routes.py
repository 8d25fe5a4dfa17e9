"""S19: the routes every App claims, across the namespaces the operator watches, and the refresh of the Apps whose
verdict may change when a claim comes, changes or goes. The verdict itself is pure (wharf.status.routes).

A kopf index: kopf fills it from the initial listing of Apps before any App handler runs, so a freshly started
operator never routes a host to a younger App only because it has not seen the older claim yet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import kopf
from pydantic import ValidationError

from wharf.api.app import GROUP, PLURAL, VERSION, App
from wharf.config import Routing, Settings
from wharf.status.routes import RouteClaim, claim_of, overlapping, route_conflict

log = logging.getLogger(__name__)
INDEX = "route_claims"  # the kwarg kopf passes the index as
NEWEST = "9999-12-31T23:59:59Z"  # an App not indexed yet (its creation is newer than every indexed claim)

Refresh = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True)
class Indexed:
    """An App as the index keeps it: parsed, with its creation time (the claim's age)."""

    created: str
    app: App


@kopf.index(GROUP, VERSION, PLURAL, id=INDEX)
def route_claims(body: kopf.Body, meta: kopf.Meta, **_: Any) -> dict[tuple[str, str], Indexed]:
    try:
        app = App.from_resource(dict(body))
    except (ValidationError, KeyError):
        return {}  # an App that does not parse claims nothing (its status says why)
    return {(app.namespace, app.name): Indexed(str(meta.get("creationTimestamp") or NEWEST), app)}


class RouteOwnership:
    """The reconciler's view of the index: is this App's route someone else's?"""

    def __init__(self, index: kopf.Index[tuple[str, str], Indexed], settings: Settings) -> None:
        self._index = index
        self._settings = settings
        self._seen: dict[tuple[str, str], RouteClaim | None] = {}

    def _claim(self, indexed: Indexed) -> RouteClaim:
        return claim_of(indexed.app, indexed.created, self._settings.default_domain)

    def claims(self) -> list[RouteClaim]:
        found = (self._claim(i) for key in list(self._index) for i in self._index.get(key, []))
        return [claim for claim in found if claim.routes]

    def _indexed_claim(self, key: tuple[str, str]) -> RouteClaim | None:
        indexed = next(iter(self._index.get(key, [])), None)
        claim = self._claim(indexed) if indexed is not None else None
        return claim if claim is not None and claim.routes else None

    def conflict(self, app: App) -> str | None:
        """Why nothing may be routed to `app` (naming the owners), or None."""
        if self._settings.routing is Routing.NONE:
            return None  # nothing is routed at all: no route is taken from anyone
        indexed = next(iter(self._index.get((app.namespace, app.name), [])), None)
        mine = claim_of(app, indexed.created if indexed else NEWEST, self._settings.default_domain)
        return route_conflict(mine, self.claims())

    async def changed(self, namespace: str, name: str, listing: bool, refresh: Refresh) -> None:
        """After an App event: when its claims changed, refresh the Apps of other namespaces that overlap the old or
        the new claims (an owner gone frees the route for the next in line). Apps of its own namespace never
        conflict with it."""
        key = (namespace, name)
        now = self._indexed_claim(key)
        before = self._seen.get(key)
        if now is None:
            self._seen.pop(key, None)
        else:
            self._seen[key] = now
        if listing or before == now:
            return  # the initial listing: every App is reconciled anyway (resume)
        claims = self.claims()
        affected = {
            (c.namespace, c.name)
            for mine in (before, now)
            if mine is not None
            for c in overlapping(mine, claims)
            if c.namespace != namespace
        }
        results = await asyncio.gather(*(refresh(*other) for other in sorted(affected)), return_exceptions=True)
        for other, result in zip(sorted(affected), results, strict=True):
            if isinstance(result, Exception):
                log.warning("refreshing %s/%s after a route change of %s/%s failed: %s", *other, *key, result)
