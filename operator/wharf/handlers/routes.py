"""S19: the routes every App claims, across the namespaces the operator watches, and the refresh of the Apps whose
verdict may change when a claim comes, changes or goes. The verdict itself is pure (wharf.status.routes).

A kopf index: kopf fills it from the initial listing of Apps before any App handler runs, so a freshly started
operator never routes a host to a younger App only because it has not seen the older claim yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import kopf
from pydantic import ValidationError

from wharf.api.app import App
from wharf.config import Routing, Settings
from wharf.status.routes import RouteClaim, claim_of, overlapping, route_conflict

log = logging.getLogger(__name__)
INDEX = "route_claims"  # the kwarg kopf passes the index as
NEWEST = "9999-12-31T23:59:59Z"  # an App not indexed yet (its creation is newer than every indexed claim)

Enqueue = Callable[[tuple[str, str]], None]


def route_claims(default_domain: str) -> Callable[..., dict[tuple[str, str], RouteClaim]]:
    """The kopf index function of route claims (registered as `INDEX` by handlers.operator); v6 route keys (S20)
    become routes on `default_domain`."""

    def index(body: kopf.Body, meta: kopf.Meta, **_: Any) -> dict[tuple[str, str], RouteClaim]:
        """Only Apps that claim a route are kept, and only their claim: at scale most Apps claim none, and the
        verdict for one App must not parse every other App again."""
        try:
            app = App.from_resource(dict(body))
        except (ValidationError, KeyError):
            return {}  # an App that does not parse claims nothing (its status says why)
        claim = claim_of(app, str(meta.get("creationTimestamp") or NEWEST), default_domain)
        return {(app.namespace, app.name): claim} if claim.routes else {}

    return index


class RouteOwnership:
    """The reconciler's view of the index: is this App's route someone else's?"""

    def __init__(
        self,
        index: kopf.Index[tuple[str, str], RouteClaim],
        settings: Settings,
        gone: Callable[[tuple[str, str]], bool] = lambda key: False,
    ) -> None:
        """`gone(key)`: the App is known to be gone while the index still holds it (handlers.cache.Caches.gone);
        its claim is no one's."""
        self._index = index
        self._settings = settings
        self._gone = gone
        self._seen: dict[tuple[str, str], RouteClaim | None] = {}

    def claims(self) -> list[RouteClaim]:
        return [claim for key in list(self._index) if not self._gone(key) for claim in self._index.get(key, [])]

    def _indexed_claim(self, key: tuple[str, str]) -> RouteClaim | None:
        return next(iter(self._index.get(key, [])), None)

    def conflict(self, app: App) -> str | None:
        """Why nothing may be routed to `app` (naming the owners), or None."""
        if self._settings.routing is Routing.NONE:
            return None  # nothing is routed at all: no route is taken from anyone
        indexed = self._indexed_claim((app.namespace, app.name))
        mine = claim_of(app, indexed.created if indexed else NEWEST, self._settings.default_domain)
        if not mine.routes:
            return None
        return route_conflict(mine, self.claims())

    def changed(self, namespace: str, name: str, listing: bool, enqueue: Enqueue) -> None:
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
        for other in sorted(affected):
            enqueue(other)
