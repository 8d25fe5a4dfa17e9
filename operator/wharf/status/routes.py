"""S19: who owns a route. Pure: the claims of every App the operator sees in, one App's verdict out.

A route belongs to one namespace, as in CF a route belongs to one space. The first claim keeps it: the oldest App
(creation time; ties by namespace, then name) among the Apps whose claims overlap. Apps of one namespace never
conflict with each other (CF blue-green: several Apps on one route share its traffic).

Two claims overlap when
- both are exact hosts: the same host and the same path (`shop.example.com/api` and `shop.example.com/` are two
  routes, as in CF);
- one is a wildcard (`*.example.com`) covering the other's host, whatever the paths: a wildcard never takes a host
  another namespace claims, not even the paths that namespace left free;
- both are the same wildcard with the same path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from wharf.api.app import App
from wharf.api.routes import RouteKeysError, cf_routes


@dataclass(frozen=True, order=True)
class RouteClaim:
    """One App's claims. Ordered oldest first: the order in which claims are honoured."""

    created: str  # metadata.creationTimestamp (RFC 3339, UTC: sorts as text)
    namespace: str
    name: str
    routes: frozenset[tuple[str, str]]  # (lowercase host, path)


def claim_of(app: App, created: str, default_domain: str = "") -> RouteClaim:
    """What `app` claims: the (host, path) of the routes it asks for (cf v6 route keys translated, S20); none with
    no-route, or when its route keys cannot become routes (its status says why)."""
    try:
        routes = cf_routes(app.spec.manifest, app.app_name, default_domain).routes
    except RouteKeysError:
        routes = ()
    return RouteClaim(
        created=created, namespace=app.namespace, name=app.name, routes=frozenset((r.host, r.path) for r in routes)
    )


def _covers(wildcard: str, host: str) -> bool:
    """`*.example.com` covers every host below example.com (CF's and the Gateway API's reading)."""
    return wildcard.startswith("*.") and host.endswith(wildcard[1:]) and not host.startswith("*.")


def overlap(a: tuple[str, str], b: tuple[str, str]) -> bool:
    (host_a, path_a), (host_b, path_b) = a, b
    if host_a == host_b:
        return path_a == path_b
    return _covers(host_a, host_b) or _covers(host_b, host_a)


def _route_text(route: tuple[str, str]) -> str:
    host, path = route
    return host if path == "/" else host + path


def route_conflict(mine: RouteClaim, claims: Iterable[RouteClaim]) -> str | None:
    """Why `mine` may not have its routes (naming each route's owner), or None when every route is its own.

    For each of its routes: the oldest claim overlapping it (its own included) decides which namespace has it."""
    others = sorted(c for c in claims if (c.namespace, c.name) != (mine.namespace, mine.name))
    taken = []
    for route in sorted(mine.routes):
        first = mine
        for other in others:
            if other >= first:
                break
            if any(overlap(route, theirs) for theirs in other.routes):
                first = other
                break
        if first.namespace != mine.namespace:
            taken.append(
                f"route {_route_text(route)} belongs to App {first.name} in namespace {first.namespace}, "
                "which claimed it first"
            )
    if not taken:
        return None
    return "; ".join(taken) + ": nothing is routed to this App; choose other routes, or ask that App's owners"


def overlapping(mine: RouteClaim, claims: Iterable[RouteClaim]) -> list[RouteClaim]:
    """The other Apps whose claims overlap `mine`'s: their verdicts may change when `mine` comes, changes or goes."""
    return [
        c
        for c in claims
        if (c.namespace, c.name) != (mine.namespace, mine.name)
        and any(overlap(a, b) for a in mine.routes for b in c.routes)
    ]
