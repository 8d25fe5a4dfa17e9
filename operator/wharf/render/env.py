"""The environment (S9): image ENV (left in the image: the runtime applies it first), then `manifest.env`, then what
the platform sets, which wins: PORT, VCAP_APPLICATION, MEMORY_LIMIT, CF_INSTANCE_* (downward API), VCAP_SERVICES
and SERVICE_BINDING_ROOT.

CF variables with no Kubernetes equivalent: CF_INSTANCE_INDEX (Deployment pods have no ordinal), and in
VCAP_APPLICATION organization_id/organization_name (no orgs), cf_api. See docs/manifest.md.
"""

from __future__ import annotations

import json
from typing import Any

from wharf.api.app import App
from wharf.api.image import ImageFacts
from wharf.api.manifest import EnvValue
from wharf.render.bindings import ROOT, ROOT_ENV
from wharf.render.expansion import literal, reference
from wharf.render.names import services_secret_name
from wharf.render.processes import ProcessPlan

FILE_DESCRIPTORS = 16384  # CF's default fds limit, reported in VCAP_APPLICATION


def _text(value: EnvValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # as YAML wrote it, not Python's True
    return str(value)


def _literal_strings(document: Any) -> Any:
    """A JSON document with every string (keys too) `literal`."""
    if isinstance(document, str):
        return literal(document)
    if isinstance(document, dict):
        return {literal(key): _literal_strings(value) for key, value in document.items()}
    if isinstance(document, list):
        return [_literal_strings(item) for item in document]
    return document


def vcap_application(app: App, facts: ImageFacts, process: ProcessPlan, port: int, uris: list[str]) -> dict[str, Any]:
    """CF's VCAP_APPLICATION shape, as the kubelet reads it in an env `value`: every string literal (the App's name
    and routes reach it as written) but `instance_id`, which the kubelet fills in per pod."""
    document: dict[str, Any] = _literal_strings(
        {
            "application_id": app.uid,
            "application_name": app.app_name,
            "name": app.app_name,
            "application_uris": uris,
            "uris": uris,
            "application_version": facts.digest,
            "version": facts.digest,
            "space_name": app.namespace,
            "space_id": app.namespace,
            "process_type": process.type,
            "process_id": f"{app.uid}-{process.type}",
            "limits": {"mem": process.memory_mb, "disk": process.disk_mb, "fds": FILE_DESCRIPTORS},
            "instance_id": None,  # the kubelet's to fill in: set below, once the strings are literal
            "host": "0.0.0.0",
            "port": port,
        }
    )
    document["instance_id"] = reference("CF_INSTANCE_GUID")
    return document


def _field(path: str) -> dict[str, Any]:
    return {"valueFrom": {"fieldRef": {"fieldPath": path}}}


def container_env(
    app: App,
    facts: ImageFacts,
    process: ProcessPlan,
    port: int,
    listed_ports: tuple[int, ...],
    uris: list[str],
    *,
    has_services: bool,
) -> list[dict[str, Any]]:
    platform: list[dict[str, Any]] = [
        {"name": "PORT", "value": str(port)},
        {"name": "MEMORY_LIMIT", "value": f"{process.memory_mb}m"},
        {"name": "CF_INSTANCE_GUID", **_field("metadata.uid")},
        {"name": "CF_INSTANCE_IP", **_field("status.hostIP")},
        {"name": "CF_INSTANCE_INTERNAL_IP", **_field("status.podIP")},
        {"name": "CF_INSTANCE_PORT", "value": str(port)},
        {"name": "CF_INSTANCE_ADDR", "value": f"{reference('CF_INSTANCE_INTERNAL_IP')}:{port}"},
        {
            "name": "CF_INSTANCE_PORTS",
            "value": json.dumps([{"internal": p, "external": p} for p in listed_ports], separators=(",", ":")),
        },
        {
            "name": "VCAP_APPLICATION",
            "value": json.dumps(vcap_application(app, facts, process, port, uris), separators=(",", ":")),
        },
    ]
    if has_services:
        platform.append(
            {
                "name": "VCAP_SERVICES",
                "valueFrom": {"secretKeyRef": {"name": services_secret_name(app), "key": "VCAP_SERVICES"}},
            }
        )
        platform.append({"name": ROOT_ENV, "value": ROOT})
    else:  # as on CF: apps parse VCAP_SERVICES unconditionally
        platform.append({"name": "VCAP_SERVICES", "value": "{}"})
    # What the platform sets wins over the manifest (S9): a manifest key of the same name is left out. The values
    # reach the App as written (CF sets them as they are): no `$(VAR)` of the kubelet's.
    ours = {variable["name"] for variable in platform}
    user = [
        {"name": key, "value": literal(_text(value))} for key, value in app.spec.manifest.env.items() if key not in ours
    ]
    return user + platform
