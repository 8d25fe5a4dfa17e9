"""What the status reads from the cluster's objects, and the Events it posts (pure: wharf.status).

`observe` turns the cached Deployments and pods into the Observation `compute` decides from; `transitions` posts a
Warning once when the App starts failing for a reason, never once per reconcile.
"""

from __future__ import annotations

from typing import Any

from render_support import make_app, make_facts, render_ok

from wharf.api.app import AppStatus, ResolvedImage
from wharf.api.conditions import Reason
from wharf.status.compute import Observation, Resolution, compute
from wharf.status.events import EventRecord, transitions
from wharf.status.observe import observe
from wharf.status.rollout import RolloutProblem

T0 = "2024-05-01T10:00:00Z"
IMAGE = ResolvedImage(**make_facts((3000,)).model_dump(), resolved_at=T0)
APP = make_app({"instances": 2}, generation=3)
QUOTA = 'pods "shop-web-6b7f9d8c4-x7k2p" is forbidden: exceeded quota: no-pods, requested: pods=1, used: pods=0'
NO_ROOM = "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption"


def _deployment(process: str, *conditions: dict[str, str], replicas: int = 2) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"shop-{process}",
            "generation": 1,
            "labels": {"wharf.dev/app": "shop", "wharf.dev/process-type": process},
        },
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": 1, "replicas": 0, "conditions": list(conditions)},
    }


def _pending(name: str, process: str = "web") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"wharf.dev/app": "shop", "wharf.dev/process-type": process}},
        "spec": {},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": NO_ROOM}],
        },
    }


def test_observe_reads_why_instances_are_missing_from_the_current_deployments_and_their_pods() -> None:
    failure = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": QUOTA}
    observation = observe(
        [_deployment("web", failure), _deployment("retired", failure)],  # a removed process type, being pruned
        [_pending("shop-web-6b7f9d8c4-x7k2p")],
        render_ok(APP).processes,
    )
    assert [(p.reason, p.process, p.source) for p in observation.rollout] == [
        (Reason.INSTANCES_FORBIDDEN, "web", "Deployment shop-web"),
        (Reason.UNSCHEDULABLE, "web", "pod shop-web-6b7f9d8c4-x7k2p"),
    ]
    assert [(p.type, p.desired, p.available) for p in observation.processes] == [("web", 2, 0)]


def _status(previous: AppStatus, *rollout: RolloutProblem) -> AppStatus:
    observation = observe([_deployment("web")], [], render_ok(APP).processes)
    return compute(
        APP,
        previous,
        now=T0,
        resolution=Resolution(IMAGE),
        rendered=render_ok(APP),
        blocked=None,
        observation=Observation(observation.processes, [], list(rollout)),
    )


def _warnings(events: list[EventRecord]) -> list[str]:
    return [e.reason for e in events if e.type == "Warning"]


FORBIDDEN = RolloutProblem(Reason.INSTANCES_FORBIDDEN, "web", "Deployment shop-web", QUOTA)
UNSCHEDULABLE = RolloutProblem(Reason.UNSCHEDULABLE, "web", "pod shop-web-6b7f9d8c4-x7k2p", NO_ROOM)
DEADLINE = RolloutProblem(
    Reason.PROGRESS_DEADLINE_EXCEEDED,
    "web",
    "Deployment shop-web",
    'ReplicaSet "shop-web-6b" has timed out progressing.',
)


def test_a_refusal_posts_one_warning_with_the_quota_message() -> None:
    starting = _status(AppStatus())
    refused = _status(starting, FORBIDDEN)
    events = transitions(starting, refused)
    assert _warnings(events) == ["InstancesForbidden"]  # Ready and Stalled say the same: one Event
    (warning,) = [e for e in events if e.type == "Warning"]
    assert QUOTA in warning.message
    assert _warnings(transitions(refused, _status(refused, FORBIDDEN))) == []  # every later reconcile: none


def test_reaching_the_progress_deadline_is_a_warning_of_its_own_once() -> None:
    # Ready keeps naming the cause (Unschedulable, already announced); Stalled turning True is news.
    waiting = _status(_status(AppStatus()), UNSCHEDULABLE)
    gave_up = _status(waiting, UNSCHEDULABLE, DEADLINE)
    assert _warnings(transitions(waiting, gave_up)) == ["ProgressDeadlineExceeded"]
    assert _warnings(transitions(gave_up, _status(gave_up, UNSCHEDULABLE, DEADLINE))) == []


def test_unschedulable_posts_one_warning() -> None:
    starting = _status(AppStatus())
    waiting = _status(starting, UNSCHEDULABLE)
    assert _warnings(transitions(starting, waiting)) == ["Unschedulable"]
    assert _warnings(transitions(waiting, _status(waiting, UNSCHEDULABLE))) == []


def _rolled_out(**extra: Any) -> dict[str, Any]:
    deployment = _deployment("web", replicas=2)
    deployment["status"].update(replicas=2, updatedReplicas=2, readyReplicas=2, availableReplicas=2)
    deployment["metadata"]["annotations"] = {"wharf.dev/applied-hash": "h1"}
    deployment.update(extra)
    return deployment


def test_a_deployment_is_rolled_out_only_as_rendered() -> None:
    # S17: never Running while the pod template differs from what wharf renders: another writer changed it (the
    # cache's drift flag), or what wharf last applied is not what it renders now.
    processes = render_ok(APP).processes
    (ok,) = observe([_rolled_out()], [], processes, {"shop-web": "h1"}).processes
    assert ok.complete
    (drifted,) = observe([_rolled_out(**{"wharf.dev/drift": True})], [], processes, {"shop-web": "h1"}).processes
    assert not drifted.complete
    (stale,) = observe([_rolled_out()], [], processes, {"shop-web": "h2"}).processes
    assert not stale.complete
    (kept,) = observe([_rolled_out()], [], processes, None).processes  # S14: what runs is kept as it is
    assert kept.complete
