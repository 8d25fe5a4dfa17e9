"""`wharf push`: apply one App per manifest entry (server-side apply, the CLI's own field manager), then follow
each until it is Ready, printing what `cf push` prints: the image resolved, instances starting, their states; a pull
failure at once as `Failed to create container: ...`."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

from wharf.api.conditions import ConditionType, Reason
from wharf.cli import views
from wharf.cli.kube import Kube, KubeError
from wharf.cli.manifests import CLI_FIELD_MANAGER, PASSWORD_KEY, ManifestError, PlannedApp
from wharf.render.names import APP_LABEL, PROCESS_LABEL

POLL_SECONDS = 0.5
# ImageResolved reasons that will not change without a change from the user.
_IMAGE_FAILURES = {
    Reason.INVALID_REFERENCE,
    Reason.UNAUTHORIZED,
    Reason.DENIED,
    Reason.UNSUPPORTED_REGISTRY,
    Reason.IMAGE_NOT_FOUND,
}
# Ready reasons that say the instances cannot get their image: shown at once, as cf shows a staging failure.
_PULL_FAILURES = {
    Reason.IMAGE_PULL_FAILED,
    Reason.IMAGE_NOT_FOUND,
    Reason.IMAGE_PULL_UNAUTHORIZED,
    Reason.INVALID_IMAGE_NAME,
    Reason.CONTAINER_CONFIG_ERROR,
}
_CONTAINER_FAILURE = "Failed to create container"


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C waits until the block is done: an App and its password Secret are applied together or not at all."""
    pending: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    previous = signal.signal(signal.SIGINT, remember)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


def check_names(kube: Kube, planned: list[PlannedApp]) -> None:
    """A derived name already used by another CF app is a collision: refuse before anything is applied."""
    for app in planned:
        existing = kube.get(kube.app_path(app.name))
        if existing is not None and views.cf_name(existing) != app.cf_name:
            raise ManifestError(
                f"{app.cf_name}: its Kubernetes name {app.name} is already used by app {views.cf_name(existing)!r} "
                f"in namespace {kube.namespace}: rename one of them"
            )


def apply_app(kube: Kube, app: PlannedApp, password: str | None, started: bool) -> dict[str, Any]:
    """The password Secret (if any), the App, then the App as the Secret's owner, so deleting the App deletes it."""
    resource = {**app.resource, "metadata": {**app.resource["metadata"], "namespace": kube.namespace}}
    resource["spec"] = {**resource["spec"], "state": "STARTED" if started else "STOPPED"}
    secret: dict[str, Any] | None = None
    if app.password_secret:
        if password is None:
            raise ManifestError(f"{app.cf_name}: set CF_DOCKER_PASSWORD to the registry password")
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": app.password_secret,
                "namespace": kube.namespace,
                "labels": {"app.kubernetes.io/managed-by": CLI_FIELD_MANAGER, APP_LABEL: app.name},
            },
            "type": "Opaque",
            "stringData": {PASSWORD_KEY: password},
        }
        kube.apply(kube.core_path("secrets", app.password_secret), secret, CLI_FIELD_MANAGER)
    applied = kube.apply(kube.app_path(app.name), resource, CLI_FIELD_MANAGER)
    if secret is not None:
        owner = {
            "apiVersion": resource["apiVersion"],
            "kind": "App",
            "name": app.name,
            "uid": applied["metadata"]["uid"],
        }
        secret["metadata"]["ownerReferences"] = [owner]
        kube.apply(kube.core_path("secrets", app.password_secret or ""), secret, CLI_FIELD_MANAGER)
    return applied


@dataclass
class Follow:
    """What has been said about one App while waiting, so each fact is printed once."""

    said: set[str]
    states: dict[int, str]


def web_pods(kube: Kube, name: str) -> list[dict[str, Any]]:
    pods = kube.items(kube.core_path("pods"), f"{APP_LABEL}={name},{PROCESS_LABEL}={views.WEB}")
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def wait_until_ready(kube: Kube, name: str, say: Callable[[str], None], timeout: float) -> tuple[bool, str]:
    """Follow the App until Ready (True, "") or a failure that needs the user (False, message); time out after
    `timeout` seconds (False, message)."""
    follow = Follow(said=set(), states={})
    deadline = time.monotonic() + timeout

    def once(text: str) -> None:
        if text not in follow.said:
            follow.said.add(text)
            say(text)

    while time.monotonic() < deadline:
        app = kube.get(kube.app_path(name))
        if app is None:
            return False, f"App {name} was deleted while starting"
        status = app.get("status") or {}
        resolved = views.condition(app, ConditionType.IMAGE_RESOLVED)
        if views.current(app, resolved):
            if resolved.get("status") == "True":
                image = status.get("image") or {}
                once(
                    f"Image resolved: {image.get('reference', '')}@{image.get('digest', '')}, port {status.get('port')}"
                )
            elif resolved.get("reason") in _IMAGE_FAILURES:
                return False, f"Failed to resolve image: {resolved.get('message', resolved.get('reason'))}"
            elif resolved.get("message"):
                once(f"   {resolved['message']}")
        stalled = views.condition(app, ConditionType.STALLED)
        if views.current(app, stalled) and stalled.get("status") == "True":
            return False, f"{stalled.get('reason')}: {stalled.get('message', '')}"
        for warning in status.get("warnings") or []:
            once(f"Warning: {warning}")
        ready = views.condition(app, ConditionType.READY)
        message = str(ready.get("message", ""))
        pull_failed = ready.get("reason") in _PULL_FAILURES or message.startswith(_CONTAINER_FAILURE)
        if views.current(app, ready) and ready.get("status") == "False" and pull_failed:
            # At once, as cf push reports a failed start; the App keeps retrying, as the kubelet does.
            if not message.startswith(_CONTAINER_FAILURE):
                message = f"{_CONTAINER_FAILURE}: {message}"
            return False, message
        for row in views.instances(web_pods(kube, name)):
            text = f"{row['state']} {row['details']}".strip()
            if follow.states.get(row["index"]) != text:
                follow.states[row["index"]] = text
                say(f"   instance #{row['index']}: {text}")
        if views.current(app, ready) and ready.get("status") == "True":
            return True, ""
        time.sleep(POLL_SECONDS)
    ready = views.condition(kube.get(kube.app_path(name)) or {"metadata": {}}, ConditionType.READY)
    return False, f"Timed out after {int(timeout)}s waiting for the app to start: {ready.get('message', 'no status')}"


def describe_conflict(error: KubeError) -> str:
    if error.status == 409:
        return (
            f"{error}\nAnother field manager (a GitOps tool, kubectl) owns these fields: change them where that "
            "manager's source is, or remove them there first"
        )
    return str(error)
