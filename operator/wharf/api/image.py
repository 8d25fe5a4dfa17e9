"""What the registry told us about an image: the facts the renderers need (S5, S6, S7, S9, S13, S16).

Produced by `wharf.registry`, consumed by `wharf.render`, kept in the App's status as the last good
resolution so that scaling and restarts never need the registry (S13, S14).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ExposedPort(BaseModel):
    """One `EXPOSE` entry of the image config (`"8080/tcp"` -> port 8080, protocol tcp)."""

    model_config = ConfigDict(frozen=True)

    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp", "sctp"] = "tcp"


class ImageFacts(BaseModel):
    """The resolved image: pinned digest plus the config fields that shape the pod."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    reference: str = Field(description="Normalized reference as given, e.g. docker.io/library/nginx:latest")
    digest: str = Field(description="Manifest digest the tag resolved to (sha256:...)")
    exposed_ports: tuple[ExposedPort, ...] = Field(default=(), alias="exposedPorts")
    user: str = Field(default="", description="Config.User; empty means root")
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    workdir: str = Field(default="", alias="workingDir")
    env: tuple[str, ...] = Field(default=(), description="Config.Env, KEY=VALUE entries in image order")
    created: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    platform: str = Field(default="linux/amd64", description="os/arch[/variant] of the chosen manifest")

    @property
    def pinned(self) -> str:
        """The reference pods run: repository@digest, never the tag (S13)."""
        repository = self.reference.split("@", 1)[0]
        last_slash = repository.rfind("/")
        colon = repository.rfind(":")
        if colon > last_slash:
            repository = repository[:colon]
        return f"{repository}@{self.digest}"
