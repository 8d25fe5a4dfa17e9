"""Non-privileged, always (S7): who the container runs as, and contexts PodSecurity `restricted` admits.

The kubelet refuses `runAsNonRoot` containers whose image USER is root, and cannot verify a non-numeric USER
(`nginx`), so such a pod would fail at run time. wharf decides before any pod exists, by the admin's policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wharf.api.conditions import Reason
from wharf.api.image import ImageFacts
from wharf.config import RootUserPolicy, Settings
from wharf.render.errors import RenderError

ROOT_NAMES = ("", "root", "0")
# A safe sysctl (allowed by `restricted`): lets a non-root process bind ports below 1024 in its own netns.
UNPRIVILEGED_PORT_SYSCTL = "net.ipv4.ip_unprivileged_port_start"


@dataclass(frozen=True)
class RunAs:
    uid: int
    gid: int | None
    note: str  # said in status: why this uid
    user_namespace: bool


def decide_user(facts: ImageFacts, settings: Settings) -> RunAs:
    user, _, group = facts.user.partition(":")
    if user.isdigit() and int(user) != 0:
        gid = int(group) if group.isdigit() else None
        return RunAs(uid=int(user), gid=gid, note=f"image USER {facts.user}", user_namespace=False)
    kind = "root" if user in ROOT_NAMES else f"non-numeric ({facts.user})"
    if settings.root_user_policy is RootUserPolicy.REFUSE:
        raise RenderError(
            Reason.ROOT_USER_REFUSED,
            f"the image's USER is {kind}, and this cluster refuses images that do not run as a numeric non-root "
            "user: rebuild the image with e.g. `USER 1000`, or ask the cluster admin for the run-as-non-root policy",
        )
    return RunAs(
        uid=settings.default_uid,
        gid=settings.default_uid,
        note=f"image USER is {kind}; running as uid {settings.default_uid} by cluster policy",
        user_namespace=settings.root_user_policy is RootUserPolicy.USER_NAMESPACE,
    )


def pod_security_context(run_as: RunAs, lowest_port: int) -> dict[str, Any]:
    context: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": run_as.uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if run_as.gid is not None:
        context["runAsGroup"] = run_as.gid
        context["fsGroup"] = run_as.gid
    if lowest_port < 1024:
        context["sysctls"] = [{"name": UNPRIVILEGED_PORT_SYSCTL, "value": str(lowest_port)}]
    return context


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
