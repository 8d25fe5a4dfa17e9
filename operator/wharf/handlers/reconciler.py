"""One App's reconcile, as one pipeline: read, resolve, render, apply, observe; then one wrapper reports.

Each step returns its result or raises one NotReady (reason, message, transient); `reconcile` turns the outcome into
the status (patched only when it changes), the Events (on transitions only) and whether to retry (the work queue's
backoff). Everything is read from the watch-fed caches (handlers/cache.py); the apiserver is asked only to write
what differs from what wharf last applied (a hash on each object), to read the Secrets an App names, and to look
once at a name wharf has not seen yet before taking it (S17: nothing adopted).

The registry is asked only when the App has no resolution for its image reference and restage token yet (S13:
restart and scale never re-resolve); when it fails, the last good resolution keeps the running instances as they
are (S14).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from pydantic import ValidationError

from wharf.api.app import App, AppSpec, AppStatus, ResolvedImage
from wharf.api.conditions import ConditionType, Reason
from wharf.api.image import ImageFacts
from wharf.config import Settings
from wharf.handlers import metrics
from wharf.handlers.cache import SECRETS_KEY, Caches, Key, Written, owned_by, strip_app, strip_owned
from wharf.kube import Kube, KubeError, NotFoundError
from wharf.kube.merge_patch import merge_patch
from wharf.registry import (
    Credentials,
    InvalidReference,
    RegistryError,
    Unauthorized,
    credentials_from_dockerconfigjson,
    parse_reference,
)
from wharf.render import Rendered, RenderError, owned_kinds, render
from wharf.render.names import APPLIED_HASH_ANNOTATION, derived_secret_names
from wharf.render.ownership import drift, stamped, take_over
from wharf.status.compute import Blocked, Observation, Resolution, compute
from wharf.status.conditions import find
from wharf.status.events import EventRecord, transitions
from wharf.status.observe import DRIFT_KEY, observe
from wharf.status.outcome import NotReady, apply_refused, name_conflict, registry_reason

log = logging.getLogger(__name__)
T = TypeVar("T")


class AppGoneError(Exception):
    """The App no longer exists (the apiserver said so): nothing to apply, nothing to report to."""


class Resolver(Protocol):
    """What the reconcile needs of the registry client (tests of the renderers need none of it)."""

    async def resolve(
        self, reference: str, credentials: Credentials | None = None, *, fresh: bool = False
    ) -> ImageFacts: ...


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Memo:
    """What the reconciler keeps of one App between runs; dropped when the App is gone."""

    uid: str
    written: Written = field(default_factory=Written)
    secrets: dict[str, str] = field(default_factory=dict)  # derived Secret -> hash it carries (applied or seen)
    secrets_looked_up: bool = False  # the derived Secrets the running pods use were looked for once since start


@dataclass
class Run:
    """What one reconcile has learnt so far: what the wrapper reports from."""

    app: App
    previous: AppStatus
    resolution: Resolution | None = None
    rendered: Rendered | None = None
    observation: Observation | None = None


def _no_route_conflict(app: App) -> str | None:
    """Without the cross-namespace index (in-process tests): every route is the App's own."""
    return None


async def _all(steps: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run `steps` together and wait for all of them; the first failure (in order) is raised once every step has
    ended, so no write is left running unseen."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        resolver: Resolver,
        settings: Settings,
        caches: Caches,
        route_conflict: Callable[[App], str | None] = _no_route_conflict,
    ) -> None:
        self._kube = kube
        self._resolver = resolver
        self._settings = settings
        self._caches = caches
        self._route_conflict = route_conflict  # S19: handlers.routes.RouteOwnership.conflict
        self._memos: dict[Key, Memo] = {}
        self._ready: dict[Key, str] = {}  # Ready status per App, for the wharf_apps gauge

    # -- bookkeeping ---------------------------------------------------------------------------------------------
    def tracked(self) -> int:
        """Apps the reconciler holds state for (0 once all are deleted: nothing per App outlives it)."""
        return len(self._memos.keys() | self._ready.keys())

    def forget(self, key: Key) -> None:
        self._memos.pop(key, None)
        self._ready.pop(key, None)
        self._count_ready()

    def _count_ready(self) -> None:
        for state in ("True", "False", "Unknown"):
            metrics.APPS.labels(ready=state).set(sum(1 for s in self._ready.values() if s == state))

    async def _gone(self, key: Key, uid: str) -> bool:
        """After a 404: one look at the App itself. Gone, or replaced by another App of the same name (whose own
        events bring it)? An apiserver that cannot answer now says nothing: not gone."""
        try:
            found = await self._kube.get_app(*key)
        except KubeError:
            return False
        return found is None or (found.get("metadata") or {}).get("uid") != uid

    def _bury(self, key: Key, uid: str) -> None:
        """The App is gone while the cache still holds it: stop for good, and keep nothing of it."""
        log.info("App %s/%s is gone (the cache had not seen it go): forgotten", *key)
        self._caches.bury(key, uid)
        self.forget(key)

    def _memo(self, key: Key, uid: str) -> Memo:
        memo = self._memos.get(key)
        if memo is None or memo.uid != uid:  # a new App of the same name: nothing of the old one applies
            memo = self._memos[key] = Memo(uid)
        return memo

    # -- the wrapper -------------------------------------------------------------------------------------------
    async def reconcile(self, key: Key) -> bool:
        """Reconcile the App `key` from the caches. Returns True when it should run again after a backoff."""
        memo = self._memos.get(key)
        cached = self._caches.app(key)
        body = memo.written.app_view(cached) if memo is not None and cached is not None else cached
        if body is None:
            self.forget(key)  # deleted: owner references make the garbage collector remove what it owned (S15)
            return False
        if body["metadata"].get("deletionTimestamp"):
            # Being deleted: the garbage collector removes what the App owns (in foreground deletion, before the
            # App goes); applying now would create it again.
            return False
        started = time.monotonic()
        result = "error"
        uid = body["metadata"].get("uid", "")
        try:
            retry, result = await self._reconcile(body)
            return retry
        except AppGoneError:
            self._bury(key, uid)
            result = "gone"
            return False
        except NotFoundError as error:
            # The App's status (or, in a deleted namespace, anything): gone for good, or the apiserver's moment.
            if await self._gone(key, uid):
                self._bury(key, uid)
                result = "gone"
                return False
            log.warning("reconciling App %s/%s: %s (retrying)", *key, error)
            return True
        except KubeError as error:
            # The apiserver or the network (a conflict, a timeout, an outage): retried with backoff.
            log.warning("reconciling App %s/%s: %s (retrying)", *key, error)
            return True
        finally:
            metrics.RECONCILES.labels(result=result).inc()
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)

    async def _reconcile(self, body: dict[str, Any]) -> tuple[bool, str]:
        run = Run(app=_stub(body), previous=AppStatus.model_validate(body.get("status") or {}))
        try:
            await self._steps(body, run)
        except NotReady as stop:
            if stop.transient and stop.resolution is None:
                log.info("App %s/%s waits: %s", run.app.namespace, run.app.name, stop.message)
                return True, "waiting"
            if stop.resolution is not None:
                run.resolution = stop.resolution
                await self._report(run, None)
                return stop.transient, "failed"
            await self._report(run, Blocked(stop.reason, stop.message))
            return False, "invalid" if stop.reason in (Reason.INVALID_SPEC, Reason.INVALID_REFERENCE) else "blocked"
        await self._report(run, None)
        assert run.resolution is not None
        failed = run.resolution.failed
        return failed and run.resolution.transient, "failed" if failed else "ok"

    # -- the steps ---------------------------------------------------------------------------------------------
    async def _steps(self, body: dict[str, Any], run: Run) -> None:
        run.app = _parse(body)
        reference = _reference(run.app)
        if not run.previous.observed_generation:
            # A new App (no status, or the CRD's default "generation 0 observed"): say "in progress" before the
            # registry round trip, with the conditions that say why.
            run.previous = await self._report(run, None)
        credentials, password, problem = await self._credentials(run.app, reference)
        run.resolution = await self._resolve(run.app, reference, run.previous, credentials, problem)
        run.rendered = await self._render(run.app, run.resolution, password)
        # Without the password (its Secret gone or renamed), applying would drop the pull Secret the running pods
        # pull with, and the next pod that starts could not: what runs stays as it is until the Secret is back (S14).
        converge = run.resolution.error_reason is not Reason.CREDENTIALS_MISSING
        applied: dict[str, str] | None = None
        if converge:
            # The Secrets the running pods use, before the apply changes what they use (see _prune).
            memo = self._memo((run.app.namespace, run.app.name), run.app.uid)
            used = {name for d in self._objects(run.app, memo, "Deployment") for name in d.get(SECRETS_KEY, ())}
            applied = await self._apply(run.app, run.rendered)
            await self._prune(run.app, run.rendered, used)
        run.observation = self._observe(run.app, run.rendered, applied)

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

    async def _resolve(
        self, app: App, reference: str, previous: AppStatus, credentials: Credentials | None, problem: str
    ) -> Resolution:
        """The image to run. Raises NotReady when there is none (nothing resolved yet, and the registry failed)."""
        last_good = previous.image
        current = last_good is not None and last_good.reference == reference and last_good.restage == app.spec.restage
        if problem:
            resolution = Resolution(last_good, Reason.CREDENTIALS_MISSING, problem, transient=False)
        elif current:
            return Resolution(last_good)
        else:
            # S13: a restage asks the registry now (no cached tag), so a tag just pushed again is seen.
            restaging = last_good is not None and last_good.reference == reference
            try:
                facts = await self._resolver.resolve(reference, credentials, fresh=restaging)
            except RegistryError as error:
                log.info("resolving %s for %s/%s failed: %s", reference, app.namespace, app.name, error)
                reason = registry_reason(kind.__name__ for kind in type(error).__mro__)
                resolution = Resolution(last_good, reason, str(error), transient=error.temporary)
            else:
                image = ResolvedImage(**facts.model_dump(), resolved_at=_now(), restage=app.spec.restage)
                return Resolution(image)
        if resolution.image is None:
            raise NotReady(
                resolution.error_reason or Reason.IMAGE_PULL_FAILED,
                resolution.error_message,
                transient=resolution.transient,
                resolution=resolution,
            )
        return resolution

    async def _render(self, app: App, resolution: Resolution, password: str | None) -> Rendered:
        assert resolution.image is not None
        try:
            return render(
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
            raise NotReady(error.reason, error.message, transient=False) from error

    async def _service_credentials(self, app: App) -> dict[str, dict[str, str]]:
        bound: dict[str, dict[str, str]] = {}
        for binding in app.spec.manifest.bindings():
            data = await self._kube.read_secret(app.namespace, binding.name)
            if data is not None:  # a missing Secret is reported by the renderer's warnings
                bound[binding.name] = data
        return bound

    async def _apply(self, app: App, rendered: Rendered) -> dict[str, str]:
        """Apply each rendered object that differs from what wharf last applied; returns the hash of each
        Deployment as rendered. An object the apiserver refuses, or a name taken by someone else's object (S17),
        stops the App."""
        key = (app.namespace, app.name)
        memo = self._memo(key, app.uid)
        # Every name is checked before anything is written (nothing half-made); the checks, then the writes, go
        # out together: one App's round trips, not one per object, decide how fast a new App gets its Deployment.
        lives = await _all([self._live(app, memo, obj["kind"], obj["metadata"]["name"]) for obj in rendered.objects])
        for obj, live in zip(rendered.objects, lives, strict=True):
            if live is not None:
                _check_owner(app, obj["kind"], obj["metadata"]["name"], live)
        plan = [(stamped(obj), live) for obj, live in zip(rendered.objects, lives, strict=True)]
        # Secrets first: a pod that starts before the Secret it mounts exists waits for it.
        for first in (True, False):
            await _all(
                [
                    self._apply_one(app, memo, *stamp, live)
                    for stamp, live in plan
                    if (stamp[0]["kind"] == "Secret") == first
                ]
            )
        return {body["metadata"]["name"]: digest for (body, digest), _ in plan if body["kind"] == "Deployment"}

    async def _apply_one(
        self, app: App, memo: Memo, body: dict[str, Any], digest: str, live: dict[str, Any] | None
    ) -> None:
        """Apply one rendered object unless it carries the hash of what it renders to and nobody changed it."""
        key = (app.namespace, app.name)
        kind, name = body["kind"], body["metadata"]["name"]
        drifted = live is not None and bool(live.get(DRIFT_KEY))
        if live is not None and _applied_hash(live) == digest and not drifted:
            return
        if drifted:
            await self._take_over(app, body["apiVersion"], kind, name)
        try:
            written = await self._kube.apply(body)
        except KubeError as error:
            if isinstance(error, NotFoundError) and await self._gone(key, app.uid):
                raise AppGoneError from error  # the App and its namespace deleted: nothing to report to
            if not error.refused:
                raise  # the apiserver or the network: retried
            raise NotReady(
                Reason.APPLY_REFUSED, apply_refused(kind, name, error.status, error.detail), transient=False
            ) from error
        if kind == "Secret":
            memo.secrets[name] = digest
        else:
            memo.written.objects[(kind, name)] = strip_owned(written)
            memo.written.deleted.discard((kind, name))

    async def _live(self, app: App, memo: Memo, kind: str, name: str) -> dict[str, Any] | None:
        """The object of that name as wharf knows it: from the caches (a derived Secret: from what wharf applied);
        an object not known yet is looked at once (new, or someone else's: S17)."""
        if kind == "Secret" and name in memo.secrets:
            applied = {APPLIED_HASH_ANNOTATION: memo.secrets[name]}
            return {"metadata": {"annotations": applied, "ownerReferences": [{"uid": app.uid}]}}
        if kind != "Secret":
            known = {o["metadata"]["name"]: o for o in self._objects(app, memo, kind)}
            if name in known and owned_by(known[name], app.uid):
                return known[name]
            # Not known, or someone else's: S17's verdict is the apiserver's, not the cache's (the cache may still
            # hold the object of an earlier App of this name, in a namespace deleted and made again).
        api_version = _API_VERSIONS[kind]
        found = await self._kube.get(api_version, kind, app.namespace, name)
        if found is None:
            return None
        live = strip_owned(found)
        if kind == "Secret" and owned_by(live, app.uid):
            memo.secrets[name] = _applied_hash(live) or ""
        return live

    async def _take_over(self, app: App, api_version: str, kind: str, name: str) -> None:
        """S17: fields another writer added to (or took over in) the pod template become wharf's, so the apply
        that follows removes them (or puts wharf's values back)."""
        found = await self._kube.get(api_version, kind, app.namespace, name)
        if found is None:
            return
        meta = found["metadata"]
        drifted = drift(meta.get("managedFields") or [])
        if not drifted:
            return
        managed = take_over(meta.get("managedFields") or [], drifted, api_version)
        await self._kube.put_managed_fields(api_version, kind, app.namespace, name, managed, meta["resourceVersion"])
        others = sorted({e.get("manager", "") for e in meta.get("managedFields") or []} - {"wharf"})
        log.info("%s %s/%s: removing what other writers (%s) changed in it", kind, app.namespace, name, others)

    def _objects(self, app: App, memo: Memo | None, kind: str) -> list[dict[str, Any]]:
        cached = self._caches.objects(kind, (app.namespace, app.name))
        return memo.written.objects_view(kind, cached) if memo is not None else cached

    async def _prune(self, app: App, rendered: Rendered, used: set[str]) -> None:
        """Delete what the App owns and no longer asks for: a process type, the routes, a derived Secret. A derived
        Secret wharf has not applied since it started is looked for only when the pods used it (`used`): wharf
        never lists Secrets, and a GET of each derived name of every App after each restart would be most of its
        requests."""
        memo = self._memo((app.namespace, app.name), app.uid)
        wanted = {(obj["kind"], obj["metadata"]["name"]) for obj in rendered.objects}
        for api_version, kind in owned_kinds(self._settings):
            for obj in self._objects(app, memo, kind):
                name = obj["metadata"]["name"]
                if owned_by(obj, app.uid) and (kind, name) not in wanted:
                    await self._kube.delete(api_version, kind, app.namespace, name)
                    memo.written.objects.pop((kind, name), None)
                    memo.written.deleted.add((kind, name))
        for name in derived_secret_names(app):
            if ("Secret", name) in wanted:
                continue
            if name in memo.secrets:
                await self._kube.delete("v1", "Secret", app.namespace, name)
                del memo.secrets[name]
            elif not memo.secrets_looked_up and name in used:
                # Since start: one made before, that the App no longer asks for (its pods still use it).
                secret = await self._kube.get("v1", "Secret", app.namespace, name)
                if secret is not None and owned_by(strip_owned(secret), app.uid):
                    await self._kube.delete("v1", "Secret", app.namespace, name)
        memo.secrets_looked_up = True

    def _observe(self, app: App, rendered: Rendered, applied: dict[str, str] | None) -> Observation:
        key = (app.namespace, app.name)
        deployments = self._objects(app, self._memos.get(key), "Deployment")
        return observe(deployments, self._caches.pods_of(key), rendered.processes, applied)

    # -- reporting ---------------------------------------------------------------------------------------------
    async def _report(self, run: Run, blocked: Blocked | None) -> AppStatus:
        app, previous = run.app, run.previous
        status = compute(
            app,
            previous,
            now=_now(),
            resolution=run.resolution,
            rendered=run.rendered,
            blocked=blocked,
            observation=run.observation,
        )
        # What is stored (exclude_unset: not the model's defaults), so the patch also deletes what no longer applies.
        before = previous.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)
        patch = merge_patch(before, status.model_dump(mode="json", by_alias=True, exclude_none=True))
        key = (app.namespace, app.name)
        if patch:
            written = await self._kube.patch_app_status(app.namespace, app.name, patch)
            if written:
                self._memo(key, app.uid).written.app = strip_app(written)
        ready = find(status.conditions, ConditionType.READY)
        self._ready[key] = ready.status if ready else "Unknown"
        self._count_ready()
        for event in transitions(previous, status):
            await self._event(app, event)
        return status

    async def _event(self, app: App, event: EventRecord) -> None:
        if event.pull_failure:
            metrics.PULL_FAILURES.labels(reason=event.reason).inc()
        try:
            await self._kube.create_event(app.namespace, app.name, app.uid, event.type, event.reason, event.message)
        except KubeError as error:
            log.warning("could not post event %s for %s/%s: %s", event.reason, app.namespace, app.name, error)


_API_VERSIONS = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "Secret": "v1",
    "Ingress": "networking.k8s.io/v1",
    "HTTPRoute": "gateway.networking.k8s.io/v1",
}


def _applied_hash(obj: dict[str, Any]) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(APPLIED_HASH_ANNOTATION)


def _check_owner(app: App, kind: str, name: str, live: dict[str, Any]) -> None:
    """S17: only what carries this App's owner reference is wharf's to change."""
    if owned_by(live, app.uid):
        return
    owners = (live.get("metadata") or {}).get("ownerReferences") or []
    earlier = next((o for o in owners if o.get("kind") == "App" and o.get("name") == app.name), None)
    if earlier is not None:
        # An earlier App of this name, deleted: the garbage collector removes what it owned, soon.
        raise NotReady(
            Reason.NAME_CONFLICT,
            f"the {kind} {name} of an earlier App {app.name} is still being deleted",
            transient=True,
        )
    owner = next((f"{o.get('kind')} {o.get('name')}" for o in owners if o.get("controller", True)), None)
    raise NotReady(Reason.NAME_CONFLICT, name_conflict(kind, name, app.name, owner), transient=False)


def _stub(body: dict[str, Any]) -> App:
    """An App to speak of when its own spec does not parse (the status needs an App)."""
    meta = body["metadata"]
    return App(
        name=meta["name"],
        namespace=meta.get("namespace", "default"),
        uid=meta.get("uid", ""),
        generation=meta.get("generation", 1),
        spec=AppSpec.model_construct(docker_image=""),
    )


def _parse(body: dict[str, Any]) -> App:
    try:
        return App.from_resource(body)
    except ValidationError as error:
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise NotReady(Reason.INVALID_SPEC, f"invalid App: {message}", transient=False) from error


def _reference(app: App) -> str:
    try:
        return str(parse_reference(app.spec.image))
    except InvalidReference as error:
        raise NotReady(Reason.INVALID_REFERENCE, str(error), transient=False) from error  # S3: nothing created
