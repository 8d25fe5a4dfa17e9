"""The cluster admin's settings: read once at start-up (from WHARF_* environment variables, which the Helm
chart sets from its values) and passed down as arguments. Nothing below the handlers reads the environment."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

# The label that slices Apps between shards (the chart's `sharding.shards`). wharf copies it from an App onto
# everything it renders for that App, so a shard's selector narrows its watches of pods, Deployments and Services too.
SHARD_LABEL = "wharf.dev/shard"
_REQUIREMENTS = re.compile(r",(?![^()]*\))")  # the commas between requirements, not those inside `in (a,b)`
_KEY = re.compile(r"\s*!?\s*([A-Za-z0-9][A-Za-z0-9._/-]*)")


class RootUserPolicy(StrEnum):
    """What to do with an image whose USER is root or non-numeric (S7)."""

    RUN_AS_NON_ROOT = "run-as-non-root"  # run as `default_uid`, say so in status
    REFUSE = "refuse"  # deploy nothing, a clear reason in status
    USER_NAMESPACE = "user-namespace"  # hostUsers: false, where the cluster supports user namespaces


class Routing(StrEnum):
    """Which routing objects `routes` become (S11)."""

    NONE = "none"
    INGRESS = "ingress"
    GATEWAY = "gateway"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    namespaces: tuple[str, ...] = Field(default=(), description="Namespaces to watch; empty = all")
    root_user_policy: RootUserPolicy = RootUserPolicy.RUN_AS_NON_ROOT
    default_uid: int = Field(default=2000, ge=1, description="uid for images whose USER is root/non-numeric")
    default_memory_mb: int = Field(default=1024, ge=1)
    default_disk_mb: int = Field(default=1024, ge=1)
    image_age_warning_days: int = Field(
        default=0, ge=0, description="warn when the image was built more than this many days ago (S16); 0: never"
    )
    node_platform: str = "linux/amd64"
    registry_insecure: tuple[str, ...] = Field(default=(), description="host[:port] reached over plain HTTP")
    registry_allow: tuple[str, ...] = Field(
        default=(),
        description="hosts or CIDRs allowed even though they resolve to private/loopback addresses",
    )
    registry_deny: tuple[str, ...] = Field(default=(), description="extra CIDRs never contacted")
    registry_ca_bundle: str = Field(default="", description="PEM file of extra CAs trusted for registries")
    routing: Routing = Routing.NONE
    default_domain: str = Field(
        default="", description="the domain cf v6 `host`/`hosts` keys route on when no `domain` is given (S20)"
    )
    ingress_class: str = ""
    gateway_name: str = ""
    gateway_namespace: str = ""
    app_selector: str = Field(
        default="",
        description="label selector of the Apps this replica serves (sharding); empty = every App",
    )
    peering_lifetime_seconds: int = Field(
        default=10,
        ge=2,
        description="how long a replica's peering keep-alive counts: a standby takes over this long after the "
        "active replica dies",
    )
    routing_annotations: dict[str, str] = Field(
        default_factory=dict,
        description="annotations on every Ingress or HTTPRoute (S19): the admin's, never the App manifest's",
    )
    metrics_port: int = 9090
    log_level: str = "INFO"
    log_format: str = "plain"

    @property
    def owned_selector(self) -> str:
        """The part of `app_selector` that also selects the objects the served Apps own: all of it when it names
        only SHARD_LABEL (the label wharf copies onto them), else nothing (every shard then watches every App's
        objects, and keeps only its own Apps')."""
        keys = {match.group(1) for req in _REQUIREMENTS.split(self.app_selector) if (match := _KEY.match(req))}
        return self.app_selector if keys == {SHARD_LABEL} else ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def items(name: str) -> tuple[str, ...]:
            return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())

        raw: dict[str, object] = {
            "namespaces": items("WHARF_NAMESPACES"),
            "registry_insecure": items("WHARF_REGISTRY_INSECURE"),
            "registry_allow": items("WHARF_REGISTRY_ALLOW"),
            "registry_deny": items("WHARF_REGISTRY_DENY"),
        }
        scalars = {
            "root_user_policy": "WHARF_ROOT_USER_POLICY",
            "default_uid": "WHARF_DEFAULT_UID",
            "default_memory_mb": "WHARF_DEFAULT_MEMORY_MB",
            "default_disk_mb": "WHARF_DEFAULT_DISK_MB",
            "image_age_warning_days": "WHARF_IMAGE_AGE_WARNING_DAYS",
            "node_platform": "WHARF_NODE_PLATFORM",
            "registry_ca_bundle": "WHARF_REGISTRY_CA_BUNDLE",
            "routing": "WHARF_ROUTING",
            "default_domain": "WHARF_DEFAULT_DOMAIN",
            "ingress_class": "WHARF_INGRESS_CLASS",
            "gateway_name": "WHARF_GATEWAY_NAME",
            "gateway_namespace": "WHARF_GATEWAY_NAMESPACE",
            "app_selector": "WHARF_APP_SELECTOR",
            "peering_lifetime_seconds": "WHARF_PEERING_LIFETIME_SECONDS",
            "metrics_port": "WHARF_METRICS_PORT",
            "log_level": "WHARF_LOG_LEVEL",
            "log_format": "WHARF_LOG_FORMAT",
        }
        raw.update({field: env[var] for field, var in scalars.items() if env.get(var)})
        if env.get("WHARF_ROUTING_ANNOTATIONS"):
            # A JSON object, as the chart writes it (`toJson`): annotation values may hold any character.
            raw["routing_annotations"] = json.loads(env["WHARF_ROUTING_ANNOTATIONS"])
        return cls.model_validate(raw)
