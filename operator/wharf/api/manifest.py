"""One application entry of a CF `manifest.yml`, in CF's own spelling (S1).

Keys keep CF's names (`disk_quota`, `health-check-type`, ...) as aliases so a CF user can paste an entry. Unknown
keys are refused (the CRD schema refuses them too). Values are validated here as the CRD does, so an App read
from the apiserver and an App built in a test obey the same rules.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationInfo, field_validator, model_validator

from wharf.api.units import to_megabytes

PROCESS_TYPE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
RESERVED_ENV_PREFIXES = ("VCAP_", "VMC_")
RESERVED_ENV_KEYS = ("PORT",)
MAX_TIMEOUT_SECONDS = 180  # CF's maximum start-up allowance
# CF's log rate limit: bytes per second with a unit (16K, 1M), or -1 for none. The same pattern is in the CRD.
LOG_RATE_PATTERN = r"^(-1|[0-9]+(\.[0-9]+)?[ ]?([KkMmGgTt][Bb]?|[Bb])?)$"
# Kubernetes label values and qualified names (label and annotation keys), as the apiserver checks them.
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_QUALIFIED_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?([.][a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_MAX_QUALIFIED_KEY = 317  # a 253-character prefix, '/', a 63-character name


class HealthCheckType(StrEnum):
    PORT = "port"
    PROCESS = "process"
    NONE = "none"  # CF's old alias of process
    HTTP = "http"


class ReadinessCheckType(StrEnum):
    PORT = "port"
    PROCESS = "process"
    HTTP = "http"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# A string; an integer (YAML's `memory: 1024`) is accepted by the type only to be refused in CF's words (S20).
ByteQuantity = Annotated[str, Field(max_length=32)] | Annotated[int, Strict()]


class ProcessSettings(_Strict):
    """The keys a process type carries, at the top level (for web) and under `processes`."""

    instances: int | None = Field(default=None, ge=0, le=1000)
    memory: ByteQuantity | None = None
    disk_quota: ByteQuantity | None = None
    command: str | None = Field(default=None, max_length=4096)
    health_check_type: HealthCheckType | None = Field(default=None, alias="health-check-type")
    health_check_http_endpoint: str | None = Field(
        default=None, alias="health-check-http-endpoint", pattern=r"^/", max_length=1024
    )
    health_check_invocation_timeout: int | None = Field(
        default=None, alias="health-check-invocation-timeout", ge=1, le=MAX_TIMEOUT_SECONDS
    )
    health_check_interval: int | None = Field(default=None, alias="health-check-interval", ge=1, le=3600)
    readiness_health_check_type: ReadinessCheckType | None = Field(default=None, alias="readiness-health-check-type")
    readiness_health_check_http_endpoint: str | None = Field(
        default=None, alias="readiness-health-check-http-endpoint", pattern=r"^/", max_length=1024
    )
    readiness_health_check_invocation_timeout: int | None = Field(
        default=None, alias="readiness-health-check-invocation-timeout", ge=1, le=MAX_TIMEOUT_SECONDS
    )
    readiness_health_check_interval: int | None = Field(
        default=None, alias="readiness-health-check-interval", ge=1, le=3600
    )
    timeout: int | None = Field(default=None, ge=1, le=MAX_TIMEOUT_SECONDS)
    log_rate_limit_per_second: str | None = Field(
        default=None, alias="log-rate-limit-per-second", max_length=32, pattern=LOG_RATE_PATTERN
    )

    @field_validator("memory", "disk_quota", mode="before")
    @classmethod
    def _cf_unit(cls, value: object, info: ValidationInfo) -> object:
        # S20: `memory: 1024` (an integer to YAML) is refused as the CF API refuses it, not as "not a string".
        if value is not None and not isinstance(value, bool) and isinstance(value, str | int):
            try:
                to_megabytes(value)
            except ValueError as error:
                raise ValueError(f"{info.field_name}: {error}") from None
        return value

    @model_validator(mode="after")
    def _endpoint_needs_http(self) -> ProcessSettings:
        # S10: CF refuses an endpoint with any type but http.
        if self.health_check_http_endpoint is not None and self.health_check_type != HealthCheckType.HTTP:
            raise ValueError(
                "health-check-http-endpoint is only used with health-check-type: http; "
                "set the type to http or remove the endpoint"
            )
        if (
            self.readiness_health_check_http_endpoint is not None
            and self.readiness_health_check_type != ReadinessCheckType.HTTP
        ):
            raise ValueError("readiness-health-check-http-endpoint is only used with readiness-health-check-type: http")
        return self


class Process(ProcessSettings):
    type: str = Field(pattern=PROCESS_TYPE_PATTERN, max_length=40)


# DNS labels (any case; hostnames are lowercased when rendered), an optional leading wildcard label, an optional
# port and path. The same pattern is in the CRD's rule (`[.]`, `[*]`: it is also a CEL string literal).
ROUTE_PATTERN = (
    r"^([*][.])?[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?([.][A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*"
    r"(:[0-9]+)?(/.*)?$"
)
_ROUTE = re.compile(ROUTE_PATTERN)
# What a refused route is told, in CF terms (the CRD's rule says the same).
ROUTE_MESSAGE = (
    "is not a route Kubernetes can carry: write HOST.DOMAIN[:PORT][/PATH] where each dot-separated part of the "
    "host and domain has at most 63 letters, digits or '-' and starts and ends with a letter or digit "
    "(no '_': write fortune-teller.example.com, not fortune_teller.example.com)"
)


class LoadBalancing(StrEnum):
    """CF's per-route load-balancing algorithms (`routes[].options.loadbalancing`)."""

    ROUND_ROBIN = "round-robin"
    LEAST_REQUEST = "least-request"
    HASH = "hash"


class RouteOptions(_Strict):
    loadbalancing: LoadBalancing | None = None
    hash_header: str | None = Field(default=None, max_length=256)
    hash_balance: float | None = Field(default=None, ge=0)


class Route(_Strict):
    route: str = Field(max_length=512)
    protocol: str | None = Field(default=None, pattern=r"^(http1|http2|tcp)$")
    options: RouteOptions | None = None

    @field_validator("route")
    @classmethod
    def _carried(cls, value: str) -> str:
        if not _ROUTE.match(value):
            raise ValueError(f"route {value} {ROUTE_MESSAGE}")
        return value

    @field_validator("route")
    @classmethod
    def _port_in_range(cls, value: str) -> str:
        authority = value.split("/", 1)[0]
        if ":" in authority and not 1 <= int(authority.rsplit(":", 1)[1]) <= 65535:
            raise ValueError("a route's port is a TCP port from 1 to 65535")
        return value

    @property
    def host(self) -> str:
        # Hostnames are case-insensitive; Ingress and HTTPRoute accept only lowercase DNS names (S11).
        return self.route.split("/", 1)[0].split(":", 1)[0].lower()

    @property
    def path(self) -> str:
        return "/" + self.route.split("/", 1)[1] if "/" in self.route else "/"


class Sidecar(_Strict):
    name: str = Field(pattern=PROCESS_TYPE_PATTERN, max_length=40)
    process_types: tuple[str, ...] = Field(min_length=1, max_length=16)
    command: str = Field(min_length=1, max_length=4096)
    memory: ByteQuantity | None = None

    @field_validator("memory", mode="before")
    @classmethod
    def _sidecar_unit(cls, value: object) -> object:
        if value is not None and not isinstance(value, bool) and isinstance(value, str | int):
            try:
                to_megabytes(value)
            except ValueError as error:
                raise ValueError(f"memory: {error}") from None
        return value


class Service(_Strict):
    """A service binding: CF's `services` entry. The Secret of that name in the App's namespace holds the
    credentials (wharf has no service broker)."""

    name: str = Field(min_length=1, max_length=253)
    binding_name: str | None = Field(default=None, max_length=253)
    parameters: dict[str, str] = Field(default_factory=dict)

    @field_validator("binding_name")
    @classmethod
    def _directory_name(cls, value: str | None) -> str | None:
        # The binding's files live in a directory of this name (servicebinding.io).
        if value is not None and ("/" in value or value in ("", ".", "..") or "\0" in value):
            raise ValueError(
                f"binding_name {value!r} names the binding's directory under SERVICE_BINDING_ROOT: "
                "use a name without '/' that is not '.' or '..'"
            )
        return value

    @property
    def directory(self) -> str:
        """The binding's name: its VCAP_SERVICES `name` and its directory under SERVICE_BINDING_ROOT."""
        return self.binding_name or self.name


class Lifecycle(StrEnum):
    """CF's `lifecycle`: how the app's droplet is built. Image apps are `docker`; the others are ignored (S2)."""

    DOCKER = "docker"
    BUILDPACK = "buildpack"
    CNB = "cnb"


class Docker(_Strict):
    image: str | None = Field(default=None, max_length=1024)
    username: str | None = Field(default=None, max_length=256)


LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]
AnnotationValue = Annotated[str, Field(max_length=4096)]


class Metadata(_Strict):
    labels: dict[str, LabelValue] = Field(default_factory=dict, max_length=64)
    annotations: dict[str, AnnotationValue] = Field(default_factory=dict, max_length=64)

    @field_validator("labels", "annotations")
    @classmethod
    def _qualified_keys(cls, values: dict[str, str]) -> dict[str, str]:
        bad = sorted(k for k in values if len(k) > _MAX_QUALIFIED_KEY or not _QUALIFIED_KEY.fullmatch(k))
        if bad:
            raise ValueError(
                f"keys {', '.join(bad)} are not [prefix/]name: name at most 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit; prefix a DNS subdomain"
            )
        return values


def _as_bindings(services: tuple[str | Service, ...]) -> list[Service]:
    return [Service(name=s) if isinstance(s, str) else s for s in services]


def _repeated(values: list[str]) -> list[str]:
    return sorted({v for v in values if values.count(v) > 1})


# The CRD's int-or-string: the apiserver refuses other YAML scalars (`true`, `1.5`), so the model does too.
EnvValue = str | Annotated[int, Strict()]


class Manifest(ProcessSettings):
    """One entry of `applications:` in a CF manifest."""

    name: str | None = Field(default=None, max_length=253)
    buildpack: str | None = Field(default=None, max_length=1024)  # S2: accepted, ignored, reported
    buildpacks: tuple[str, ...] | None = Field(default=None, max_length=32)
    stack: str | None = Field(default=None, max_length=256)
    path: str | None = Field(default=None, max_length=4096)  # S2: meaningless for images
    lifecycle: Lifecycle | None = None  # S20: `docker` fits; `buildpack`/`cnb` are ignored and reported (S2)
    docker: Docker | None = None
    env: dict[str, EnvValue] = Field(default_factory=dict, max_length=256)
    routes: tuple[Route, ...] = Field(default=(), max_length=64)
    no_route: bool = Field(default=False, alias="no-route")
    random_route: bool = Field(default=False, alias="random-route")
    default_route: bool = Field(default=False, alias="default-route")
    # S20: the cf CLI v6 route keys, translated into `routes` (wharf.api.routes) with a warning saying what to write.
    host: str | None = Field(default=None, max_length=63)
    hosts: tuple[str, ...] = Field(default=(), max_length=64)
    domain: str | None = Field(default=None, max_length=253)
    domains: tuple[str, ...] = Field(default=(), max_length=64)
    no_hostname: bool = Field(default=False, alias="no-hostname")
    processes: tuple[Process, ...] = Field(default=(), max_length=16)
    sidecars: tuple[Sidecar, ...] = Field(default=(), max_length=16)
    services: tuple[str | Service, ...] = Field(default=(), max_length=64)
    metadata: Metadata | None = None

    @field_validator("env", mode="before")
    @classmethod
    def _scalar_env(cls, env: object) -> object:
        if isinstance(env, dict):
            empty = sorted(str(k) for k, v in env.items() if v is None)
            if empty:
                raise ValueError(
                    f'env {", ".join(empty)} have no value: give each a value (write "" for empty) or remove it'
                )
            bad = sorted(str(k) for k, v in env.items() if isinstance(v, bool) or not isinstance(v, str | int))
            if bad:
                raise ValueError(
                    f'env values are strings or integers: quote the value of {", ".join(bad)} (write "true", "1.5")'
                )
        return env

    @field_validator("env")
    @classmethod
    def _no_reserved_env(cls, env: dict[str, EnvValue]) -> dict[str, EnvValue]:
        # S9: CF refuses these keys; the platform owns them.
        bad = sorted(k for k in env if k.startswith(RESERVED_ENV_PREFIXES) or k in RESERVED_ENV_KEYS)
        if bad:
            raise ValueError(
                f"env keys {', '.join(bad)} are set by the platform: remove them "
                "(keys starting VCAP_ or VMC_, and PORT, are reserved)"
            )
        return env

    @field_validator("services", mode="before")
    @classmethod
    def _services_list(cls, services: object) -> object:
        # cf v5 manifests gave services as a map of instance definitions; cf v6 and later take a list of names.
        if services is not None and not isinstance(services, list | tuple):
            raise ValueError(
                "services is a list of service instance names (- my-db) or {name: ..., binding_name: ...} entries; "
                "create the service instances themselves separately (with wharf: a Secret per service)"
            )
        return services

    @field_validator("processes")
    @classmethod
    def _unique_types(cls, processes: tuple[Process, ...]) -> tuple[Process, ...]:
        duplicates = _repeated([p.type for p in processes])
        if duplicates:
            raise ValueError(f"process types must be unique; repeated: {', '.join(duplicates)}")
        return processes

    @field_validator("sidecars")
    @classmethod
    def _unique_sidecars(cls, sidecars: tuple[Sidecar, ...]) -> tuple[Sidecar, ...]:
        duplicates = _repeated([s.name for s in sidecars])
        if duplicates:
            raise ValueError(f"sidecar names must be unique; repeated: {', '.join(duplicates)}")
        return sidecars

    @field_validator("services")
    @classmethod
    def _unique_bindings(cls, services: tuple[str | Service, ...]) -> tuple[str | Service, ...]:
        # CF binds a service instance to an app once; two bindings of one name would share a directory.
        bound = _as_bindings(services)
        for label, values in (("services", [b.name for b in bound]), ("binding names", [b.directory for b in bound])):
            repeated = _repeated(values)
            if repeated:
                raise ValueError(
                    f"{label} must be unique (each service is bound once); repeated: {', '.join(repeated)}"
                )
        return services

    def bindings(self) -> list[Service]:
        """`services` with bare names as bindings of their own name."""
        return _as_bindings(self.services)

    def v6_route_keys(self) -> list[str]:
        """The cf CLI v6 route keys present, in CF's order."""
        present = {
            "host": self.host is not None,
            "hosts": bool(self.hosts),
            "domain": self.domain is not None,
            "domains": bool(self.domains),
            "no-hostname": self.no_hostname,
        }
        return [key for key, given in present.items() if given]

    @model_validator(mode="after")
    def _routes_and_no_route(self) -> Manifest:
        if self.no_route and self.routes:
            raise ValueError("no-route: true and routes cannot both be given: remove one")
        v6 = self.v6_route_keys()
        if v6 and self.routes:
            # As the cf CLI: the old keys and `routes` cannot be mixed.
            raise ValueError(
                f"routes and {', '.join(v6)} cannot both be given: {', '.join(v6)} are cf CLI v6 keys; move them into "
                "routes (- route: HOST.DOMAIN)"
            )
        types = {"web", *(p.type for p in self.processes)}
        for sidecar in self.sidecars:
            unknown = sorted(set(sidecar.process_types) - types)
            if unknown:
                raise ValueError(f"sidecar {sidecar.name} names unknown process types: {', '.join(unknown)}")
        return self

    def ignored_keys(self) -> list[str]:
        """Keys CF users may paste that mean nothing for an image app (S2), in manifest order."""
        present = {
            "buildpack": self.buildpack,
            "buildpacks": self.buildpacks,
            "stack": self.stack,
            "path": self.path,
            f"lifecycle: {self.lifecycle}": self.lifecycle if self.lifecycle is not Lifecycle.DOCKER else None,
        }
        return [key for key, value in present.items() if value is not None]

    def unenforced_keys(self) -> list[str]:
        """Keys accepted for compatibility that Kubernetes cannot enforce."""
        keys = []
        if self.log_rate_limit_per_second is not None or any(
            p.log_rate_limit_per_second is not None for p in self.processes
        ):
            keys.append("log-rate-limit-per-second")
        if self.random_route:
            keys.append("random-route")
        if self.default_route and not self.routes:
            keys.append("default-route")  # no default domain to route on: routes come only from `routes`
        return keys
