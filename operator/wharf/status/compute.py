"""The App's status from what happened in one reconcile: pure, so every rule is unit-tested (S2, S6, S13, S14).

Ready is the summary `kubectl wait`, Argo CD and Flux read. Reconciling/Stalled follow kstatus: Reconciling while
the asked-for generation is not yet realized, Stalled when only a change by someone can help.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wharf.api.app import BUILDPACK_UNKNOWN, App, AppStatus, ProcessStatus, ResolvedImage, State
from wharf.api.conditions import Condition, ConditionType, Reason
from wharf.render.names import label_selector
from wharf.render.processes import WEB
from wharf.render.workload import Rendered
from wharf.status.conditions import find, merge
from wharf.status.pulls import FAILED_TO_CREATE, ContainerProblem
from wharf.status.rollout import RolloutProblem


@dataclass(frozen=True)
class Resolution:
    """The outcome of asking the registry (or of not needing to)."""

    image: ResolvedImage | None  # what the workload runs: fresh, or the last good one kept
    error_reason: Reason | None = None
    error_message: str = ""
    transient: bool = False  # an outage or rate limit: retried, heals by itself

    @property
    def failed(self) -> bool:
        return self.error_reason is not None


@dataclass(frozen=True)
class ProcessObservation:
    type: str
    desired: int
    ready: int
    available: int
    updated: int
    rolled_out: bool  # the Deployment controller has seen our spec and finished rolling

    @property
    def complete(self) -> bool:
        """Rolled out, with every desired instance updated and available."""
        return self.rolled_out and self.available >= self.desired and self.updated >= self.desired


@dataclass(frozen=True)
class Observation:
    processes: list[ProcessObservation] = field(default_factory=list)
    problems: list[ContainerProblem] = field(default_factory=list)
    rollout: list[RolloutProblem] = field(default_factory=list)  # most telling first


@dataclass(frozen=True)
class Blocked:
    """The App cannot be deployed as asked (invalid spec, no start command, refused user)."""

    reason: Reason
    message: str


def _c(type_: ConditionType, ok: bool | None, reason: Reason, message: str, generation: int) -> Condition:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    return Condition(
        type=type_.value, status=status, reason=reason.value, message=message, observed_generation=generation
    )


def _image_condition(resolution: Resolution | None, generation: int) -> Condition:
    if resolution is None:
        return _c(ConditionType.IMAGE_RESOLVED, None, Reason.PENDING, "not resolved yet", generation)
    if resolution.failed:
        assert resolution.error_reason is not None
        kept = f"; still running the last good digest {resolution.image.digest}" if resolution.image else ""
        return _c(
            ConditionType.IMAGE_RESOLVED, False, resolution.error_reason, resolution.error_message + kept, generation
        )
    assert resolution.image is not None
    return _c(
        ConditionType.IMAGE_RESOLVED,
        True,
        Reason.RESOLVED,
        f"{resolution.image.reference} is {resolution.image.digest}",
        generation,
    )


def _waiting_on_registry(
    resolution: Resolution, prefix: str
) -> tuple[tuple[bool, Reason, str], tuple[bool, Reason, str]]:
    """(Reconciling, Stalled) for a failed resolution: an outage is retried; not found, unauthorized or missing
    credentials need a change by someone, so the App is Stalled (kstatus)."""
    assert resolution.error_reason is not None
    idle = (False, Reason.NONE, "")
    if resolution.transient:
        return (True, resolution.error_reason, prefix + resolution.error_message), idle
    return idle, (True, resolution.error_reason, resolution.error_message)


# Causes the kubelet names; ImagePullFailed says a pull failed and not why.
_PULL_CAUSES = frozenset({Reason.IMAGE_NOT_FOUND, Reason.IMAGE_PULL_UNAUTHORIZED, Reason.REGISTRY_UNAVAILABLE})


def _pull_failure(pulls: list[ContainerProblem], before: Condition | None) -> tuple[Reason, str]:
    """Ready's reason and message when instances cannot pull (S14).

    Kubelets before 1.32 alternate between ErrImagePull with the cause and a bare `Back-off pulling image "..."`.
    Read as it stands, Ready's reason would flip between the cause and ImagePullFailed, a Warning Event at every
    flip. So a pod that names the cause speaks first, and when none does, the cause the kubelet last named stands.
    """
    pull = next((p for p in pulls if p.names_a_cause), pulls[0])
    if (
        not pull.names_a_cause
        and before is not None
        and before.status == "False"
        and before.reason in _PULL_CAUSES
        and before.message.startswith(FAILED_TO_CREATE)  # the kubelet's cause, not the registry's from a resolve
    ):
        return Reason(before.reason), before.message
    return pull.reason, pull.describe()


_Said = tuple[bool, Reason, str]


def _stuck(problems: list[RolloutProblem]) -> tuple[_Said, _Said, _Said]:
    """(Ready, Reconciling, Stalled) when instances are missing and Kubernetes says why.

    A refusal by a ResourceQuota, LimitRange or admission policy needs someone to change the App or the namespace:
    Stalled. So does a rollout past the Deployment's progress deadline, whatever held it (kstatus calls such a
    Deployment Failed). Unschedulable instances wait (Reconciling): a cluster autoscaler adds nodes, or room frees up,
    and kstatus calls an unschedulable pod InProgress; a rollout that never finds room reaches the deadline. Ready
    names the most telling cause either way, and says when the deadline has passed too.
    """
    cause = problems[0]
    message = cause.describe()
    deadline = next((p for p in problems if p.reason is Reason.PROGRESS_DEADLINE_EXCEEDED), None)
    if deadline is not None and deadline is not cause:
        message += f"; the progress deadline of {deadline.source} has passed: {deadline.message}"
    ready = (False, cause.reason, message)
    idle = (False, Reason.NONE, "")
    if cause.needs_a_person:
        return ready, idle, (True, cause.reason, message)
    if deadline is not None:
        return ready, idle, (True, deadline.reason, message)
    if cause.reason is Reason.UNSCHEDULABLE:
        waiting = "waiting for a node with room for the instances (the scheduler retries)"
    else:
        waiting = "the ReplicaSet controller retries creating the instances"
    return ready, (True, cause.reason, waiting), idle


def compute(
    app: App,
    previous: AppStatus,
    *,
    now: str,
    resolution: Resolution | None,
    rendered: Rendered | None,
    blocked: Blocked | None,
    observation: Observation | None,
) -> AppStatus:
    gen = app.generation
    image = resolution.image if resolution else previous.image
    problems = observation.problems if observation else []
    processes = observation.processes if observation else []
    desired = sum(p.desired for p in processes)
    available = sum(p.available for p in processes)
    all_available = bool(processes) and all(p.complete for p in processes)
    short = {p.type for p in processes if not p.complete}
    # What Kubernetes says about the processes that miss instances (a stale word about a complete one is no cause).
    stuck = [p for p in observation.rollout if p.process in short] if observation else []

    ready: tuple[bool | None, Reason, str]
    stalled: tuple[bool, Reason, str] = (False, Reason.NONE, "")
    reconciling: tuple[bool, Reason, str] = (False, Reason.NONE, "")
    pulls = [p for p in problems if p.is_pull_failure]
    crash = next((p for p in problems if not p.is_pull_failure), None)

    if blocked is not None:
        ready = (False, blocked.reason, blocked.message)
        stalled = (True, blocked.reason, blocked.message)
    elif resolution is not None and resolution.failed and (resolution.image is None or rendered is None):
        assert resolution.error_reason is not None
        message = resolution.error_message + ("; nothing was deployed" if not processes else "")
        ready = (False, resolution.error_reason, message)
        reconciling, stalled = _waiting_on_registry(resolution, "retrying: ")
    elif pulls:
        pull_reason, pull_message = _pull_failure(pulls, find(previous.conditions, ConditionType.READY))
        ready = (False, pull_reason, pull_message)
        reconciling = (True, pull_reason, "instances cannot pull the image; retried by the kubelet")
    elif resolution is not None and resolution.failed:
        # A restage or image change waits for the registry; the running instances keep serving (S14).
        assert resolution.error_reason is not None
        message = f"{resolution.error_message}; {available}/{desired} instances keep serving the last good image"
        ready = (False, resolution.error_reason, message)
        reconciling, stalled = _waiting_on_registry(resolution, "waiting for the registry: ")
    elif crash is not None:
        ready = (False, crash.reason, crash.describe())
        reconciling = (True, crash.reason, "instances are crashing")
    elif rendered is not None and rendered.route_conflict:
        # S19: the App runs, but another namespace owns a route it asks for; nothing is routed to it.
        ready = (False, Reason.ROUTE_CONFLICT, rendered.route_conflict)
        stalled = (True, Reason.ROUTE_CONFLICT, rendered.route_conflict)
    elif observation is None:
        ready = (None, Reason.PENDING, "not reconciled yet")
        reconciling = (True, Reason.PENDING, "not reconciled yet")
    elif app.spec.state is State.STOPPED and all_available:
        ready = (True, Reason.STOPPED, "stopped: no instances run (state STOPPED)")
    elif all_available:
        ready = (True, Reason.RUNNING, f"{available}/{desired} instances running")
    elif stuck:
        ready, reconciling, stalled = _stuck(stuck)
    else:
        message = f"{available}/{desired} instances available; rolling out"
        ready = (False, Reason.STARTING, message)
        reconciling = (True, Reason.STARTING, message)

    if not processes:
        instances_ok: bool | None = None if blocked is None and not (resolution and resolution.failed) else False
        instances_msg = "no instances deployed"
    else:
        instances_ok = all_available
        instances_msg = f"{available}/{desired} instances available"
        if not all_available:
            # Old instances may all be available while the new ones are not there yet (a rolling restart waiting
            # on the registry): say what is missing, or "2/2 available" would read as done beside status False.
            updated = sum(min(p.updated, p.desired) for p in processes)
            instances_msg += f", {updated}/{desired} on the current spec: not yet rolled out"
    if rendered:
        warnings = [w.message for w in rendered.warnings]
        warnings_reason = rendered.warnings[0].reason if rendered.warnings else Reason.NONE
    else:  # nothing rendered this time (blocked): what the last render said stands
        warnings = previous.warnings
        before = find(previous.conditions, ConditionType.MANIFEST_WARNINGS)
        kept = Reason(before.reason) if before and before.reason in {r.value for r in Reason} else Reason.IGNORED_KEYS
        warnings_reason = kept if warnings else Reason.NONE
    conditions = [
        _c(ConditionType.READY, ready[0], ready[1], ready[2], gen),
        _image_condition(resolution, gen),
        _c(
            ConditionType.INSTANCES_AVAILABLE,
            instances_ok,
            Reason.RUNNING if instances_ok else Reason.STARTING,
            instances_msg,
            gen,
        ),
        _c(ConditionType.RECONCILING, reconciling[0], reconciling[1], reconciling[2], gen),
        _c(ConditionType.STALLED, stalled[0], stalled[1], stalled[2], gen),
        _c(
            ConditionType.MANIFEST_WARNINGS,
            bool(warnings),
            warnings_reason,
            "; ".join(warnings),
            gen,
        ),
    ]
    web = next((p for p in processes if p.type == WEB), None)
    return AppStatus(
        observed_generation=gen,
        conditions=merge(previous.conditions, conditions, now),
        buildpack=BUILDPACK_UNKNOWN,
        image=image,
        port=rendered.ports.routed if rendered else previous.port,
        ports=list(rendered.ports.listed) if rendered else previous.ports,
        run_as_user=rendered.run_as.uid if rendered else previous.run_as_user,
        run_as_note=rendered.run_as.note if rendered else previous.run_as_note,
        instances=f"{web.ready}/{web.desired}" if web else previous.instances,
        ready_instances=web.ready if web else previous.ready_instances,
        selector=label_selector(app, WEB),  # a function of the name alone: set from the first visit on
        processes=[
            ProcessStatus(type=p.type, desired=p.desired, ready=p.ready, available=p.available) for p in processes
        ]
        or previous.processes,
        routes=rendered.routes if rendered else previous.routes,
        warnings=warnings,
    )
