"""What the kubelet says about an App's containers, classified for the App's status (S14).

A container waiting in ErrImagePull, ImagePullBackOff, InvalidImageName or CreateContainerConfigError means an
instance cannot start; the App says `Failed to create container: <the kubelet's words>` within seconds, with a
reason a person or a tool can act on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wharf.api.conditions import Reason

PULL_FAILURES = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "ErrImageNeverPull",
    "RegistryUnavailable",
)
CRASHING = ("CrashLoopBackOff",)

# Substrings of kubelet/containerd pull errors, most specific first.
_CAUSES: tuple[tuple[Reason, tuple[str, ...]], ...] = (
    (Reason.IMAGE_PULL_UNAUTHORIZED, ("unauthorized", "authentication required", "denied", "forbidden", "401", "403")),
    (Reason.IMAGE_NOT_FOUND, ("not found", "manifest unknown", "name unknown", "does not exist", "404")),
    (
        Reason.REGISTRY_UNAVAILABLE,
        (
            "connection refused",
            "no such host",
            "timeout",
            "timed out",
            "unreachable",
            "no route to host",
            "503",
            "502",
            "eof",
            "tls handshake",
        ),
    ),
)


@dataclass(frozen=True)
class ContainerProblem:
    pod: str
    container: str
    waiting_reason: str
    message: str

    @property
    def reason(self) -> Reason:
        if self.waiting_reason == "InvalidImageName":
            return Reason.INVALID_IMAGE_NAME
        if self.waiting_reason == "CreateContainerConfigError":
            return Reason.CONTAINER_CONFIG_ERROR
        if self.waiting_reason in CRASHING:
            return Reason.CRASHING
        text = self.message.lower()
        for reason, needles in _CAUSES:
            if any(needle in text for needle in needles):
                return reason
        return Reason.IMAGE_PULL_FAILED

    @property
    def is_pull_failure(self) -> bool:
        return self.waiting_reason in PULL_FAILURES

    def describe(self) -> str:
        detail = self.message or self.waiting_reason
        if self.is_pull_failure:
            return f"Failed to create container: {self.waiting_reason}: {detail} (pod {self.pod})"
        return f"{self.waiting_reason}: {detail} (pod {self.pod})"


def problems(pods: Iterable[Mapping[str, Any]]) -> list[ContainerProblem]:
    """Containers of live pods that wait for a reason that stops them from running."""
    found = []
    for pod in pods:
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue  # a pod on its way out says nothing about the App's future
        status = pod.get("status") or {}
        for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason", "")
            if reason in PULL_FAILURES or reason in CRASHING:
                found.append(
                    ContainerProblem(
                        pod=pod.get("metadata", {}).get("name", ""),
                        container=container.get("name", ""),
                        waiting_reason=reason,
                        message=waiting.get("message", ""),
                    )
                )
    return sorted(found, key=lambda p: (not p.is_pull_failure, p.pod, p.container))
