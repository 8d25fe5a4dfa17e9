"""What the kubelet says about an App's containers, classified for the App's status (S14).

A container waiting in ErrImagePull, ImagePullBackOff, InvalidImageName or CreateContainerConfigError means an
instance cannot start; the App says `Failed to create container: <the kubelet's words>` within seconds, with a
reason a person or a tool can act on.

The kubelet's words name the image, and pods run `repo@sha256:<hex>`: about one digest in fourteen contains 401,
403, 404, 502 or 503. So the image (and every other name: URLs, digests, references) is taken out of the message
before the cause is read from it, and HTTP codes count only as codes, never as digits inside a name.
"""

from __future__ import annotations

import re
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
FAILED_TO_CREATE = "Failed to create container"

# Names, not causes. The kubelet and containerd quote references and URLs with Go's %q (so `\"` may occur
# inside); containerd repeats the reference unquoted (`"r/x:1": r/x:1: not found`) and puts bare URLs and digests
# in its own words (`unexpected status from HEAD request to https://r/v2/x/manifests/sha256:...: 401 ...`,
# `pulling from host r failed with status code [manifests sha256:...]: 401 ...`). A normalized reference always
# holds a `/` (docker.io/library/x) or an `@`; of the cause words only `i/o` does, and `timeout` follows it.
_NAMES = (
    re.compile(r'"(?:[^"\\]|\\.)*"'),
    re.compile(r"\b[a-z][a-z0-9+.-]*://\S*", re.IGNORECASE),
    re.compile(r"\b[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-f]{32,}\b", re.IGNORECASE),  # a digest, any algorithm
    re.compile(r"\S*[/@]\S*"),
)
# What a kubelet before 1.32 writes while backing off: that the last pull failed, not why.
_BACK_OFF = re.compile(r"back-off pulling image", re.IGNORECASE)


def _code(*codes: int) -> str:
    """HTTP status codes as codes (`401 Unauthorized`, `status code 401`, `registry 503 (Service Unavailable)`),
    not as digits of a host name, port, path or tag: nothing joins them to a neighbouring name (a word character,
    or `.:/@-` on the left; a word character, `/@-`, or `.`/`:` followed by one on the right)."""
    alternatives = "|".join(str(code) for code in codes)
    return rf"(?<![\w.:/@-])(?:{alternatives})(?![\w/@-]|[.:]\w)"


def _words(*words: str) -> str:
    return r"\b(?:" + "|".join(re.escape(word) for word in words) + r")\b"


# Kubelet/containerd/CRI-O pull errors, most specific first; matched against the message without its names.
_CAUSES: tuple[tuple[Reason, re.Pattern[str]], ...] = (
    (
        Reason.IMAGE_PULL_UNAUTHORIZED,
        re.compile(
            _words("unauthorized", "authentication required", "denied", "forbidden") + "|" + _code(401, 403),
            re.IGNORECASE,
        ),
    ),
    (
        Reason.IMAGE_NOT_FOUND,
        re.compile(
            _words("not found", "manifest unknown", "name unknown", "does not exist") + "|" + _code(404),
            re.IGNORECASE,
        ),
    ),
    (
        Reason.REGISTRY_UNAVAILABLE,
        re.compile(
            _words(
                "connection refused",
                "no such host",
                "timeout",
                "timed out",
                "unreachable",
                "no route to host",
                "eof",
                "tls handshake",
            )
            + "|"
            + _code(502, 503),
            re.IGNORECASE,
        ),
    ),
)


def _without_names(message: str) -> str:
    """`message` with the image, URLs, digests and references taken out: what is left is the cause."""
    for name in _NAMES:
        message = name.sub(" ", message)
    return message


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
        text = _without_names(self.message)
        return next((reason for reason, cause in _CAUSES if cause.search(text)), Reason.IMAGE_PULL_FAILED)

    @property
    def names_a_cause(self) -> bool:
        """False when the message says only that a pull failed: the bare `Back-off pulling image "..."` of
        kubelets before 1.32 (1.32 appends `: ErrImagePull: <cause>`), or no message at all."""
        return bool(_BACK_OFF.sub(" ", _without_names(self.message)).strip(" \t\n:;,."))

    @property
    def is_pull_failure(self) -> bool:
        return self.waiting_reason in PULL_FAILURES

    def describe(self) -> str:
        detail = self.message or self.waiting_reason
        if self.is_pull_failure:
            return f"{FAILED_TO_CREATE}: {self.waiting_reason}: {detail} (pod {self.pod})"
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
