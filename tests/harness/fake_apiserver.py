"""An in-memory stand-in for the apiserver behind httpx.MockTransport, for fast tests of the reconcile's
orchestration only: which requests it makes, in which order, and when it makes none. It keeps objects by path and
answers GET, DELETE, POST (Events), PATCH (server-side apply as a plain replace of what is sent, JSON merge
patches). It proves nothing about the cluster's behaviour: that stays with the tests on the real control plane.

Its `index(...)` views stand for kopf's watch-fed indexes: by default they see every write at once (`lag()`
freezes them, as a watch that has not delivered yet)."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from harness.merge_patch import apply_merge_patch


@dataclass
class Request:
    method: str
    path: str
    content_type: str
    body: Any


@dataclass
class FakeApiserver:
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # by object path
    requests: list[Request] = field(default_factory=list)
    refuse: dict[str, tuple[int, str]] = field(default_factory=dict)  # object path -> (status, message)
    _version: int = 100
    _frozen: dict[str, dict[str, Any]] | None = None

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url="https://fake-apiserver", transport=httpx.MockTransport(self._handle))

    # -- test-side access ------------------------------------------------------------------------------------
    def put(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as if someone had created it (uid, resourceVersion, generation filled in)."""
        stored = copy.deepcopy(obj)
        meta = stored.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = self._next()
        self.objects[path] = stored
        return stored

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]

    def clear(self) -> None:
        self.requests.clear()

    def lag(self) -> None:
        """Indexes stop seeing writes (a watch not yet delivered) until `catch_up()`."""
        self._frozen = copy.deepcopy(self.objects)

    def catch_up(self) -> None:
        self._frozen = None

    def index(self, plural: str, key: Callable[[dict[str, Any]], Any], strip: Callable[..., Any]) -> Index:
        return Index(self, plural, key, strip)

    def visible(self) -> Mapping[str, dict[str, Any]]:
        return self.objects if self._frozen is None else self._frozen

    # -- the apiserver -----------------------------------------------------------------------------------------
    def _next(self) -> str:
        self._version += 1
        return str(self._version)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        content_type = request.headers.get("content-type", "")
        body = json.loads(request.content) if request.content else None
        self.requests.append(Request(request.method, path, content_type, body))
        if path in self.refuse:
            status, message = self.refuse[path]
            return httpx.Response(status, json={"kind": "Status", "message": message})
        if request.method == "GET":
            found = self.objects.get(path)
            return httpx.Response(200, json=found) if found else _missing(path)
        if request.method == "DELETE":
            return httpx.Response(200, json={}) if self.objects.pop(path, None) else _missing(path)
        if request.method == "POST":
            created = self.put(f"{path}/{uuid.uuid4().hex[:8]}", body)
            return httpx.Response(201, json=created)
        assert request.method == "PATCH", request.method
        if path.endswith("/status"):
            target = self.objects.get(path.removesuffix("/status"))
            if target is None:
                return _missing(path)
            target["status"] = apply_merge_patch(target.get("status") or {}, body["status"])
            target["metadata"]["resourceVersion"] = self._next()
            return httpx.Response(200, json=target)
        if content_type.startswith("application/apply-patch"):
            existing = self.objects.get(path)
            stored = copy.deepcopy(body)
            meta = stored["metadata"]
            if existing is None:
                meta["uid"] = str(uuid.uuid4())
                meta["generation"] = 1
            else:
                meta["uid"] = existing["metadata"]["uid"]
                changed = existing.get("spec") != stored.get("spec")
                meta["generation"] = existing["metadata"].get("generation", 1) + (1 if changed else 0)
                stored["status"] = existing.get("status", {})
                meta["managedFields"] = [
                    e for e in existing["metadata"].get("managedFields", []) if e.get("manager") == "wharf"
                ]
            meta["managedFields"] = meta.get("managedFields") or [
                {"manager": "wharf", "operation": "Apply", "apiVersion": body["apiVersion"], "fieldsV1": {}}
            ]
            meta["resourceVersion"] = self._next()
            self.objects[path] = stored
            return httpx.Response(200, json=stored)
        target = self.objects.get(path)
        if target is None:
            return _missing(path)
        expected = (body.get("metadata") or {}).get("resourceVersion")
        if expected and expected != target["metadata"]["resourceVersion"]:
            return httpx.Response(409, json={"kind": "Status", "message": "the object has been modified"})
        patched = apply_merge_patch(target, body)
        patched["metadata"]["resourceVersion"] = self._next()
        self.objects[path] = patched
        return httpx.Response(200, json=patched)


def _missing(path: str) -> httpx.Response:
    return httpx.Response(404, json={"kind": "Status", "message": f"{path} not found"})


@dataclass
class Index(Mapping[Any, list[Any]]):
    """A kopf index over the fake's objects of one plural: key(object) -> [strip(object), ...]."""

    fake: FakeApiserver
    plural: str
    key: Callable[[dict[str, Any]], Any]
    strip: Callable[..., Any]

    def _entries(self) -> dict[Any, list[Any]]:
        entries: dict[Any, list[Any]] = {}
        for path, obj in self.fake.visible().items():
            if path.rsplit("/", 2)[-2] == self.plural:
                entries.setdefault(self.key(obj), []).append(self.strip(obj))
        return entries

    def __getitem__(self, key: Any) -> list[Any]:
        return self._entries()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._entries())

    def __len__(self) -> int:
        return len(self._entries())


def reconciler_on(fake: FakeApiserver, resolver: Any, settings: Any) -> Any:
    """A wharf Reconciler whose apiserver is `fake` and whose caches are the fake's indexes."""
    from wharf.handlers.cache import Caches, app_key, owner_key, strip_app, strip_owned, strip_pod
    from wharf.handlers.reconciler import Reconciler
    from wharf.kube import Kube

    caches = Caches(
        apps=fake.index("apps", app_key, strip_app),
        owned={
            "Deployment": fake.index("deployments", owner_key, strip_owned),
            "Service": fake.index("services", owner_key, strip_owned),
            "Ingress": fake.index("ingresses", owner_key, strip_owned),
            "HTTPRoute": fake.index("httproutes", owner_key, strip_owned),
        },
        pods=fake.index("pods", owner_key, strip_pod),
    )
    return Reconciler(Kube(fake.client()), resolver, settings, caches)
