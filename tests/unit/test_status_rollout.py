"""Why instances are not created or not scheduled, read from Deployments and pods as the apiserver returns them.

The messages are Kubernetes' own (v1.36 sources): the ResourceQuota and LimitRanger admission plugins, the
ServiceAccount admission plugin, the scheduler's `0/N nodes are available: ...`, and the Deployment controller's
`ReplicaSet "x" has timed out progressing.`
"""

from __future__ import annotations

from typing import Any

import pytest

from wharf.api.conditions import Reason
from wharf.status.rollout import RolloutProblem, rollout_problems

QUOTA = (
    'pods "shop-web-6b7f9d8c4-x7k2p" is forbidden: exceeded quota: team-quota, requested: memory=1Gi, '
    "used: memory=3Gi, limited: memory=4Gi"
)
QUOTA_NEEDS_CPU = 'pods "shop-web-6b7f9d8c4-x7k2p" is forbidden: failed quota: cpu-quota: must specify requests.cpu'
LIMIT_MEMORY = (
    'pods "shop-web-6b7f9d8c4-x7k2p" is forbidden: maximum memory usage per Container is 256Mi, but limit is 1Gi'
)
LIMIT_DISK = (
    'pods "shop-web-6b7f9d8c4-x7k2p" is forbidden: maximum ephemeral-storage usage per Pod is 512Mi, but limit is 1Gi'
)
LIMIT_CPU = (
    'pods "shop-web-6b7f9d8c4-x7k2p" is forbidden: minimum cpu usage per Container is 100m.  No request is specified'
)
POD_SECURITY = (
    'pods "shop-web-6b7f9d8c4-x7k2p" is forbidden: violates PodSecurity "restricted:latest": '
    "seccompProfile (pod or container must set securityContext.seccompProfile.type)"
)
WEBHOOK_DENIED = 'admission webhook "policy.example.com" denied the request: images from r.example are not allowed'
NO_SERVICE_ACCOUNT = (
    'pods "shop-web-6b7f9d8c4-x7k2p" is forbidden: error looking up service account space/default: '
    'serviceaccount "default" not found'
)
QUOTA_NOT_COUNTED = (
    'pods "shop-web-6b7f9d8c4-x7k2p" is forbidden: status unknown for quota: team-quota, resources: memory'
)
WEBHOOK_DOWN = (
    'Internal error occurred: failed calling webhook "policy.example.com": failed to call webhook: '
    'Post "https://policy.svc:443/validate?timeout=10s": dial tcp 10.0.0.9:443: connect: connection refused'
)
NO_ROOM_MEMORY = (
    "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: "
    "3 No preemption victims found for incoming pod."
)
NO_ROOM_BOTH = (
    "0/2 nodes are available: 1 Insufficient ephemeral-storage, 2 Insufficient memory. preemption: 0/2 nodes are "
    "available: 2 No preemption victims found for incoming pod."
)
TAINTED = (
    "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/1 nodes are "
    "available: 1 Preemption is not helpful for scheduling."
)
TIMED_OUT = 'ReplicaSet "shop-web-6b7f9d8c4" has timed out progressing.'


def deployment(
    *conditions: tuple[str, str, str, str], process: str = "web", generation: int = 2, observed: int = 2
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"shop-{process}",
            "generation": generation,
            "labels": {"wharf.dev/app": "shop", "wharf.dev/process-type": process},
        },
        "status": {
            "observedGeneration": observed,
            "conditions": [
                {"type": type_, "status": status, "reason": reason, "message": message}
                for type_, status, reason, message in conditions
            ],
        },
    }


def failed_create(message: str, **kwargs: Any) -> dict[str, Any]:
    return deployment(("ReplicaFailure", "True", "FailedCreate", message), **kwargs)


def pod(
    name: str,
    message: str = NO_ROOM_MEMORY,
    *,
    process: str = "web",
    scheduled: str = "False",
    reason: str = "Unschedulable",
    node: str = "",
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"wharf.dev/app": "shop", "wharf.dev/process-type": process}}
    if deleting:
        meta["deletionTimestamp"] = "2024-05-01T10:00:00Z"
    return {
        "metadata": meta,
        "spec": {"nodeName": node} if node else {},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": scheduled, "reason": reason, "message": message}],
        },
    }


def only(found: list[RolloutProblem]) -> RolloutProblem:
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("message", "fix"),
    [
        (QUOTA, "raise the namespace's ResourceQuota team-quota or lower the App's instances, memory or disk_quota"),
        (QUOTA_NEEDS_CPU, "ResourceQuota cpu-quota asks for a request or limit wharf does not set"),
        (LIMIT_MEMORY, "change the App's memory to fit the namespace's LimitRange"),
        (LIMIT_DISK, "change the App's disk_quota to fit the namespace's LimitRange"),
        (LIMIT_CPU, "the namespace's LimitRange constrains cpu, which wharf does not set"),
        (POD_SECURITY, "Pod Security level refuses the instances"),
        (WEBHOOK_DENIED, "a policy of the namespace refuses the instances"),
    ],
)
def test_a_refusal_by_quota_limit_range_or_policy_is_forbidden_and_says_what_to_change(message: str, fix: str) -> None:
    problem = only(rollout_problems([failed_create(message)], []))
    assert problem.reason is Reason.INSTANCES_FORBIDDEN
    assert problem.needs_a_person
    assert problem.process == "web"
    described = problem.describe()
    assert described.startswith(f"web instances cannot be created: {message} (Deployment shop-web); ")
    assert fix in described


@pytest.mark.parametrize("message", [NO_SERVICE_ACCOUNT, QUOTA_NOT_COUNTED, WEBHOOK_DOWN])
def test_a_refusal_that_clears_by_itself_is_retried_not_forbidden(message: str) -> None:
    # The namespace's ServiceAccount or a new quota's usage comes within seconds; a webhook outage ends.
    problem = only(rollout_problems([failed_create(message)], []))
    assert problem.reason is Reason.INSTANCES_NOT_CREATED
    assert not problem.needs_a_person
    assert message in problem.describe()
    assert "the ReplicaSet controller retries" in problem.describe()


def test_only_a_failure_to_create_counts() -> None:
    assert rollout_problems([deployment(("ReplicaFailure", "True", "FailedDelete", "pods gone"))], []) == []
    assert rollout_problems([deployment(("ReplicaFailure", "False", "FailedCreate", QUOTA))], []) == []
    assert rollout_problems([deployment(("Progressing", "True", "ReplicaSetUpdated", "progressing"))], []) == []
    assert rollout_problems([{"metadata": {"name": "shop-web"}}], []) == []  # no status yet


def test_conditions_of_a_spec_the_controller_has_not_seen_are_not_read() -> None:
    # The App was just changed (say, less memory to fit the LimitRange): the old refusal speaks of the old spec.
    stale = failed_create(LIMIT_MEMORY, generation=3, observed=2)
    assert rollout_problems([stale], []) == []
    stale = deployment(("Progressing", "False", "ProgressDeadlineExceeded", TIMED_OUT), generation=3, observed=2)
    assert rollout_problems([stale], []) == []


def test_progress_deadline_exceeded_needs_a_person_and_says_where_to_look() -> None:
    found = deployment(("Progressing", "False", "ProgressDeadlineExceeded", TIMED_OUT), process="worker")
    problem = only(rollout_problems([found], []))
    assert problem.reason is Reason.PROGRESS_DEADLINE_EXCEEDED
    assert problem.needs_a_person
    assert problem.process == "worker"
    assert TIMED_OUT in problem.describe()
    assert "kubectl describe pods -l wharf.dev/app=shop,wharf.dev/process-type=worker" in problem.describe()


@pytest.mark.parametrize(
    ("message", "fix"),
    [
        (NO_ROOM_MEMORY, "lower the App's memory, or add nodes with more room"),
        (NO_ROOM_BOTH, "lower the App's disk_quota or memory, or add nodes with more room"),
        (TAINTED, "add nodes the instances fit on, or ask the cluster admin why none fits"),
    ],
)
def test_an_unschedulable_pod_quotes_the_scheduler_and_waits(message: str, fix: str) -> None:
    problem = only(rollout_problems([], [pod("shop-web-6b7f9d8c4-x7k2p", message)]))
    assert problem.reason is Reason.UNSCHEDULABLE
    assert not problem.needs_a_person  # nodes may come (a cluster autoscaler); the progress deadline is the limit
    described = problem.describe()
    assert described.startswith(f"web instances cannot be scheduled: {message} (pod shop-web-6b7f9d8c4-x7k2p); ")
    assert fix in described


def test_only_pods_waiting_for_a_node_count() -> None:
    assert rollout_problems([], [pod("a", deleting=True)]) == []  # on its way out
    assert rollout_problems([], [pod("a", node="fake-node-0")]) == []  # bound meanwhile
    assert rollout_problems([], [pod("a", scheduled="True", reason="")]) == []
    assert rollout_problems([], [pod("a", reason="SchedulingGated", message="waiting for gates")]) == []
    assert rollout_problems([], [{"metadata": {"name": "a"}}]) == []  # no status yet


def test_the_most_telling_problem_comes_first_then_process_and_object() -> None:
    found = rollout_problems(
        [
            deployment(("Progressing", "False", "ProgressDeadlineExceeded", TIMED_OUT)),
            failed_create(NO_SERVICE_ACCOUNT, process="worker"),
            failed_create(QUOTA, process="clock"),
        ],
        [pod("shop-web-b"), pod("shop-web-a")],
    )
    assert [(p.reason, p.source) for p in found] == [
        (Reason.INSTANCES_FORBIDDEN, "Deployment shop-clock"),
        (Reason.INSTANCES_NOT_CREATED, "Deployment shop-worker"),
        (Reason.UNSCHEDULABLE, "pod shop-web-a"),
        (Reason.UNSCHEDULABLE, "pod shop-web-b"),
        (Reason.PROGRESS_DEADLINE_EXCEEDED, "Deployment shop-web"),
    ]
