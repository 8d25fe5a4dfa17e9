"""The registry client's errors (the tree is documented in `wharf.registry`'s docstring).

Every error carries a message written for the App's owner (what is wrong and what to change), the
normalized reference it concerns, and, when the registry sent one, the registry's own words
(`errors[].code` / `errors[].message` of the V2 error body). Transport errors are chained as `__cause__`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


class RegistryError(Exception):
    """Base class: anything that stopped wharf from learning an image's facts."""

    #: True when retrying later may succeed without anyone changing anything (S14).
    temporary: bool = False

    def __init__(
        self,
        message: str,
        *,
        reference: str = "",
        registry_message: str = "",
        registry_code: str = "",
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reference = reference
        self.registry_message = registry_message
        self.registry_code = registry_code
        self.status_code = status_code

    def __str__(self) -> str:
        if self.registry_message and self.registry_message not in self.message:
            code = f"{self.registry_code}: " if self.registry_code else ""
            return f"{self.message} (registry said: {code}{self.registry_message})"
        return self.message


class InvalidReference(RegistryError):  # noqa: N818 - named as the issue and design.md name them
    """The image reference is malformed (S3): nothing was contacted."""


class NotFound(RegistryError):  # noqa: N818 - named as the issue and design.md name them
    """The repository, tag or digest does not exist (or, on Docker Hub, is private)."""


class Unauthorized(RegistryError):  # noqa: N818 - named as the issue and design.md name them
    """The registry wants credentials, or rejected the ones given (HTTP 401)."""


class Denied(RegistryError):  # noqa: N818 - named as the issue and design.md name them
    """Access refused: the registry answered 403 for these credentials."""


class Blocked(Denied):
    """wharf itself refused to contact the host: it resolves to a loopback, link-local, private or denied
    address (SSRF guard), or it would be reached over plain HTTP without being listed as insecure."""


class RateLimited(RegistryError):  # noqa: N818 - named as the issue and design.md name them
    """The registry answered 429 and kept doing so through the retries."""

    temporary = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        reference: str = "",
        registry_message: str = "",
        registry_code: str = "",
        status_code: int | None = 429,
    ) -> None:
        super().__init__(
            message,
            reference=reference,
            registry_message=registry_message,
            registry_code=registry_code,
            status_code=status_code,
        )
        self.retry_after = retry_after


class Unavailable(RegistryError):  # noqa: N818 - named as the issue and design.md name them
    """The registry (or its token service) could not be reached, timed out, or answered 5xx."""

    temporary = True


class Unsupported(RegistryError):  # noqa: N818 - named as the issue and design.md name them
    """Not a Registry V2 / OCI distribution endpoint, a schema 1 manifest, an artifact that is not a container
    image, no manifest for the node platform, or content that fails its digest check (S12)."""


@dataclass(frozen=True)
class RegistryErrorBody:
    """The first entry of a V2 error body (`{"errors": [{"code", "message", "detail"}]}`), flattened."""

    code: str = ""
    message: str = ""

    @classmethod
    def parse(cls, body: bytes) -> RegistryErrorBody:
        """Best effort: registries and proxies also answer with HTML or plain text."""
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            text = body[:200].decode("utf-8", "replace").strip()
            return cls(message=text if text and not text.startswith("<") else "")
        if isinstance(data, dict):
            errors = data.get("errors")
            if isinstance(errors, list) and errors:
                codes = [str(e.get("code", "")) for e in errors if isinstance(e, dict)]
                messages = [str(e.get("message", "")) for e in errors if isinstance(e, dict)]
                return cls(code=", ".join(c for c in codes if c), message="; ".join(m for m in messages if m))
            # OAuth2-style token service errors: {"error": "...", "error_description": "..."}
            if isinstance(data.get("error"), str):
                return cls(code=data["error"], message=str(data.get("error_description") or data["error"]))
            for key in ("details", "message"):
                if isinstance(data.get(key), str):
                    return cls(message=data[key])
        return cls()
