"""Why a reconcile stops short, and the words the App's status says it with. Pure.

Each step of the reconcile (read, resolve, render, apply, observe) returns its result or raises one NotReady; one
wrapper (handlers/reconciler.py) turns it into the status, the Events and the retry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from wharf.api.conditions import Reason
from wharf.status.compute import Resolution

# Registry errors by class name (wharf.registry sits above this layer): the first of an error's classes, most
# specific first, that is named here gives the reason.
_REGISTRY_REASONS = {
    "InvalidReference": Reason.INVALID_REFERENCE,
    "NotFound": Reason.IMAGE_NOT_FOUND,
    "Unauthorized": Reason.UNAUTHORIZED,
    "Denied": Reason.DENIED,
    "RateLimited": Reason.RATE_LIMITED,
    "Unavailable": Reason.REGISTRY_UNAVAILABLE,
    "Unsupported": Reason.UNSUPPORTED_REGISTRY,
}


class NotReady(Exception):  # noqa: N818 - the step's outcome, not a failure of the code
    """A step cannot proceed. `transient`: it heals by itself (retried with backoff); else it needs a change by
    someone (the App is Stalled, and nothing is retried until something changes). `resolution` is set when the
    registry is the cause: the status then speaks of the image (ImageResolved) rather than of a blocked App."""

    def __init__(self, reason: Reason, message: str, *, transient: bool, resolution: Resolution | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.transient = transient
        self.resolution = resolution


def registry_reason(kinds: Iterable[str]) -> Reason:
    """The reason for a registry error, from the names of its classes (most specific first)."""
    return next((_REGISTRY_REASONS[k] for k in kinds if k in _REGISTRY_REASONS), Reason.IMAGE_PULL_FAILED)


def apply_refused(kind: str, name: str, status: int | None, detail: str) -> str:
    """The apiserver refused to write an object: its message, and what to change."""
    if status == 403:
        fix = "the operator's RBAC must allow this (see docs/install.md)"
    elif status == 404:
        fix = "the cluster does not serve this kind (is its API or CRD installed?)"
    else:
        fix = "change the App so that this object is valid"
    return f"the apiserver refused the {kind} {name}: {detail}; {fix}"


def name_conflict(kind: str, name: str, app: str, owner: str | None) -> str:
    """S17: a name wharf would use is taken by an object it did not make (NameConflict)."""
    whose = f"belongs to {owner}" if owner else "was not made by wharf for this App"
    return (
        f"the {kind} {name} already exists and {whose}: wharf leaves it untouched; rename the App (metadata.name) "
        f"or rename or delete that {kind} (then the App {app} deploys)"
    )


def looked_at_periodically(body: Mapping[str, Any]) -> bool:
    """Whether the periodic safety net should reconcile this App: what the watches cannot tell changes elsewhere
    for an App that is not Ready (a tag pushed, a registry back, a quota lifted) or that names Secrets (a password
    or a bound service's credentials changed; wharf never watches Secrets). A Ready App without Secrets changes
    only through what wharf watches."""
    spec = body.get("spec") or {}
    manifest = spec.get("manifest") or {}
    if spec.get("dockerPasswordSecretRef") or spec.get("imagePullSecrets") or manifest.get("services"):
        return True
    conditions = (body.get("status") or {}).get("conditions") or []
    ready: Mapping[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
    return bool(ready.get("status") != "True")
