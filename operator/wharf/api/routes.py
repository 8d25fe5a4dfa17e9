"""The routes an App asks for, as the cf CLI reads a manifest (S11, S20).

`routes` as written; or the cf CLI v6 keys (`host`, `hosts`, `domain`, `domains`, `no-hostname`) translated into
routes as cf v6 did (every host on every domain; no host: the app's name; no domain: the cluster's default domain),
with a warning saying what to write instead. Where a v6 key needs a domain and the cluster has no default domain,
the App is refused, naming `routes`. Route options wharf cannot apply are reported too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import ValidationError

from wharf.api.manifest import LoadBalancing, Manifest, Route


class RouteKeysError(ValueError):
    """v6 route keys that cannot become routes on this cluster; the message says what to write."""


@dataclass(frozen=True)
class CfRoutes:
    routes: tuple[Route, ...]
    warnings: tuple[str, ...] = ()


def hostname(app_name: str) -> str:
    """The host cf v6 gave an app without `host`: its name, lowercased, other characters than letters, digits and
    '-' replaced by '-'."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", app_name.lower())).strip("-")[:63] or "app"


def _listing(routes: tuple[Route, ...]) -> str:
    return "routes: [" + ", ".join(f"{{route: {r.route}}}" for r in routes) + "]"


def cf_routes(manifest: Manifest, app_name: str, default_domain: str = "") -> CfRoutes:
    """What `manifest` routes, and the warnings about how it asked. Raises RouteKeysError."""
    if manifest.no_route:
        return CfRoutes(())
    keys = manifest.v6_route_keys()
    if not keys:
        return CfRoutes(manifest.routes, tuple(_option_warnings(manifest.routes)))
    domains = [d for d in (manifest.domain, *manifest.domains) if d]
    hosts = [h for h in (manifest.host, *manifest.hosts) if h]
    if not domains:
        if not default_domain:
            example = f"{hosts[0] if hosts else hostname(app_name)}.example.com"
            raise RouteKeysError(
                f"{', '.join(keys)} need a domain, and this cluster has no default domain: write routes instead, "
                f"e.g. routes: [{{route: {example}}}]"
            )
        domains = [default_domain]
    names = domains if manifest.no_hostname else [f"{h}.{d}" for h in hosts or [hostname(app_name)] for d in domains]
    try:
        routes = tuple(Route(route=name) for name in dict.fromkeys(names))
    except ValidationError as error:
        reason = error.errors()[0]["msg"].removeprefix("Value error, ")
        raise RouteKeysError(f"{', '.join(keys)} make a route Kubernetes cannot carry: {reason}") from None
    warning = f"{', '.join(keys)} are cf CLI v6 route keys (deprecated): write {_listing(routes)} instead"
    return CfRoutes(routes, (warning,))


def _option_warnings(routes: tuple[Route, ...]) -> list[str]:
    """S20: Ingress and the Gateway API have no portable per-route load-balancing setting; round-robin is what the
    common backends (ingress-nginx, most Gateway implementations) do by default, so only other choices are reported."""
    odd = sorted(
        {
            f"{r.route} ({r.options.loadbalancing})"
            for r in routes
            if r.options and r.options.loadbalancing not in (None, LoadBalancing.ROUND_ROBIN)
        }
    )
    if not odd:
        return []
    return [
        f"routes[].options.loadbalancing is not applied to {', '.join(odd)}: Ingress and HTTPRoute have no portable "
        "load-balancing setting, so the routing backend's default (round-robin) applies"
    ]
