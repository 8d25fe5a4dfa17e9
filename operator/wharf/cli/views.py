"""What the commands show, from an App and its pods as the apiserver returns them: `cf app`'s summary, `cf apps`'
table, instance states, `cf env`. Pure: dicts in, text or data out."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from wharf.api.app import App
from wharf.config import Settings
from wharf.render.processes import plan

WEB = "web"


def cf_name(app: dict[str, Any]) -> str:
    """The name the user calls the app by: its manifest name (the CF name), else the resource name."""
    manifest = (app.get("spec") or {}).get("manifest") or {}
    return str(manifest.get("name") or app["metadata"]["name"])


def condition(app: dict[str, Any], type_: str) -> dict[str, Any]:
    conditions = (app.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), {})


def current(app: dict[str, Any], cond: dict[str, Any]) -> bool:
    """The condition answers the App's current spec (not an older generation's)."""
    return bool(cond) and cond.get("observedGeneration") == app["metadata"].get("generation")


def _megabytes(mb: int) -> str:
    return f"{mb // 1024}G" if mb % 1024 == 0 else f"{mb}M"


def process_rows(app: dict[str, Any]) -> list[dict[str, Any]]:
    """Per process type: instances (ready/desired), memory, disk, start command."""
    status = app.get("status") or {}
    by_type = {p.get("type"): p for p in status.get("processes") or []}
    try:
        parsed = App.from_resource(app)
        plans = plan(parsed, Settings())
    except (ValidationError, ValueError, KeyError):
        plans = []
    rows = []
    for process in plans:
        observed = by_type.get(process.type, {})
        rows.append(
            {
                "type": process.type,
                "instances": f"{observed.get('ready', 0)}/{observed.get('desired', process.replicas)}",
                "memory": _megabytes(process.memory_mb),
                "disk": _megabytes(process.disk_mb),
                "command": process.command or "(the image's ENTRYPOINT and CMD)",
            }
        )
    return rows


def instance_state(pod: dict[str, Any]) -> tuple[str, str]:
    """CF's instance states (starting, running, crashed, down) and the kubelet's detail."""
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp"):
        return "stopping", ""
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        if reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError"):
            return "down", f"{reason}: {waiting.get('message', '')}".rstrip(": ")
        if reason == "CrashLoopBackOff":
            return "crashed", waiting.get("message", "")
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    if status.get("phase") == "Running" and ready:
        return "running", ""
    if status.get("phase") == "Failed":
        return "crashed", status.get("message", "")
    return "starting", ""


def instances(pods: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Instances numbered as CF numbers them (#0, #1, ...): Deployment pods have no ordinal, so oldest first."""
    ordered = sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))
    rows = []
    for index, pod in enumerate(ordered):
        state, details = instance_state(pod)
        rows.append(
            {
                "index": index,
                "pod": pod["metadata"]["name"],
                "state": state,
                "since": pod["metadata"].get("creationTimestamp", ""),
                "details": details,
            }
        )
    return rows


def summary(app: dict[str, Any], pods: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """`cf app`'s facts as data (for -o json|yaml), the text view renders it."""
    spec = app.get("spec") or {}
    status = app.get("status") or {}
    image = status.get("image") or {}
    ready = condition(app, "Ready")
    return {
        "name": cf_name(app),
        "resource": app["metadata"]["name"],
        "namespace": app["metadata"].get("namespace", ""),
        "requestedState": str(spec.get("state", "STARTED")).lower(),
        "routes": status.get("routes") or [],
        "dockerImage": spec.get("dockerImage") or ((spec.get("manifest") or {}).get("docker") or {}).get("image"),
        "digest": image.get("digest", ""),
        "port": status.get("port"),
        "buildpacks": status.get("buildpack", "unknown"),
        "ready": ready.get("status", "Unknown"),
        "reason": ready.get("reason", ""),
        "message": ready.get("message", ""),
        "warnings": status.get("warnings") or [],
        "processes": process_rows(app),
        "instances": instances([p for p in pods if _process_of(p) == WEB]),
    }


def _process_of(pod: dict[str, Any]) -> str:
    return str((pod["metadata"].get("labels") or {}).get("wharf.dev/process-type", ""))


def summary_text(data: dict[str, Any]) -> str:
    image = data["dockerImage"] or ""
    if data["digest"]:
        image = f"{image} ({data['digest']})"
    lines = [
        f"name:              {data['name']}",
        f"requested state:   {data['requestedState']}",
        f"routes:            {', '.join(data['routes'])}",
        f"buildpacks:        {data['buildpacks']}",
        f"docker image:      {image}",
        f"port:              {data['port'] or ''}",
    ]
    if data["resource"] != data["name"]:
        lines.append(f"resource:          app/{data['resource']} (the Kubernetes name of {data['name']})")
    if data["ready"] != "True" and data["message"]:
        lines.append(f"status:            {data['reason']}: {data['message']}")
    lines += [f"warning:           {w}" for w in data["warnings"]]
    for process in data["processes"]:
        lines += [
            "",
            f"type:           {process['type']}",
            f"instances:      {process['instances']}",
            f"memory:         {process['memory']}",
            f"disk:           {process['disk']}",
            f"start command:  {process['command']}",
        ]
        if process["type"] == WEB and data["instances"]:
            lines.append("     state      since                  details")
            lines += [
                f"#{i['index']:<3} {i['state']:<10} {i['since']:<22} {i['details']}".rstrip() for i in data["instances"]
            ]
    return "\n".join(lines)


def apps_rows(apps: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """`cf apps`: name, requested state, processes (type:ready/desired), routes."""
    rows = []
    for app in sorted(apps, key=cf_name):
        status = app.get("status") or {}
        processes = ", ".join(
            f"{p.get('type')}:{p.get('ready', 0)}/{p.get('desired', 0)}" for p in status.get("processes") or []
        )
        rows.append(
            {
                "name": cf_name(app),
                "resource": app["metadata"]["name"],
                "requestedState": str((app.get("spec") or {}).get("state", "STARTED")).lower(),
                "processes": processes,
                "routes": ", ".join(status.get("routes") or []),
                "ready": condition(app, "Ready").get("status", "Unknown"),
            }
        )
    return rows


def env_data(app: dict[str, Any], deployment: dict[str, Any] | None) -> dict[str, Any]:
    """`cf env`: what the user set (manifest env) and what the platform sets (from the web Deployment)."""
    user = dict(((app.get("spec") or {}).get("manifest") or {}).get("env") or {})
    system: dict[str, Any] = {}
    if deployment:
        containers = deployment["spec"]["template"]["spec"].get("containers") or []
        app_container = next((c for c in containers if c.get("name") == "app"), containers[0] if containers else {})
        for entry in app_container.get("env") or []:
            name = entry.get("name", "")
            if (name.startswith(("VCAP_", "CF_")) or name in ("PORT", "MEMORY_LIMIT")) and "value" in entry:
                value = entry["value"]
                if name.startswith("VCAP_"):
                    with contextlib.suppress(ValueError):
                        value = json.loads(value)
                system[name] = value
    services = [
        s if isinstance(s, str) else s.get("name")
        for s in ((app.get("spec") or {}).get("manifest") or {}).get("services") or []
    ]
    return {"system": system, "user": user, "services": services}


def env_text(data: dict[str, Any]) -> str:
    lines = ["System-Provided:"]
    for key, value in data["system"].items():
        shown = json.dumps(value, indent=2, sort_keys=True) if isinstance(value, dict | list) else value
        lines.append(f"{key}: {shown}")
    if data["services"]:
        lines.append(f"bound services (credentials in the Secrets of these names): {', '.join(data['services'])}")
    lines += ["", "User-Provided:"]
    lines += [f"{key}: {value}" for key, value in sorted(data["user"].items())]
    if not data["user"]:
        lines.append("(none)")
    return "\n".join(lines)
