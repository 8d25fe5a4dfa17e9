"""Which ports an App listens on and which one traffic goes to (S6)."""

from __future__ import annotations

from dataclasses import dataclass

from wharf.api.app import App
from wharf.api.image import ImageFacts

DEFAULT_PORT = 8080  # CF's port when the image EXPOSEs no TCP port


@dataclass(frozen=True)
class Ports:
    listed: tuple[int, ...]  # every port declared on the container, ascending
    routed: int  # the Service port and PORT
    source: str  # "spec", "image" or "default": said in status so users know why


def choose(app: App, facts: ImageFacts) -> Ports:
    """The image's EXPOSEd TCP ports ascending (UDP ignored), else [8080]; `spec.ports` overrides, first routed."""
    if app.spec.ports:
        explicit = tuple(dict.fromkeys(app.spec.ports))
        return Ports(listed=tuple(sorted(explicit)), routed=explicit[0], source="spec")
    exposed = sorted({p.port for p in facts.exposed_ports if p.protocol == "tcp"})
    if exposed:
        return Ports(listed=tuple(exposed), routed=exposed[0], source="image")
    return Ports(listed=(DEFAULT_PORT,), routed=DEFAULT_PORT, source="default")
