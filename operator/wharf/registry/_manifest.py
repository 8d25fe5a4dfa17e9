"""Manifests and image configs: which kinds wharf reads, platform choice, and the facts a config yields.

Readable: Docker image manifest schema 2, OCI image manifest, Docker manifest list, OCI image index. Refused as
Unsupported: Docker schema 1 (signed or not; deprecated and without an image config to read) and anything
whose config is not a container image config (Helm charts, signatures, other OCI artifacts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, cast

from wharf.api.image import ExposedPort
from wharf.registry._errors import Unsupported


class MediaType(StrEnum):
    DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
    DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
    DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
    DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
    DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
    OCI_INDEX = "application/vnd.oci.image.index.v1+json"
    OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


INDEX_TYPES = frozenset({MediaType.DOCKER_LIST, MediaType.OCI_INDEX})
IMAGE_TYPES = frozenset({MediaType.DOCKER_MANIFEST, MediaType.OCI_MANIFEST})
SCHEMA1_TYPES = frozenset({MediaType.DOCKER_SCHEMA1, MediaType.DOCKER_SCHEMA1_SIGNED})
CONFIG_TYPES = frozenset({MediaType.DOCKER_CONFIG, MediaType.OCI_CONFIG})

# What we ask for. Schema 1 is listed last and weighted low only so that a registry holding nothing else says
# so, and we can refuse it by name instead of failing obscurely.
ACCEPT = ", ".join(
    [
        MediaType.OCI_INDEX,
        MediaType.DOCKER_LIST,
        MediaType.OCI_MANIFEST,
        MediaType.DOCKER_MANIFEST,
        f"{MediaType.DOCKER_SCHEMA1_SIGNED};q=0.1",
        f"{MediaType.DOCKER_SCHEMA1};q=0.1",
    ]
)

# containerd's limits: larger manifests or configs are not images anyone pushes on purpose.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 8 * 1024 * 1024


def compute_digest(body: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: str = ""  # os/arch[/variant] for index entries


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest: an index (`manifests`) or an image manifest (`config`)."""

    media_type: str
    digest: str
    manifests: tuple[Descriptor, ...] = ()
    config: Descriptor | None = None

    @property
    def is_index(self) -> bool:
        return self.config is None


def _media_type(body: Mapping[str, Any], header: str) -> str:
    declared = body.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    content_type = header.split(";", 1)[0].strip()
    if content_type in INDEX_TYPES | IMAGE_TYPES | SCHEMA1_TYPES:
        return content_type
    # OCI allows omitting mediaType; the shape tells which one it is.
    if body.get("schemaVersion") == 1:
        return MediaType.DOCKER_SCHEMA1
    if "manifests" in body:
        return MediaType.OCI_INDEX
    if "config" in body:
        return MediaType.OCI_MANIFEST
    return content_type


def _descriptor(raw: object) -> Descriptor:
    if not isinstance(raw, Mapping):
        raise ValueError("descriptor is not an object")
    digest, size = raw.get("digest"), raw.get("size", 0)
    if not isinstance(digest, str) or ":" not in digest or not isinstance(size, int):
        raise ValueError("descriptor lacks a digest or size")
    platform = ""
    plat = raw.get("platform")
    if isinstance(plat, Mapping):
        platform = format_platform(str(plat.get("os", "")), str(plat.get("architecture", "")), plat.get("variant"))
    return Descriptor(str(raw.get("mediaType", "")), digest, size, platform)


def parse_manifest(body: bytes, content_type: str, digest: str, where: str) -> Manifest:
    """Parse a manifest body, or raise Unsupported saying what it is and why wharf cannot use it."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise Unsupported(
            f"{where} answered the manifest request with something that is not JSON ({content_type or 'no type'}); "
            "is this a Docker Registry V2 / OCI registry?"
        ) from error
    if not isinstance(data, Mapping):
        raise Unsupported(f"{where} sent a manifest that is not a JSON object")
    media_type = _media_type(data, content_type)
    if media_type in SCHEMA1_TYPES or data.get("schemaVersion") == 1:
        raise Unsupported(
            f"{where} serves this image only as a Docker schema 1 manifest, which is deprecated and not "
            "supported; re-push the image with a current docker, buildah or skopeo"
        )
    try:
        if media_type in INDEX_TYPES:
            raw = data.get("manifests")
            if not isinstance(raw, list):
                raise ValueError("index without a manifests list")
            return Manifest(media_type, digest, manifests=tuple(_descriptor(m) for m in raw))
        if media_type in IMAGE_TYPES:
            return Manifest(media_type, digest, config=_descriptor(data.get("config")))
    except ValueError as error:
        raise Unsupported(f"{where} sent a malformed {media_type} manifest: {error}") from error
    raise Unsupported(
        f"{where} sent a manifest of type {media_type or 'unknown'!r}, which is not a container image "
        "(wharf reads Docker schema 2 and OCI images and indexes)"
    )


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm"}
# The variant a bare architecture means, as containerd's platform matching assumes.
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}


def format_platform(os: str, architecture: str, variant: object = None) -> str:
    text = f"{os}/{architecture}"
    if isinstance(variant, str) and variant:
        text += f"/{variant}"
    return text


def normalize_platform(platform: str) -> tuple[str, str, str]:
    """`linux/aarch64` -> (`linux`, `arm64`, `v8`); a missing variant becomes the architecture's default."""
    parts = platform.strip().lower().split("/")
    if len(parts) < 2 or len(parts) > 3 or not all(parts):
        raise ValueError(f"platform {platform!r} is not os/arch[/variant]")
    os, arch = parts[0], _ARCH_ALIASES.get(parts[1], parts[1])
    variant = parts[2] if len(parts) == 3 else _DEFAULT_VARIANT.get(arch, "")
    if arch == "arm64" and variant == "8":
        variant = "v8"
    return os, arch, variant


def choose_platform(index: Manifest, wanted: str, where: str) -> Descriptor:
    """The index entry that runs on `wanted` (the nodes' platform): os and architecture equal, the variant
    equal after defaults (arm64 = v8, arm = v7); an entry without variant also serves a wanted variant."""
    want_os, want_arch, want_variant = normalize_platform(wanted)
    fallback: Descriptor | None = None
    available: list[str] = []
    for entry in index.manifests:
        if not entry.platform:
            continue
        available.append(entry.platform)
        try:
            os, arch, variant = normalize_platform(entry.platform)
        except ValueError:
            continue
        if (os, arch) != (want_os, want_arch):
            continue
        if variant == want_variant:
            return entry
        if not variant and fallback is None:
            fallback = entry
    if fallback is not None:
        return fallback
    shown = ", ".join(p for p in dict.fromkeys(available) if not p.startswith("unknown/")) or "none"
    raise Unsupported(
        f"{where} has no image for the platform {wanted} the cluster's nodes run (it has: {shown}); "
        f"push a {wanted} image, or pick an image that supports it"
    )


@dataclass(frozen=True)
class ConfigFacts:
    """What an image config says (the parts ImageFacts needs), independent of which tag led to it."""

    exposed_ports: tuple[ExposedPort, ...]
    user: str
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    workdir: str
    env: tuple[str, ...]
    created: datetime | None
    labels: Mapping[str, str]
    platform: str


def _strings(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(item) for item in value)
    return None


def _ports(value: object) -> tuple[ExposedPort, ...]:
    if not isinstance(value, Mapping):
        return ()
    ports: set[ExposedPort] = set()
    for key in value:
        number, _, protocol = str(key).partition("/")
        protocol = (protocol or "tcp").lower()
        if protocol not in ("tcp", "udp", "sctp") or not number.isdigit() or not 1 <= int(number) <= 65535:
            continue
        ports.add(ExposedPort(port=int(number), protocol=cast(Literal["tcp", "udp", "sctp"], protocol)))
    return tuple(sorted(ports, key=lambda p: (p.port, p.protocol)))


def parse_created(value: object) -> datetime | None:
    """RFC 3339 with up to nanoseconds (`2024-05-01T12:00:00.123456789Z`), as Go writes it."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = head + "." + rest[: min(digits, 6)].ljust(6, "0") + rest[digits:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # Go's zero time (0001-01-01) is what some builders write for "unknown".
    return None if parsed.year <= 1 else parsed


def config_facts(body: bytes, where: str) -> ConfigFacts:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise Unsupported(f"{where}: the image config is not JSON") from error
    if not isinstance(data, Mapping):
        raise Unsupported(f"{where}: the image config is not a JSON object")
    # `config` is what the container runs with; `container_config` (old docker) is the build step's, not ours.
    config = data.get("config") or {}
    if not isinstance(config, Mapping):
        config = {}
    labels_raw = config.get("Labels") or {}
    labels = {str(k): str(v) for k, v in labels_raw.items()} if isinstance(labels_raw, Mapping) else {}
    env = _strings(config.get("Env")) or ()
    return ConfigFacts(
        exposed_ports=_ports(config.get("ExposedPorts")),
        user=str(config.get("User") or ""),
        entrypoint=_strings(config.get("Entrypoint")),
        cmd=_strings(config.get("Cmd")),
        workdir=str(config.get("WorkingDir") or ""),
        env=env,
        created=parse_created(data.get("created")),
        labels=labels,
        platform=format_platform(
            str(data.get("os") or "linux"), str(data.get("architecture") or "amd64"), data.get("variant")
        ),
    )


def require_image_config(descriptor: Descriptor, where: str) -> None:
    if descriptor.media_type and descriptor.media_type not in CONFIG_TYPES:
        raise Unsupported(
            f"{where} is an OCI artifact of type {descriptor.media_type!r}, not a container image; "
            "give the reference of a runnable image"
        )


def digest_algorithm(digest: str) -> str:
    return digest.split(":", 1)[0]


def verify(body: bytes, expected: str, what: str, where: str) -> None:
    algorithm = digest_algorithm(expected)
    if algorithm not in ("sha256", "sha384", "sha512"):
        raise Unsupported(f"{where}: {what} uses unsupported digest algorithm {algorithm!r}")
    actual = compute_digest(body, algorithm)
    if actual != expected:
        raise Unsupported(
            f"{where}: the {what} received has digest {actual} but {expected} was expected; "
            "something between wharf and the registry altered it"
        )
