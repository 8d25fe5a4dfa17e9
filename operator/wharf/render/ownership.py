"""Which fields of an object wharf owns, from its managedFields, and the hash of what wharf applied. Pure.

S17: what wharf made, it keeps exactly as the App says. Server-side apply removes a field only when the applier
owned it and stops sending it: fields another writer adds to a pod template stay, owned by that writer. So a
Deployment's drift is read from its managedFields: fields under `spec.template` (and the top-level spec fields
wharf renders) that another manager owns and wharf does not. `take_over` moves them into wharf's apply entry;
wharf's next apply then no longer sends them and the apiserver removes them (or puts wharf's value back).
Fields others set beside wharf's elsewhere (`spec.progressDeadlineSeconds`, annotations) are theirs to keep.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from wharf.render.names import APPLIED_HASH_ANNOTATION, FIELD_MANAGER

Fields = dict[str, Any]  # a fieldsV1 trie: {"f:spec": {"f:replicas": {}}, ...}; `{}` is a leaf
# The Deployment spec fields wharf renders besides the template (render/workload.py: deployment()).
DEPLOYMENT_SPEC_FIELDS = ("f:replicas", "f:revisionHistoryLimit", "f:selector", "f:strategy", "f:template")


def applied_hash(obj: Mapping[str, Any]) -> str:
    """A stable hash of a rendered object (without its hash annotation)."""
    body = copy.deepcopy(dict(obj))
    meta = body.get("metadata") or {}
    if APPLIED_HASH_ANNOTATION in (meta.get("annotations") or {}):
        del meta["annotations"][APPLIED_HASH_ANNOTATION]
        if not meta["annotations"]:
            del meta["annotations"]
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def stamped(obj: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The object with its hash annotation, and the hash."""
    digest = applied_hash(obj)
    body = copy.deepcopy(dict(obj))
    meta = body.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), APPLIED_HASH_ANNOTATION: digest}
    return body, digest


def _ours(entry: Mapping[str, Any]) -> bool:
    return bool(entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply")


def _counted(entry: Mapping[str, Any]) -> bool:
    """Entries that can change the spec: not a status subresource's (the controllers' status writes)."""
    return bool(entry.get("subresource", "") != "status")


def union(a: Fields, b: Fields) -> Fields:
    out = copy.deepcopy(a)
    for key, sub in b.items():
        out[key] = union(out[key], sub) if key in out else copy.deepcopy(sub)
    return out


def minus(theirs: Fields, ours: Fields) -> Fields:
    """The fields of `theirs` not in `ours`."""
    out: Fields = {}
    for key, sub in theirs.items():
        if key not in ours:
            out[key] = copy.deepcopy(sub)
        elif sub:
            rest = minus(sub, ours[key])
            if rest:
                out[key] = rest
    return out


def without(fields: Fields, removed: Fields) -> Fields:
    """`fields` less the subtries in `removed` (a subtrie of it, as `minus` returns)."""
    out: Fields = {}
    for key, sub in fields.items():
        if key not in removed:
            out[key] = copy.deepcopy(sub)
        elif sub != removed[key]:
            rest = without(sub, removed[key])
            if rest:
                out[key] = rest
    return out


def _spec_scope(fields: Fields) -> Fields:
    spec = fields.get("f:spec") or {}
    scoped = {key: spec[key] for key in DEPLOYMENT_SPEC_FIELDS if key in spec}
    return {"f:spec": scoped} if scoped else {}


def drift(managed_fields: Iterable[Mapping[str, Any]]) -> Fields:
    """The fields of a Deployment's spec wharf renders that another manager owns and wharf does not: added to
    the pod template, or values of wharf's taken over (kubectl scale, kubectl set env)."""
    entries = list(managed_fields)
    ours: Fields = {}
    for entry in entries:
        if _ours(entry):
            ours = union(ours, entry.get("fieldsV1") or {})
    theirs: Fields = {}
    for entry in entries:
        if not _ours(entry) and _counted(entry):
            theirs = union(theirs, _spec_scope(entry.get("fieldsV1") or {}))
    return minus(theirs, ours)


def take_over(
    managed_fields: Iterable[Mapping[str, Any]], drifted: Fields, api_version: str, now: str = ""
) -> list[dict[str, Any]]:
    """managedFields with the `drifted` fields moved from the other managers into wharf's apply entry (one is
    added if wharf has none)."""
    result: list[dict[str, Any]] = []
    taken = False
    for entry in managed_fields:
        updated = copy.deepcopy(dict(entry))
        if _ours(entry):
            updated["fieldsV1"] = union(entry.get("fieldsV1") or {}, drifted)
            taken = True
        elif _counted(entry):
            rest = without(entry.get("fieldsV1") or {}, drifted)
            if not rest:
                continue  # an entry with no fields left is dropped
            updated["fieldsV1"] = rest
        result.append(updated)
    if not taken:
        entry = {
            "manager": FIELD_MANAGER,
            "operation": "Apply",
            "apiVersion": api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": drifted,
        }
        result.append({**entry, "time": now} if now else entry)
    return result
