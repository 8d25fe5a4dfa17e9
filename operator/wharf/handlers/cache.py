"""What the reconcile reads instead of asking the apiserver: watch-fed indexes (kopf indexes, filled before any
handler runs) of the Apps and of what they own, each object stripped to the fields the reconcile reads, and the
objects as wharf's own last writes returned them until the watch catches up (client-go's mutation cache).

Stripped: no managedFields, no pod template. A Deployment keeps one derived flag instead of its managedFields
(observe.DRIFT_KEY: another writer changed its pod template, S17).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wharf.config import SHARD_LABEL
from wharf.render.names import APP_LABEL, APPLIED_HASH_ANNOTATION, PROCESS_LABEL
from wharf.render.ownership import drift
from wharf.status.observe import DRIFT_KEY

Key = tuple[str, str]  # (namespace, App name)
Index = Mapping[Key, Iterable[dict[str, Any]]]  # a kopf.Index, or a dict in tests
_DEPLOYMENT_CONDITIONS = ("ReplicaFailure", "Progressing")
SECRETS_KEY = "wharf.dev/secrets"  # the Secrets a cached Deployment's pod template refers to


def _secret_names(node: Any) -> set[str]:
    """The names of the Secrets a pod template refers to (pull secrets, volumes, environment)."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _secret_names(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("secretKeyRef", "secretRef") and isinstance(value, dict) and value.get("name"):
                found.add(value["name"])
            elif key == "secret" and isinstance(value, dict) and value.get("secretName"):
                found.add(value["secretName"])
            elif key == "imagePullSecrets" and isinstance(value, list):
                found |= {ref["name"] for ref in value if isinstance(ref, dict) and ref.get("name")}
            else:
                found |= _secret_names(value)
    return found


def app_key(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


def owner_key(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return meta.get("namespace", ""), (meta.get("labels") or {}).get(APP_LABEL, "")


def _meta(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    kept: dict[str, Any] = {
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if "generation" in meta:
        kept["generation"] = meta["generation"]
    if meta.get("deletionTimestamp"):
        kept["deletionTimestamp"] = meta["deletionTimestamp"]
    if meta.get("uid"):
        kept["uid"] = meta["uid"]
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k in (APP_LABEL, PROCESS_LABEL, SHARD_LABEL)}
    if labels:
        kept["labels"] = labels
    applied = (meta.get("annotations") or {}).get(APPLIED_HASH_ANNOTATION)
    if applied:
        kept["annotations"] = {APPLIED_HASH_ANNOTATION: applied}
    owners = [
        {"kind": ref.get("kind", ""), "name": ref.get("name", ""), "uid": ref.get("uid", "")}
        for ref in meta.get("ownerReferences") or []
    ]
    if owners:
        kept["ownerReferences"] = owners
    return kept


def strip_app(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "metadata": _meta(body),
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


def strip_owned(body: Mapping[str, Any]) -> dict[str, Any]:
    """A Deployment, Service, Secret, Ingress or HTTPRoute wharf may own."""
    kept: dict[str, Any] = {"kind": body.get("kind", ""), "metadata": _meta(body)}
    if body.get("kind") != "Deployment":
        return kept
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    kept["spec"] = {"replicas": spec.get("replicas")}
    kept["status"] = {
        **{
            k: status[k]
            for k in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
            if k in status
        },
        "conditions": [
            {k: c.get(k, "") for k in ("type", "status", "reason", "message")}
            for c in status.get("conditions") or []
            if c.get("type") in _DEPLOYMENT_CONDITIONS
        ],
    }
    if drift((body.get("metadata") or {}).get("managedFields") or []):
        kept[DRIFT_KEY] = True
    secrets = _secret_names(spec.get("template") or {})
    if secrets:
        kept[SECRETS_KEY] = sorted(secrets)
    return kept


def strip_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    status = body.get("status") or {}

    def containers(key: str) -> list[dict[str, Any]]:
        return [
            {"name": c.get("name", ""), "state": {"waiting": (c.get("state") or {}).get("waiting") or {}}}
            for c in status.get(key) or []
            if (c.get("state") or {}).get("waiting")
        ]

    return {
        "metadata": _meta(body),
        "spec": {"nodeName": (body.get("spec") or {}).get("nodeName")},
        "status": {
            "phase": status.get("phase"),
            "conditions": [
                {k: c.get(k, "") for k in ("type", "status", "reason", "message")}
                for c in status.get("conditions") or []
                if c.get("type") == "PodScheduled"
            ],
            "initContainerStatuses": containers("initContainerStatuses"),
            "containerStatuses": containers("containerStatuses"),
        },
    }


def newer(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """`a` is a later version of the object than `b` (resourceVersions compared as etcd writes them, integers;
    one that is not an integer is never newer)."""
    try:
        return int(a["metadata"]["resourceVersion"]) > int(b["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return False


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


@dataclass
class Written:
    """One App's objects as wharf's last writes returned them (or deleted them), until the watch has caught up."""

    app: dict[str, Any] | None = None
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (kind, name) -> object
    deleted: set[tuple[str, str]] = field(default_factory=set)

    def app_view(self, cached: dict[str, Any] | None) -> dict[str, Any] | None:
        if self.app is not None and cached is not None and not newer(self.app, cached):
            self.app = None  # the cache has it (or something later)
        return self.app if self.app is not None else cached

    def objects_view(self, kind: str, cached: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        found = {obj["metadata"]["name"]: obj for obj in cached}
        for name in [n for k, n in self.deleted if k == kind]:
            if name in found:
                del found[name]
            else:
                self.deleted.discard((kind, name))  # the watch has seen it go
        for (written_kind, name), obj in list(self.objects.items()):
            if written_kind != kind:
                continue
            if name in found and not newer(obj, found[name]):
                del self.objects[(kind, name)]
            else:
                found[name] = obj
        return list(found.values())

    @property
    def empty(self) -> bool:
        return self.app is None and not self.objects and not self.deleted


def uid_of(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("uid") or "")


@dataclass(frozen=True)
class Caches:
    """The indexes: Apps by key, the objects wharf may own by kind and App key, pods by App key.

    An App the apiserver says is gone, while its index still holds it, is buried (by uid) and ignored, with what its
    key owns: kopf removes an object from its index only on a DELETED event, and none comes for an App deleted while
    no watch saw it (its namespace deleted after kopf stopped watching it; a re-listing after the watch could not
    resume). The tombstone goes when the index drops the key or holds another App under it."""

    apps: Index
    owned: Mapping[str, Index]  # by kind (Deployment, Service, Ingress, HTTPRoute)
    pods: Index
    buried: dict[Key, str] = field(default_factory=dict)  # App key -> uid of the App known to be gone

    def bury(self, key: Key, uid: str) -> None:
        self.buried[key] = uid

    def gone(self, key: Key) -> bool:
        """The index holds, under `key`, only an App known to be gone (clears the tombstone once it does not)."""
        uid = self.buried.get(key)
        if uid is None:
            return False
        cached = next(iter(self.apps.get(key, ())), None)
        if cached is not None and uid_of(cached) == uid:
            return True
        del self.buried[key]
        return False

    def app(self, key: Key) -> dict[str, Any] | None:
        if self.gone(key):
            return None
        return next(iter(self.apps.get(key, ())), None)

    def objects(self, kind: str, key: Key) -> list[dict[str, Any]]:
        index = self.owned.get(kind)
        return list(index.get(key, ())) if index is not None and not self.gone(key) else []

    def pods_of(self, key: Key) -> list[dict[str, Any]]:
        return [] if self.gone(key) else list(self.pods.get(key, ()))

    def live_keys(self) -> list[Key]:
        """The Apps not known to be gone (and, on the way, the tombstones whose App the index no longer holds)."""
        for key in list(self.buried):
            self.gone(key)
        return [key for key in list(self.apps.keys()) if not self.gone(key)]
