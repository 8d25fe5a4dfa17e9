"""S17 drift from managedFields (render/ownership.py): what another writer added to or took over in a Deployment's
pod template is found and handed to wharf's apply entry, so wharf's next apply removes it; what others set beside
wharf's fields outside the template stays theirs. The apiserver's side is proven in tests/integration."""

from __future__ import annotations

from typing import Any

from wharf.render.ownership import applied_hash, drift, stamped, take_over

OURS = {
    "manager": "wharf",
    "operation": "Apply",
    "apiVersion": "apps/v1",
    "fieldsType": "FieldsV1",
    "fieldsV1": {
        "f:spec": {
            "f:replicas": {},
            "f:template": {
                "f:spec": {"f:containers": {'k:{"name":"app"}': {".": {}, "f:env": {'k:{"name":"PORT"}': {".": {}}}}}}
            },
        }
    },
}
CONTROLLER = {
    "manager": "kube-controller-manager",
    "operation": "Update",
    "subresource": "status",
    "fieldsV1": {"f:status": {"f:replicas": {}}},
}


def _other(manager: str, fields: dict[str, Any], **extra: str) -> dict[str, Any]:
    return {"manager": manager, "operation": "Update", "apiVersion": "apps/v1", "fieldsV1": fields, **extra}


def test_fields_added_to_the_template_and_values_taken_over_are_drift() -> None:
    host = _other("intruder", {"f:spec": {"f:template": {"f:spec": {"f:hostNetwork": {}, "f:hostPID": {}}}}})
    scaled = _other("kubectl", {"f:spec": {"f:replicas": {}}}, subresource="scale")
    # A value another manager changes moves to it: wharf no longer owns replicas.
    lost = {**OURS, "fieldsV1": {"f:spec": {"f:template": OURS["fieldsV1"]["f:spec"]["f:template"]}}}
    assert drift([lost, CONTROLLER, host, scaled]) == {
        "f:spec": {"f:template": {"f:spec": {"f:hostNetwork": {}, "f:hostPID": {}}}, "f:replicas": {}}
    }


def test_shared_fields_status_writes_and_fields_outside_what_wharf_renders_are_not_drift() -> None:
    same = _other("gitops", {"f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"app"}': {".": {}}}}}}})
    deadline = _other("kubectl-patch", {"f:spec": {"f:progressDeadlineSeconds": {}}})
    touched = _other("kubectl-annotate", {"f:metadata": {"f:annotations": {"f:x": {}}}})
    assert drift([OURS, CONTROLLER, same, deadline, touched]) == {}


def test_take_over_moves_the_drift_to_wharf_and_drops_emptied_entries() -> None:
    sidecar = {'k:{"name":"evil"}': {".": {}, "f:image": {}}}
    host = _other(
        "intruder",
        {
            "f:metadata": {"f:annotations": {"f:note": {}}},
            "f:spec": {"f:template": {"f:spec": {"f:containers": sidecar}}},
        },
    )
    privileged = _other("other", {"f:spec": {"f:template": {"f:spec": {"f:hostPID": {}}}}})
    found = drift([OURS, host, privileged, CONTROLLER])
    managed = take_over([OURS, host, privileged, CONTROLLER], found, "apps/v1")
    by_manager = {e["manager"]: e for e in managed}
    assert set(by_manager) == {"wharf", "intruder", "kube-controller-manager"}  # `other` had nothing else
    assert by_manager["intruder"]["fieldsV1"] == {"f:metadata": {"f:annotations": {"f:note": {}}}}
    template = by_manager["wharf"]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]
    assert template["f:containers"]['k:{"name":"evil"}'] == {".": {}, "f:image": {}}
    assert template["f:hostPID"] == {}
    assert by_manager["kube-controller-manager"] == CONTROLLER
    assert drift(managed) == {}  # nothing left to take


def test_take_over_adds_an_apply_entry_when_wharf_has_none() -> None:
    host = _other("intruder", {"f:spec": {"f:template": {"f:spec": {"f:hostNetwork": {}}}}})
    managed = take_over([host], drift([host]), "apps/v1", now="2026-01-01T00:00:00Z")
    assert [(e["manager"], e["operation"]) for e in managed] == [("wharf", "Apply")]


def test_the_applied_hash_ignores_its_own_annotation_and_follows_every_change() -> None:
    obj = {"kind": "Service", "metadata": {"name": "shop"}, "spec": {"ports": [{"port": 8080}]}}
    body, digest = stamped(obj)
    assert body["metadata"]["annotations"]["wharf.dev/applied-hash"] == digest
    assert applied_hash(body) == digest == applied_hash(obj)
    assert "annotations" not in obj["metadata"]  # the rendered object is not changed
    assert applied_hash({**obj, "spec": {"ports": [{"port": 8081}]}}) != digest
