"""Why an App's instances are not created or not scheduled, from what Kubernetes writes on its Deployments and pods.

Without this the App would say `0/N instances available; rolling out` forever. Kubernetes says more:

- `ReplicaFailure` True, reason FailedCreate, on a Deployment: its ReplicaSet cannot create pods, and the message is
  the apiserver's refusal (`pods "x" is forbidden: exceeded quota: ...`). A ResourceQuota, a LimitRange or another
  admission policy refusing them waits for a person (InstancesForbidden); a refusal that clears by itself (the
  namespace's ServiceAccount not made yet, a new quota's usage not counted yet, an apiserver or webhook error) is
  retried by the ReplicaSet controller (InstancesNotCreated).
- `PodScheduled` False, reason Unschedulable, on a pod: no node has room (`0/3 nodes are available: 3 Insufficient
  memory. ...`).
- `Progressing` False, reason ProgressDeadlineExceeded, on a Deployment: the rollout made no progress for the
  Deployment's progressDeadlineSeconds (600 by default). kstatus calls such a Deployment Failed.

Each problem keeps Kubernetes' own words and says what to change; `compute` decides what the App's status makes of
them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wharf.api.conditions import Reason
from wharf.render.names import APP_LABEL, PROCESS_LABEL

# Most telling first: a refusal names what to change, a deadline only that nothing moved.
PRECEDENCE = (
    Reason.INSTANCES_FORBIDDEN,
    Reason.INSTANCES_NOT_CREATED,
    Reason.UNSCHEDULABLE,
    Reason.PROGRESS_DEADLINE_EXCEEDED,
)

# Admission refusals (HTTP 403: `<resource> "<name>" is forbidden: <why>`, or a webhook's denial).
_REFUSED = re.compile(r"\bis forbidden\b|^forbidden:|denied the request", re.IGNORECASE)
# Refusals that clear by themselves: the ServiceAccount controller makes `default` moments after the namespace, the
# quota controller counts a new quota's usage within seconds; the ReplicaSet controller retries meanwhile.
_CLEARS_BY_ITSELF = re.compile(
    r"error looking up service account|status unknown for quota|quota evaluation timed out", re.IGNORECASE
)
_QUOTA_EXCEEDED = re.compile(r"exceeded quota: ([^,\s]+)")
_QUOTA_MUST_SPECIFY = re.compile(r"failed quota: ([^:\s]+): must specify")
_LIMIT_RANGE = re.compile(
    r"(?:maximum|minimum) (\S+) usage per (?:Container|Pod)|(\S+) max limit to request ratio per (?:Container|Pod)"
)
_POD_SECURITY = re.compile(r"violates PodSecurity")
_INSUFFICIENT = re.compile(r"Insufficient (\w(?:[\w./-]*\w)?)")  # memory, ephemeral-storage, example.com/gpu

# The App's keys behind the pod resources wharf sets (S4, S8).
_APP_KEYS = {"memory": "memory", "ephemeral-storage": "disk_quota"}


@dataclass(frozen=True)
class RolloutProblem:
    reason: Reason
    process: str
    source: str  # the object that says so: `Deployment shop-web`, `pod shop-web-7d9c-x2x5q`
    message: str  # Kubernetes' words
    selector: str = ""  # the label selector of the process's pods, for the `kubectl` that shows more

    @property
    def needs_a_person(self) -> bool:
        """True when only a change by someone helps (kstatus Stalled): a quota or policy refusal, or a rollout the
        Deployment controller gave up on. Unschedulable is not: a cluster autoscaler adds nodes, or pods elsewhere
        finish and free room, and kstatus itself calls an unschedulable pod InProgress. If room never comes, the
        Deployment's progress deadline turns it into ProgressDeadlineExceeded."""
        return self.reason in (Reason.INSTANCES_FORBIDDEN, Reason.PROGRESS_DEADLINE_EXCEEDED)

    def describe(self) -> str:
        """Kubernetes' words, where they come from, and what to change."""
        if self.reason is Reason.INSTANCES_FORBIDDEN:
            return (
                f"{self.process} instances cannot be created: {self.message} ({self.source}); "
                f"{_refusal_fix(self.message)}"
            )
        if self.reason is Reason.INSTANCES_NOT_CREATED:
            return (
                f"{self.process} instances are not created yet: {self.message} ({self.source}); "
                "the ReplicaSet controller retries"
            )
        if self.reason is Reason.UNSCHEDULABLE:
            return (
                f"{self.process} instances cannot be scheduled: {self.message} ({self.source}); "
                f"{_scheduling_fix(self.message)}"
            )
        return (
            f"{self.process} instances did not become available within the Deployment's progress deadline: "
            f"{self.message} ({self.source}); see why with `kubectl describe pods -l {self.selector}` and change "
            "the App (its health check, command or image)"
        )


def _refusal_fix(message: str) -> str:
    if quota := _QUOTA_EXCEEDED.search(message):
        return (
            f"raise the namespace's ResourceQuota {quota.group(1)} or lower the App's instances, memory or disk_quota"
        )
    if quota := _QUOTA_MUST_SPECIFY.search(message):
        return (
            f"the namespace's ResourceQuota {quota.group(1)} asks for a request or limit wharf does not set (it sets "
            "memory and ephemeral-storage, from memory and disk_quota): the cluster admin can add a LimitRange with "
            "defaults for it, or change the quota"
        )
    if limit := _LIMIT_RANGE.search(message):
        resource = limit.group(1) or limit.group(2)
        if resource in _APP_KEYS:
            return f"change the App's {_APP_KEYS[resource]} to fit the namespace's LimitRange, or have it changed"
        return (
            f"the namespace's LimitRange constrains {resource}, which wharf does not set: have the LimitRange changed"
        )
    if _POD_SECURITY.search(message):
        return "the namespace's Pod Security level refuses the instances: ask the cluster admin"
    return "a policy of the namespace refuses the instances: change what it names, or ask the cluster admin"


def _scheduling_fix(message: str) -> str:
    keys = sorted({_APP_KEYS[r] for r in _INSUFFICIENT.findall(message) if r in _APP_KEYS})
    if keys:
        return f"lower the App's {' or '.join(keys)}, or add nodes with more room (a cluster autoscaler may add them)"
    return "add nodes the instances fit on, or ask the cluster admin why none fits"


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == type_), {})


def _deployment_problems(deployment: Mapping[str, Any]) -> list[RolloutProblem]:
    meta = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return []  # the conditions speak of an older spec (the App's previous one): the controller will say anew
    labels = meta.get("labels") or {}
    process = labels.get(PROCESS_LABEL, "")
    source = f"Deployment {meta.get('name', '')}"
    found = []
    failure = _condition(deployment, "ReplicaFailure")
    if failure.get("status") == "True" and failure.get("reason") == "FailedCreate":
        message = failure.get("message", "")
        refused = _REFUSED.search(message) and not _CLEARS_BY_ITSELF.search(message)
        reason = Reason.INSTANCES_FORBIDDEN if refused else Reason.INSTANCES_NOT_CREATED
        found.append(RolloutProblem(reason, process, source, message))
    progressing = _condition(deployment, "Progressing")
    if progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded":
        selector = f"{APP_LABEL}={labels.get(APP_LABEL, '')},{PROCESS_LABEL}={process}"
        message = progressing.get("message", "")
        found.append(RolloutProblem(Reason.PROGRESS_DEADLINE_EXCEEDED, process, source, message, selector))
    return found


def _pod_problems(pod: Mapping[str, Any]) -> list[RolloutProblem]:
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp") or (pod.get("spec") or {}).get("nodeName"):
        return []  # on its way out, or placed after all
    scheduled = _condition(pod, "PodScheduled")
    if scheduled.get("status") != "False" or scheduled.get("reason") != "Unschedulable":
        return []
    process = (meta.get("labels") or {}).get(PROCESS_LABEL, "")
    return [RolloutProblem(Reason.UNSCHEDULABLE, process, f"pod {meta.get('name', '')}", scheduled.get("message", ""))]


def rollout_problems(
    deployments: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]
) -> list[RolloutProblem]:
    """What stops instances of the App's current Deployments from being created, scheduled or rolled out; the most
    telling first (`PRECEDENCE`), then by process and object, so the same cluster state always reads the same."""
    found = [p for d in deployments for p in _deployment_problems(d)] + [p for pod in pods for p in _pod_problems(pod)]
    return sorted(found, key=lambda p: (PRECEDENCE.index(p.reason), p.process, p.source))
