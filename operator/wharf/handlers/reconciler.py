"""One App's reconcile: parse, resolve (only when needed), render, apply, observe, report.

Triggered by kopf for App changes and by the App's pods and Deployments (pull failures within seconds, drift
correction). Runs one at a time per App. The registry is asked only when the App has no resolution for its image
reference and restage token yet (S13: restart and scale never re-resolve); when it fails, the last good resolution
keeps the running instances as they are (S14).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from wharf.api.app import App, AppSpec, AppStatus, ResolvedImage
from wharf.api.conditions import ConditionType, Reason
from wharf.api.image import ImageFacts
from wharf.config import Settings
from wharf.handlers import metrics
from wharf.kube import Kube, KubeError, NotFoundError
from wharf.kube.merge_patch import merge_patch
from wharf.registry import (
    Credentials,
    Denied,
    InvalidReference,
    NotFound,
    RateLimited,
    RegistryError,
    Unauthorized,
    Unavailable,
    Unsupported,
    credentials_from_dockerconfigjson,
    parse_reference,
)
from wharf.render import Rendered, RenderError, owned_kinds, render
from wharf.render.names import APP_LABEL, PROCESS_LABEL, derived_secret_names
from wharf.status.compute import Blocked, Observation, ProcessObservation, Resolution, compute
from wharf.status.conditions import find
from wharf.status.pulls import FAILED_TO_CREATE, problems
from wharf.status.rollout import rollout_problems

log = logging.getLogger(__name__)

_REASONS: tuple[tuple[type[RegistryError], Reason], ...] = (
    (InvalidReference, Reason.INVALID_REFERENCE),
    (NotFound, Reason.IMAGE_NOT_FOUND),
    (Unauthorized, Reason.UNAUTHORIZED),
    (Denied, Reason.DENIED),
    (RateLimited, Reason.RATE_LIMITED),
    (Unavailable, Reason.REGISTRY_UNAVAILABLE),
    (Unsupported, Reason.UNSUPPORTED_REGISTRY),
)
TRANSIENT_RETRY_SECONDS = 10.0


class Resolver(Protocol):
    """What the reconcile needs of the registry client (tests of the renderers need none of it)."""

    async def resolve(
        self, reference: str, credentials: Credentials | None = None, *, fresh: bool = False
    ) -> ImageFacts: ...


class RetryLaterError(Exception):
    """The reconcile should run again after `delay` seconds (kopf.TemporaryError in the kopf layer)."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


@dataclass(frozen=True)
class EventRecord:
    type: str  # Normal | Warning
    reason: str
    message: str


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _registry_reason(error: RegistryError) -> Reason:
    return next((reason for kind, reason in _REASONS if isinstance(error, kind)), Reason.IMAGE_PULL_FAILED)


def _observe(deployments: list[dict[str, Any]], pods: list[dict[str, Any]], rendered: Rendered) -> Observation:
    processes = []
    current = []  # the Deployments of the processes the App asks for (one of a removed type is being pruned)
    for plan in rendered.processes:
        found = next((d for d in deployments if d["metadata"].get("labels", {}).get(PROCESS_LABEL) == plan.type), None)
        if found is not None:
            current.append(found)
        status = (found or {}).get("status") or {}
        generation = (found or {}).get("metadata", {}).get("generation", 0)
        updated = status.get("updatedReplicas", 0)
        processes.append(
            ProcessObservation(
                type=plan.type,
                desired=plan.replicas,
                ready=status.get("readyReplicas", 0),
                available=status.get("availableReplicas", 0),
                updated=updated,
                rolled_out=found is not None
                and status.get("observedGeneration", 0) >= generation
                and (found.get("spec") or {}).get("replicas") == plan.replicas
                and updated >= plan.replicas
                and status.get("replicas", 0) <= plan.replicas,
            )
        )
    return Observation(processes=processes, problems=problems(pods), rollout=rollout_problems(current, pods))


def _no_route_conflict(app: App) -> str | None:
    return None


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        resolver: Resolver,
        settings: Settings,
        route_conflict: Callable[[App], str | None] = _no_route_conflict,
    ) -> None:
        self._kube = kube
        self._resolver = resolver
        self._settings = settings
        self._route_conflict = route_conflict  # S19: handlers.routes.RouteOwnership.conflict
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._queued: set[tuple[str, str]] = set()
        self._ready: dict[tuple[str, str], str] = {}  # Ready status per App, for the wharf_apps gauge

    async def refresh(self, namespace: str, name: str) -> None:
        """Reconcile on a pod or Deployment change; bursts of events coalesce into one run."""
        key = (namespace, name)
        if key in self._queued:
            return
        self._queued.add(key)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            self._queued.discard(key)
            body = await self._kube.get_app(namespace, name)
            if body is None:
                # Deleted: Apps carry no finalizer, so kopf calls no delete handler; the first refresh after the
                # deletion (its pods going, or the safety net) finds it gone.
                self.forget(namespace, name)
                return
            # The App's own kopf handler owns retries; events only refresh.
            with contextlib.suppress(RetryLaterError):
                await self._reconcile(body)

    async def reconcile(self, body: dict[str, Any]) -> None:
        key = (body["metadata"].get("namespace", ""), body["metadata"]["name"])
        async with self._locks.setdefault(key, asyncio.Lock()):
            fresh = await self._kube.get_app(*key)  # kopf's body may be older than a status we just wrote
            if fresh is None:
                self.forget(*key)
                return
            await self._reconcile(fresh)

    def known(self) -> list[tuple[str, str]]:
        """(namespace, name) of every App reconciled and not deleted since."""
        return list(self._ready)

    def forget(self, namespace: str, name: str) -> None:
        self._locks.pop((namespace, name), None)
        self._ready.pop((namespace, name), None)
        self._count_ready()

    def _count_ready(self) -> None:
        for state in ("True", "False", "Unknown"):
            metrics.APPS.labels(ready=state).set(sum(1 for s in self._ready.values() if s == state))

    async def _reconcile(self, body: dict[str, Any]) -> None:
        started = time.monotonic()
        result = "error"
        try:
            result = await self._reconcile_once(body)
        finally:
            metrics.RECONCILES.labels(result=result).inc()
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)

    async def _reconcile_once(self, body: dict[str, Any]) -> str:
        meta = body["metadata"]
        namespace, name = meta.get("namespace", "default"), meta["name"]
        if meta.get("deletionTimestamp"):
            # Being deleted: the garbage collector removes what the App owns (in foreground deletion, before the
            # App goes); applying now would create it again.
            return "deleting"
        previous = AppStatus.model_validate(body.get("status") or {})
        try:
            app = App.from_resource(body)
        except ValidationError as error:
            message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            stub = App(
                name=name,
                namespace=namespace,
                uid=meta.get("uid", ""),
                generation=meta.get("generation", 1),
                spec=_placeholder_spec(),
            )
            await self._report(
                stub, previous, Blocked(Reason.INVALID_SPEC, f"invalid App: {message}"), None, None, None
            )
            return "invalid"

        try:
            reference = str(parse_reference(app.spec.image))
        except InvalidReference as error:
            # S3: refused before anything is created.
            await self._report(app, previous, Blocked(Reason.INVALID_REFERENCE, str(error)), None, None, None)
            return "invalid"

        if previous.observed_generation is None:
            # A new App: say "in progress" before the registry round trip. With no status at all, kstatus (Flux's
            # `wait`, kubectl wait) would count the App as current before wharf has looked at it.
            previous = await self._report(app, previous, None, None, None, None)
        resolution, password = await self._resolve(app, reference, previous)
        if resolution.image is None:
            await self._report(app, previous, None, resolution, None, None)
            _retry_if_transient(resolution)
            return "failed"

        try:
            rendered = render(
                app,
                resolution.image,
                self._settings,
                registry_password=password,
                service_credentials=await self._service_credentials(app),
                restaged=resolution.image.restage,
                now=dt.datetime.now(dt.UTC),
                route_conflict=self._route_conflict(app),
            )
        except RenderError as error:
            await self._report(app, previous, Blocked(error.reason, error.message), resolution, None, None)
            return "blocked"

        # Without the password (its Secret gone or renamed), applying would drop the pull Secret the running pods
        # pull with, and the next pod that starts could not: what runs stays as it is until the Secret is back (S14).
        converge = resolution.error_reason is not Reason.CREDENTIALS_MISSING
        if converge:
            refused = await self._apply(app, rendered)
            if refused is not None:
                await self._report(app, previous, refused, resolution, None, None)
                return "blocked"
        owned = await self._owned(app)  # after the apply: the Deployments' generations are the ones just applied
        if converge:
            await self._prune(app, rendered, owned)
        observation = await self._observation(app, rendered, owned["Deployment"])
        await self._report(app, previous, None, resolution, rendered, observation)
        _retry_if_transient(resolution)
        return "failed" if resolution.failed else "ok"

    async def _credentials(self, app: App, reference: str) -> tuple[Credentials | None, str | None, str]:
        """(credentials for resolving, the App's own password for its pull secret, a problem to report)."""
        username = app.spec.username
        ref = app.spec.docker_password_secret_ref
        if username and ref:
            data = await self._kube.read_secret(app.namespace, ref.name)
            if data is None or ref.key not in data:
                return (
                    None,
                    None,
                    (
                        f"the Secret {ref.name} with key {ref.key} (the registry password for {username}) "
                        "does not exist: create it in the App's namespace"
                    ),
                )
            return Credentials(username, data[ref.key]), data[ref.key], ""
        parsed = parse_reference(reference)
        for secret in app.spec.image_pull_secrets:
            data = await self._kube.read_secret(app.namespace, secret.name) or {}
            # kubernetes.io/dockerconfigjson, or the legacy kubernetes.io/dockercfg the kubelet still reads.
            blob = data.get(".dockerconfigjson", data.get(".dockercfg"))
            if blob is None:
                continue
            try:
                found = credentials_from_dockerconfigjson(blob, parsed.domain, parsed.path)
            except Unauthorized as error:
                return None, None, f"the image pull Secret {secret.name} cannot be read: {error}"
            if found is not None:
                return found, None, ""
        return None, None, ""

    async def _resolve(self, app: App, reference: str, previous: AppStatus) -> tuple[Resolution, str | None]:
        credentials, password, problem = await self._credentials(app, reference)
        last_good = previous.image
        current = last_good is not None and last_good.reference == reference and last_good.restage == app.spec.restage
        if problem:
            return Resolution(last_good, Reason.CREDENTIALS_MISSING, problem, transient=False), password
        if current:
            return Resolution(last_good), password
        # S13: a restage asks the registry now (no cached tag), so a tag just pushed again is seen.
        restaging = last_good is not None and last_good.reference == reference and not current
        try:
            if restaging:
                facts = await self._resolver.resolve(reference, credentials, fresh=True)
            else:
                facts = await self._resolver.resolve(reference, credentials)
        except RegistryError as error:
            reason = _registry_reason(error)
            log.info("resolving %s for %s/%s failed: %s", reference, app.namespace, app.name, error)
            return Resolution(last_good, reason, str(error), transient=error.temporary), password
        image = ResolvedImage(**facts.model_dump(), resolved_at=_now(), restage=app.spec.restage)
        return Resolution(image), password

    async def _service_credentials(self, app: App) -> dict[str, dict[str, str]]:
        bound: dict[str, dict[str, str]] = {}
        for binding in app.spec.manifest.bindings():
            data = await self._kube.read_secret(app.namespace, binding.name)
            if data is not None:  # a missing Secret is reported by the renderer's warnings
                bound[binding.name] = data
        return bound

    async def _apply(self, app: App, rendered: Rendered) -> Blocked | None:
        """Apply what the App asks for. An object the apiserver refuses comes back as the reason the App is
        blocked."""
        for obj in rendered.objects:
            try:
                await self._kube.apply(obj)
            except KubeError as error:
                if not error.refused:
                    raise  # the apiserver or the network: kopf retries
                kind, name = obj["kind"], obj["metadata"]["name"]
                return Blocked(Reason.APPLY_REFUSED, f"the apiserver refused the {kind} {name}: {_fix_for(error)}")
        return None

    async def _owned(self, app: App) -> dict[str, list[dict[str, Any]]]:
        """The objects carrying the App's label, for each listable kind wharf may render (by kind)."""
        owned: dict[str, list[dict[str, Any]]] = {}
        for api_version, kind in owned_kinds(self._settings):
            try:
                owned[kind] = await self._kube.list(api_version, kind, app.namespace, {APP_LABEL: app.name})
            except NotFoundError:  # the cluster does not serve the kind (no Gateway API): there are none
                owned[kind] = []
        return owned

    async def _prune(self, app: App, rendered: Rendered, owned: dict[str, list[dict[str, Any]]]) -> None:
        """Delete what the App owns and no longer asks for: a process type, the routes, a derived Secret."""
        wanted = {(obj["kind"], obj["metadata"]["name"]) for obj in rendered.objects}
        for api_version, kind in owned_kinds(self._settings):
            for obj in owned[kind]:
                name = obj["metadata"]["name"]
                if _owned_by(obj, app) and (kind, name) not in wanted:
                    await self._kube.delete(api_version, kind, app.namespace, name)
        for name in derived_secret_names(app):
            if ("Secret", name) not in wanted:
                secret = await self._kube.get("v1", "Secret", app.namespace, name)
                if secret is not None and _owned_by(secret, app):
                    await self._kube.delete("v1", "Secret", app.namespace, name)

    async def _observation(self, app: App, rendered: Rendered, deployments: list[dict[str, Any]]) -> Observation:
        pods = await self._kube.list("v1", "Pod", app.namespace, {APP_LABEL: app.name})
        return _observe(deployments, pods, rendered)

    async def _report(
        self,
        app: App,
        previous: AppStatus,
        blocked: Blocked | None,
        resolution: Resolution | None,
        rendered: Rendered | None,
        observation: Observation | None,
    ) -> AppStatus:
        status = compute(
            app,
            previous,
            now=_now(),
            resolution=resolution,
            rendered=rendered,
            blocked=blocked,
            observation=observation,
        )
        # What is stored (exclude_unset: not the model's defaults), so the patch also deletes what no longer applies.
        before = previous.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)
        patch = merge_patch(before, status.model_dump(mode="json", by_alias=True, exclude_none=True))
        if patch:
            try:
                await self._kube.patch_app_status(app.namespace, app.name, patch)
            except NotFoundError:
                # Deleted while this reconcile ran (a pod or Deployment event came after the App went): nothing
                # to report on; what it owned goes with it (owner references).
                self.forget(app.namespace, app.name)
                return status
        ready = find(status.conditions, ConditionType.READY)
        self._ready[(app.namespace, app.name)] = ready.status if ready else "Unknown"
        self._count_ready()
        for event in transitions(previous, status):
            await self._event(app, event)
        return status

    async def _event(self, app: App, event: EventRecord) -> None:
        try:
            await self._kube.create_event(app.namespace, app.name, app.uid, event.type, event.reason, event.message)
        except KubeError as error:
            log.warning("could not post event %s for %s/%s: %s", event.reason, app.namespace, app.name, error)


def _fix_for(error: KubeError) -> str:
    """The apiserver's message, and what to change."""
    if error.status == 403:
        return f"{error.detail}; the operator's RBAC must allow this (see docs/install.md)"
    if error.status == 404:
        return f"{error.detail}; the cluster does not serve this kind (is its API or CRD installed?)"
    return f"{error.detail}; change the App so that this object is valid"


def _owned_by(obj: dict[str, Any], app: App) -> bool:
    return any(ref.get("uid") == app.uid for ref in obj["metadata"].get("ownerReferences", []))


def _retry_if_transient(resolution: Resolution) -> None:
    """Outages heal by themselves: kopf retries soon. A missing image or bad credentials need someone: the handler
    finishes, so the fixing edit of the App is handled at once (a kopf retry in progress would hold it back), and
    the periodic safety-net refresh notices fixes made elsewhere (a pushed tag, a corrected Secret)."""
    if resolution.failed and resolution.transient:
        raise RetryLaterError(resolution.error_message, delay=TRANSIENT_RETRY_SECONDS)


def _placeholder_spec() -> AppSpec:
    """A spec for reporting on an App whose own spec does not parse (the status needs an App to speak of)."""
    return AppSpec.model_construct(docker_image="")


def transitions(previous: AppStatus, current: AppStatus) -> list[EventRecord]:
    """Events for meaningful changes only (not for every reconcile)."""
    events: list[EventRecord] = []
    before = find(previous.conditions, ConditionType.READY)
    after = find(current.conditions, ConditionType.READY)
    if current.image and (previous.image is None or previous.image.digest != current.image.digest):
        events.append(
            EventRecord("Normal", "ImageResolved", f"{current.image.reference} resolved to {current.image.digest}")
        )
    if current.port is not None and (current.port != previous.port or current.ports != previous.ports):
        events.append(EventRecord("Normal", "PortChosen", f"routing to port {current.port} of {current.ports}"))
    warned = find(current.conditions, ConditionType.MANIFEST_WARNINGS)
    if current.warnings and current.warnings != previous.warnings and warned is not None:
        events.append(EventRecord("Warning", warned.reason, "; ".join(current.warnings)))
    if after is not None and (before is None or (before.status, before.reason) != (after.status, after.reason)):
        if after.status == "True":
            recovered = before is not None and before.status == "False" and before.reason not in ("Starting", "Pending")
            events.append(EventRecord("Normal", "Recovered" if recovered else after.reason, after.message))
        elif after.status == "False" and after.reason not in ("Starting", "Pending"):
            if after.message.startswith(FAILED_TO_CREATE):
                metrics.PULL_FAILURES.labels(reason=after.reason).inc()
            events.append(EventRecord("Warning", after.reason, after.message))
    # Stalled for a reason Ready does not name (a rollout past its progress deadline while Ready names the cause
    # that held it) is a transition a person must hear of too.
    stalled_before = find(previous.conditions, ConditionType.STALLED)
    stalled = find(current.conditions, ConditionType.STALLED)
    if (
        stalled is not None
        and stalled.status == "True"
        and (after is None or stalled.reason != after.reason)
        and (stalled_before is None or (stalled_before.status, stalled_before.reason) != ("True", stalled.reason))
    ):
        events.append(EventRecord("Warning", stalled.reason, stalled.message))
    return events
