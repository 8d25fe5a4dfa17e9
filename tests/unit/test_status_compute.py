"""S2, S6, S13, S14, S15: the App's status from one reconcile, and what kstatus makes of it."""

from __future__ import annotations

from typing import Any

import pytest
from render_support import DIGEST, deployment, make_app, make_facts, render_ok

from wharf.api.app import App, AppStatus, ResolvedImage
from wharf.api.conditions import ConditionType, Reason
from wharf.render import Rendered
from wharf.status.compute import Blocked, Observation, ProcessObservation, Resolution, compute
from wharf.status.conditions import find
from wharf.status.pulls import ContainerProblem
from wharf.status.rollout import RolloutProblem

T0 = "2024-05-01T10:00:00Z"
T1 = "2024-05-01T10:05:00Z"
ALL_TYPES = {c.value for c in ConditionType}
IMAGE = ResolvedImage(**make_facts((3000,)).model_dump(), resolved_at=T0)


# --- kstatus's documented rules for custom resources (sigs.k8s.io/cli-utils/pkg/kstatus) --------------------------
def kstatus(generation: int, status: AppStatus) -> str:
    if status.observed_generation is None or status.observed_generation < generation:
        return "InProgress"
    conditions = {c.type: c.status for c in status.conditions}
    # Tools that read only Reconciling/Stalled must not see both at once.
    assert not (conditions.get("Reconciling") == "True" and conditions.get("Stalled") == "True")
    if conditions.get("Reconciling") == "True":
        return "InProgress"
    if conditions.get("Stalled") == "True":
        return "Failed"
    if conditions.get("Ready") == "True":
        return "Current"
    return "Unknown"  # neither done nor working nor stuck: a status no tool can read


def _obs(desired: int = 2, available: int = 2, *, rolled_out: bool = True, problems: Any = ()) -> Observation:
    process = ProcessObservation(
        type="web", desired=desired, ready=available, available=available, updated=desired, rolled_out=rolled_out
    )
    return Observation(processes=[process], problems=list(problems))


def _run(
    app: App | None = None,
    previous: AppStatus | None = None,
    *,
    now: str = T0,
    resolution: Resolution | None = None,
    rendered: Rendered | None = None,
    blocked: Blocked | None = None,
    observation: Observation | None = None,
) -> AppStatus:
    return compute(
        app or make_app({"instances": 2}, generation=3),
        previous or AppStatus(),
        now=now,
        resolution=resolution,
        rendered=rendered,
        blocked=blocked,
        observation=observation,
    )


def _cond(status: AppStatus, type_: ConditionType) -> tuple[str, str]:
    condition = find(status.conditions, type_.value)
    assert condition is not None, f"{type_} missing"
    return condition.status, condition.reason


def _running(previous: AppStatus | None = None, now: str = T0) -> AppStatus:
    return _run(previous=previous, now=now, resolution=Resolution(IMAGE), rendered=render_ok(), observation=_obs())


PULL = ContainerProblem("shop-web-1", "app", "ErrImagePull", "rpc error: manifest unknown")
CRASH = ContainerProblem("shop-web-2", "app", "CrashLoopBackOff", "back-off")


def test_ready_when_all_instances_are_available() -> None:
    # S15
    status = _running()
    assert _cond(status, ConditionType.READY) == ("True", "Running")
    assert _cond(status, ConditionType.INSTANCES_AVAILABLE) == ("True", "Running")
    assert _cond(status, ConditionType.IMAGE_RESOLVED) == ("True", "Resolved")
    assert _cond(status, ConditionType.RECONCILING)[0] == "False"
    assert _cond(status, ConditionType.STALLED)[0] == "False"
    assert (status.instances, status.ready_instances) == ("2/2", 2)
    assert kstatus(3, status) == "Current"


def test_status_reports_ports_user_image_and_buildpack() -> None:
    # S2, S6, S13
    status = _run(resolution=Resolution(IMAGE), rendered=render_ok(facts=make_facts((3000,))), observation=_obs())
    assert (status.port, status.ports) == (3000, [3000])
    assert status.run_as_user == 1000
    assert status.image is not None
    assert status.image.digest == DIGEST
    assert status.buildpack == "unknown"


def test_starting_while_rolling() -> None:
    # S15
    status = _run(resolution=Resolution(IMAGE), rendered=render_ok(), observation=_obs(available=1, rolled_out=False))
    assert _cond(status, ConditionType.READY) == ("False", "Starting")
    assert _cond(status, ConditionType.RECONCILING) == ("True", "Starting")
    assert _cond(status, ConditionType.INSTANCES_AVAILABLE)[0] == "False"
    assert kstatus(3, status) == "InProgress"


def test_pull_failure_takes_precedence_and_says_failed_to_create_container() -> None:
    # S14: within seconds, with the kubelet's cause
    status = _run(
        resolution=Resolution(IMAGE),
        rendered=render_ok(),
        observation=_obs(available=0, rolled_out=False, problems=[CRASH, PULL]),
    )
    ready = find(status.conditions, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", "ImageNotFound")
    assert ready.message.startswith("Failed to create container: ErrImagePull")
    assert _cond(status, ConditionType.RECONCILING) == ("True", "ImageNotFound")
    assert kstatus(3, status) == "InProgress"


UNAUTHORIZED_PULL = ContainerProblem(
    "shop-web-1",
    "app",
    "ErrImagePull",
    'rpc error: code = Unknown desc = failed to pull and unpack image "r.example/shop/web@sha256:'
    + "ab" * 32
    + '": failed to resolve reference "r.example/shop/web@sha256:'
    + "ab" * 32
    + '": pull access denied, repository does not exist or may require authorization: authorization failed',
)
BARE_BACK_OFF = ContainerProblem(
    "shop-web-1", "app", "ImagePullBackOff", 'Back-off pulling image "r.example/shop/web@sha256:' + "ab" * 32 + '"'
)


def _pulling(previous: AppStatus | None, *problems: ContainerProblem, now: str = T0) -> AppStatus:
    return _run(
        previous=previous,
        now=now,
        resolution=Resolution(IMAGE),
        rendered=render_ok(),
        observation=_obs(available=0, rolled_out=False, problems=problems),
    )


def test_s14_a_bare_back_off_keeps_the_cause_the_kubelet_gave_before() -> None:
    """S14: kubelets before 1.32 alternate ErrImagePull (with the cause) and a bare `Back-off pulling image "..."`;
    Ready keeps the cause, so its reason does not flip (a Warning Event at every flip)."""
    first = _pulling(None, UNAUTHORIZED_PULL, now=T0)
    ready_first = find(first.conditions, "Ready")
    assert ready_first is not None
    assert (ready_first.status, ready_first.reason) == ("False", "ImagePullUnauthorized")
    status = first
    for now, problem in [(T1, BARE_BACK_OFF), (T1, UNAUTHORIZED_PULL), (T1, BARE_BACK_OFF)]:
        status = _pulling(status, problem, now=now)
        ready = find(status.conditions, "Ready")
        assert ready is not None
        assert (ready.status, ready.reason) == ("False", "ImagePullUnauthorized"), problem
        assert "pull access denied" in ready.message  # the cause, not just "Back-off"
        assert ready.last_transition_time == T0
        assert _cond(status, ConditionType.RECONCILING) == ("True", "ImagePullUnauthorized")


def test_s14_a_bare_back_off_with_no_cause_known_says_the_pull_failed() -> None:
    """S14: with no cause named before (first look, or Ready was not a pull failure), the bare back-off is what
    there is: ImagePullFailed with the kubelet's words."""
    for previous in (None, _running()):
        status = _pulling(previous, BARE_BACK_OFF)
        ready = find(status.conditions, "Ready")
        assert ready is not None
        assert (ready.status, ready.reason) == ("False", "ImagePullFailed")
        assert ready.message.startswith('Failed to create container: ImagePullBackOff: Back-off pulling image "')


def test_s14_a_bare_back_off_does_not_keep_a_registry_error_from_resolving() -> None:
    """S14: a RegistryUnavailable from the operator's own resolve is not the kubelet's cause for this pull."""
    outage = _run(resolution=Resolution(None, Reason.REGISTRY_UNAVAILABLE, "registry unreachable", transient=True))
    assert _cond(outage, ConditionType.READY) == ("False", "RegistryUnavailable")
    assert _cond(_pulling(outage, BARE_BACK_OFF), ConditionType.READY) == ("False", "ImagePullFailed")


def test_s14_a_pod_that_names_the_cause_speaks_for_one_that_does_not() -> None:
    """S14: one pod backing off bare, another with the cause: the cause is what Ready says."""
    other = ContainerProblem("shop-web-2", "app", UNAUTHORIZED_PULL.waiting_reason, UNAUTHORIZED_PULL.message)
    status = _pulling(None, BARE_BACK_OFF, other)  # shop-web-1 sorts first
    ready = find(status.conditions, "Ready")
    assert ready is not None
    assert ready.reason == "ImagePullUnauthorized"
    assert "(pod shop-web-2)" in ready.message


def test_s14_a_new_cause_replaces_the_kept_one() -> None:
    """S14: keeping the cause through a bare back-off never hides a new cause the kubelet names."""
    status = _pulling(_pulling(None, UNAUTHORIZED_PULL), BARE_BACK_OFF)
    assert _cond(_pulling(status, PULL), ConditionType.READY) == ("False", "ImageNotFound")


def test_crash_reported_when_no_pull_failure() -> None:
    # S14
    status = _run(resolution=Resolution(IMAGE), rendered=render_ok(), observation=_obs(available=1, problems=[CRASH]))
    assert _cond(status, ConditionType.READY) == ("False", "CrashLoopBackOff")
    assert kstatus(3, status) == "InProgress"


def test_registry_outage_keeps_the_last_good_image() -> None:
    # S14: instances keep running, status says the registry is unavailable and why; it heals by itself
    previous = _running()
    outage = Resolution(IMAGE, Reason.REGISTRY_UNAVAILABLE, "registry.example.com:5000: connection refused", True)
    status = _run(previous=previous, now=T1, resolution=outage, rendered=render_ok(), observation=_obs())
    assert _cond(status, ConditionType.READY) == ("False", "RegistryUnavailable")
    assert _cond(status, ConditionType.RECONCILING) == ("True", "RegistryUnavailable")
    assert _cond(status, ConditionType.IMAGE_RESOLVED) == ("False", "RegistryUnavailable")
    assert _cond(status, ConditionType.STALLED)[0] == "False"
    image_resolved = find(status.conditions, "ImageResolved")
    assert image_resolved is not None
    assert "connection refused" in image_resolved.message
    assert DIGEST in image_resolved.message  # still running the last good digest
    assert status.image == IMAGE
    assert kstatus(3, status) == "InProgress"
    healed = _running(previous=status, now="2024-05-01T10:10:00Z")
    assert _cond(healed, ConditionType.READY) == ("True", "Running")
    assert kstatus(3, healed) == "Current"


def test_registry_outage_with_nothing_resolved_yet_retries() -> None:
    # S14
    outage = Resolution(None, Reason.REGISTRY_UNAVAILABLE, "connection refused", True)
    status = _run(resolution=outage)
    assert _cond(status, ConditionType.READY) == ("False", "RegistryUnavailable")
    assert _cond(status, ConditionType.RECONCILING)[0] == "True"
    assert _cond(status, ConditionType.STALLED)[0] == "False"
    ready = find(status.conditions, "Ready")
    assert ready is not None
    assert "nothing was deployed" in ready.message
    assert kstatus(3, status) == "InProgress"


@pytest.mark.parametrize("reason", [Reason.IMAGE_NOT_FOUND, Reason.UNAUTHORIZED, Reason.UNSUPPORTED_REGISTRY])
def test_permanent_registry_error_stalls(reason: Reason) -> None:
    # S12, S14: only a change by someone can help
    status = _run(resolution=Resolution(None, reason, "no such image", transient=False))
    assert _cond(status, ConditionType.STALLED) == ("True", reason.value)
    assert _cond(status, ConditionType.READY) == ("False", reason.value)
    assert _cond(status, ConditionType.RECONCILING)[0] == "False"
    assert _cond(status, ConditionType.INSTANCES_AVAILABLE)[0] == "False"
    assert kstatus(3, status) == "Failed"


@pytest.mark.parametrize("reason", [Reason.IMAGE_NOT_FOUND, Reason.CREDENTIALS_MISSING])
def test_permanent_registry_error_with_a_last_good_image_stalls_while_instances_serve(reason: Reason) -> None:
    # S14: e.g. a restage to a tag that does not exist: the old instances keep serving, but waiting will not help
    previous = _running()
    status = _run(
        previous=previous,
        now=T1,
        resolution=Resolution(IMAGE, reason, "the tag is gone", transient=False),
        rendered=render_ok(),
        observation=_obs(),
    )
    assert _cond(status, ConditionType.STALLED) == ("True", reason.value)
    assert _cond(status, ConditionType.READY) == ("False", reason.value)
    assert _cond(status, ConditionType.RECONCILING)[0] == "False"
    assert _cond(status, ConditionType.INSTANCES_AVAILABLE)[0] == "True"
    assert status.image == IMAGE
    assert kstatus(3, status) == "Failed"


@pytest.mark.parametrize("reason", [Reason.NO_START_COMMAND, Reason.ROOT_USER_REFUSED, Reason.INVALID_SPEC])
def test_blocked_stalls(reason: Reason) -> None:
    # S5, S7
    status = _run(resolution=Resolution(IMAGE), blocked=Blocked(reason, "cannot run"))
    assert _cond(status, ConditionType.STALLED) == ("True", reason.value)
    assert _cond(status, ConditionType.READY) == ("False", reason.value)
    assert _cond(status, ConditionType.RECONCILING)[0] == "False"
    assert kstatus(3, status) == "Failed"


def test_stopped_is_ready_with_reason_stopped() -> None:
    # S15
    app = make_app({"instances": 2}, generation=3, state="STOPPED")
    status = _run(app, resolution=Resolution(IMAGE), rendered=render_ok(app), observation=_obs(desired=0, available=0))
    assert _cond(status, ConditionType.READY) == ("True", "Stopped")
    assert kstatus(3, status) == "Current"


def test_selector_is_the_web_pods_selector_in_every_outcome() -> None:
    """S4, S15: the scale subresource's labelSelectorPath (.status.selector) names the web pods and only them, from
    the first visit on, so a HorizontalPodAutoscaler targeting the App can find them whatever the App's state."""
    app = make_app({"instances": 2, "processes": [{"type": "worker", "instances": 1}]}, generation=3)
    rendered = render_ok(app)
    web, worker = deployment(rendered, "web"), deployment(rendered, "worker")
    outcomes = [
        _run(app),
        _run(app, resolution=Resolution(IMAGE), rendered=rendered, observation=_obs()),
        _run(app, resolution=Resolution(IMAGE), blocked=Blocked(Reason.NO_START_COMMAND, "cannot run")),
        _run(app, resolution=Resolution(None, Reason.REGISTRY_UNAVAILABLE, "unreachable", transient=True)),
    ]
    for status in outcomes:
        assert status.selector == "wharf.dev/app=shop,wharf.dev/process-type=web"
        wanted = dict(term.split("=", 1) for term in status.selector.split(","))
        assert wanted == web["spec"]["selector"]["matchLabels"]
        assert wanted.items() <= web["spec"]["template"]["metadata"]["labels"].items()
        assert not wanted.items() <= worker["spec"]["template"]["metadata"]["labels"].items()
        dumped = status.model_dump(mode="json", by_alias=True, exclude_none=True)
        assert dumped["selector"] == status.selector  # what the status patch writes


def test_all_six_conditions_on_the_first_visit() -> None:
    # S14: every condition present from the start, with observedGeneration and a transition time
    for status in (
        _run(),
        _run(resolution=Resolution(IMAGE), rendered=render_ok(), observation=_obs(available=0, rolled_out=False)),
    ):
        assert {c.type for c in status.conditions} == ALL_TYPES
        assert len(status.conditions) == 6
        assert all(c.observed_generation == 3 for c in status.conditions)
        assert all(c.last_transition_time == T0 for c in status.conditions)
        assert status.observed_generation == 3
        assert kstatus(3, status) == "InProgress"


def test_last_transition_time_moves_only_when_the_status_changes() -> None:
    # S14: Kubernetes API conventions
    first = _running(now=T0)
    same = _running(previous=first, now=T1)
    assert [c.last_transition_time for c in same.conditions] == [T0] * 6
    rolling = _run(
        previous=same, now=T1, resolution=Resolution(IMAGE), rendered=render_ok(), observation=_obs(available=1)
    )
    times = {c.type: c.last_transition_time for c in rolling.conditions}
    assert times["Ready"] == T1
    assert times["Reconciling"] == T1
    assert times["InstancesAvailable"] == T1
    assert times["ImageResolved"] == T0
    assert times["Stalled"] == T0


def test_observed_generation_follows_the_app() -> None:
    # S15
    app = make_app({"instances": 2}, generation=9)
    status = _run(app, previous=_running(), resolution=Resolution(IMAGE), rendered=render_ok(app), observation=_obs())
    assert status.observed_generation == 9
    assert all(c.observed_generation == 9 for c in status.conditions)
    assert kstatus(9, status) == "Current"
    assert kstatus(10, status) == "InProgress"  # a newer spec not yet seen


def test_manifest_warnings_condition() -> None:
    # S2: ignored keys are said, not silently dropped
    app = make_app({"buildpacks": ["ruby"], "stack": "cflinuxfs4"}, generation=3)
    status = _run(app, resolution=Resolution(IMAGE), rendered=render_ok(app), observation=_obs(desired=1, available=1))
    warnings = find(status.conditions, "ManifestWarnings")
    assert warnings is not None
    assert (warnings.status, warnings.reason) == ("True", "IgnoredKeys")
    assert "buildpacks" in warnings.message
    assert "stack" in warnings.message
    assert kstatus(3, status) == "Current"  # a warning does not hold the App back
    assert _cond(_running(), ConditionType.MANIFEST_WARNINGS) == ("False", "None")


def test_manifest_warnings_reason_names_the_first_warnings_kind_and_survives_a_blocked_reconcile() -> None:
    # The reason says what kind of warning leads (not always IgnoredKeys); the message lists them all.
    app = make_app({"services": ["gone"], "routes": [{"route": "shop.example.com"}]}, generation=3)
    status = _run(app, resolution=Resolution(IMAGE), rendered=render_ok(app), observation=_obs(desired=1, available=1))
    assert _cond(status, ConditionType.MANIFEST_WARNINGS) == ("True", "ServiceSecretMissing")
    assert [w.split(":")[0] for w in status.warnings] == [
        "service gone is bound but no Secret gone exists in namespace space",
        "routes are not routed",
    ]
    # A later reconcile that renders nothing (blocked) keeps what the last render said.
    blocked = _run(app, status, resolution=Resolution(IMAGE), blocked=Blocked(Reason.INVALID_SPEC, "bad"))
    assert _cond(blocked, ConditionType.MANIFEST_WARNINGS) == ("True", "ServiceSecretMissing")
    assert blocked.warnings == status.warnings


# --- instances that cannot be created, scheduled or rolled out ------------------------------------------------------
QUOTA_MESSAGE = 'pods "shop-web-6b7f9d8c4-x7k2p" is forbidden: exceeded quota: no-pods, requested: pods=1, used: pods=0'
FORBIDDEN = RolloutProblem(Reason.INSTANCES_FORBIDDEN, "web", "Deployment shop-web", QUOTA_MESSAGE)
NOT_CREATED = RolloutProblem(
    Reason.INSTANCES_NOT_CREATED,
    "web",
    "Deployment shop-web",
    'pods "x" is forbidden: error looking up service account space/default: serviceaccount "default" not found',
)
NO_ROOM = "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption"
UNSCHEDULABLE = RolloutProblem(Reason.UNSCHEDULABLE, "web", "pod shop-web-6b7f9d8c4-x7k2p", NO_ROOM)
DEADLINE = RolloutProblem(
    Reason.PROGRESS_DEADLINE_EXCEEDED,
    "web",
    "Deployment shop-web",
    'ReplicaSet "shop-web-6b7f9d8c4" has timed out progressing.',
    "wharf.dev/app=shop,wharf.dev/process-type=web",
)


def _stuck(*rollout: RolloutProblem, problems: Any = (), previous: AppStatus | None = None) -> AppStatus:
    observation = _obs(available=0, rolled_out=False, problems=problems)
    return _run(
        previous=previous,
        resolution=Resolution(IMAGE),
        rendered=render_ok(),
        observation=Observation(observation.processes, observation.problems, list(rollout)),
    )


def _ready(status: AppStatus) -> tuple[str, str, str]:
    ready = find(status.conditions, "Ready")
    assert ready is not None
    return ready.status, ready.reason, ready.message


def test_a_quota_refusing_the_instances_stalls_with_the_quota_message_and_the_fix() -> None:
    # Nothing the operator or Kubernetes retries can help: someone raises the quota or lowers the App.
    status = _stuck(FORBIDDEN)
    ok, reason, message = _ready(status)
    assert (ok, reason) == ("False", "InstancesForbidden")
    assert QUOTA_MESSAGE in message
    assert "raise the namespace's ResourceQuota no-pods" in message
    assert _cond(status, ConditionType.STALLED) == ("True", "InstancesForbidden")
    assert _cond(status, ConditionType.RECONCILING)[0] == "False"
    assert _cond(status, ConditionType.INSTANCES_AVAILABLE)[0] == "False"
    assert kstatus(3, status) == "Failed"


def test_unschedulable_instances_wait_for_room_with_the_schedulers_message() -> None:
    # A cluster autoscaler may add a node: kstatus InProgress (as kstatus says of an unschedulable pod).
    status = _stuck(UNSCHEDULABLE)
    ok, reason, message = _ready(status)
    assert (ok, reason) == ("False", "Unschedulable")
    assert NO_ROOM in message
    assert "lower the App's memory" in message
    assert _cond(status, ConditionType.RECONCILING) == ("True", "Unschedulable")
    assert _cond(status, ConditionType.STALLED)[0] == "False"
    assert kstatus(3, status) == "InProgress"


def test_instances_not_created_yet_are_retried() -> None:
    status = _stuck(NOT_CREATED)
    assert _cond(status, ConditionType.READY) == ("False", "InstancesNotCreated")
    assert _cond(status, ConditionType.RECONCILING) == ("True", "InstancesNotCreated")
    assert kstatus(3, status) == "InProgress"


def test_past_the_progress_deadline_the_cause_stays_named_and_the_app_stalls() -> None:
    # kstatus calls a Deployment past its progress deadline Failed; Ready still says what held it.
    status = _stuck(UNSCHEDULABLE, DEADLINE)
    ok, reason, message = _ready(status)
    assert (ok, reason) == ("False", "Unschedulable")
    assert NO_ROOM in message
    assert "the progress deadline of Deployment shop-web has passed" in message
    assert _cond(status, ConditionType.STALLED) == ("True", "ProgressDeadlineExceeded")
    assert _cond(status, ConditionType.RECONCILING)[0] == "False"
    assert kstatus(3, status) == "Failed"


def test_a_deadline_with_no_other_cause_is_the_reason() -> None:
    status = _stuck(DEADLINE)
    ok, reason, message = _ready(status)
    assert (ok, reason) == ("False", "ProgressDeadlineExceeded")
    assert "timed out progressing" in message
    assert "kubectl describe pods -l wharf.dev/app=shop,wharf.dev/process-type=web" in message
    assert _cond(status, ConditionType.STALLED) == ("True", "ProgressDeadlineExceeded")
    assert kstatus(3, status) == "Failed"


def test_pull_failures_and_crash_loops_keep_their_precedence() -> None:
    # S14: the kubelet's cause says more than the deadline it led to.
    assert _cond(_stuck(FORBIDDEN, DEADLINE, problems=[PULL]), ConditionType.READY) == ("False", "ImageNotFound")
    crashing = _stuck(UNSCHEDULABLE, DEADLINE, problems=[CRASH])
    assert _cond(crashing, ConditionType.READY) == ("False", "CrashLoopBackOff")
    assert _cond(crashing, ConditionType.RECONCILING) == ("True", "CrashLoopBackOff")


def test_a_word_about_a_process_with_all_its_instances_is_no_cause() -> None:
    # A ReplicaFailure the controllers have not cleared yet, about a process that has all it asked for.
    running = _run(
        resolution=Resolution(IMAGE),
        rendered=render_ok(),
        observation=Observation(_obs().processes, [], [FORBIDDEN, DEADLINE]),
    )
    assert _cond(running, ConditionType.READY) == ("True", "Running")
    worker = RolloutProblem(Reason.INSTANCES_FORBIDDEN, "worker", "Deployment shop-worker", QUOTA_MESSAGE)
    rolling = _run(
        resolution=Resolution(IMAGE),
        rendered=render_ok(),
        observation=Observation(_obs(available=1, rolled_out=False).processes, [], [worker]),
    )
    assert _cond(rolling, ConditionType.READY) == ("False", "Starting")


def test_a_refused_app_heals_when_the_instances_come_up() -> None:
    stalled = _stuck(FORBIDDEN)
    healed = _running(previous=stalled, now=T1)
    assert _cond(healed, ConditionType.READY) == ("True", "Running")
    assert _cond(healed, ConditionType.STALLED)[0] == "False"
    assert kstatus(3, healed) == "Current"
