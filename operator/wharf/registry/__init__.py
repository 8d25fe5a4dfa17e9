"""wharf.registry: what a Docker Registry V2 / OCI registry says about an image (S12, S13).

    async with RegistryClient(settings) as client:
        facts = await client.resolve("nginx:1.27", Credentials("user", password))
        facts.pinned  # docker.io/library/nginx@sha256:...

Errors (all carry `.message` for the App's owner, `.reference`, the registry's own `.registry_code` /
`.registry_message` when it sent a V2 error body, `.status_code`, and `.temporary`; transport errors are chained
as `__cause__`):

    RegistryError
    +-- InvalidReference   the reference is malformed; nothing was contacted (S3)
    +-- NotFound           no such repository, tag or digest
    +-- Unauthorized       credentials needed, or rejected (401; also a token service refusing them)
    +-- Denied             the registry refused access (403)
    |   +-- Blocked        wharf refused to contact the host: SSRF guard (loopback, link-local, private,
    |                      WHARF_REGISTRY_DENY) or plain HTTP to a registry not in WHARF_REGISTRY_INSECURE
    +-- RateLimited        429 through all retries (temporary; `.retry_after` seconds when the registry said)
    +-- Unavailable        unreachable, timed out, 5xx through all retries, TLS not trusted (temporary,
    |                      except TLS failures)
    +-- Unsupported        not a V2 registry, schema 1, not a container image, no image for the node
                           platform, content failing its digest check

The user-facing guide (auth, TLS, insecure registries, the SSRF allow list, caching, measured performance) is
docs/registry.md.
"""

from wharf.registry._auth import Credentials, credentials_from_dockerconfigjson
from wharf.registry._client import RegistryClient
from wharf.registry._errors import (
    Blocked,
    Denied,
    InvalidReference,
    NotFound,
    RateLimited,
    RegistryError,
    Unauthorized,
    Unavailable,
    Unsupported,
)
from wharf.registry._reference import Reference, parse_reference
from wharf.registry._transport import RequestCallback, RequestStats

__all__ = [
    "Blocked",
    "Credentials",
    "Denied",
    "InvalidReference",
    "NotFound",
    "RateLimited",
    "Reference",
    "RegistryClient",
    "RegistryError",
    "RequestCallback",
    "RequestStats",
    "Unauthorized",
    "Unavailable",
    "Unsupported",
    "credentials_from_dockerconfigjson",
    "parse_reference",
]
