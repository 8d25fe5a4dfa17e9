"""The effective settings of each process type: CF defaults, top-level keys for web, `processes` entries (S4, S10).

CF: the top-level keys describe the web process; a `processes` entry of type web overrides them; other types
take only their own entry. Defaults: instances 1 for web and 0 for others, memory and disk from the admin's
settings (CF's 1024M), health check `port` for web and `process` for others, timeout 60, invocation timeout 1,
interval 30.
"""

from __future__ import annotations

from dataclasses import dataclass

from wharf.api.app import App, State
from wharf.api.manifest import HealthCheckType, ProcessSettings, ReadinessCheckType, Sidecar
from wharf.api.units import to_megabytes
from wharf.config import Settings

WEB = "web"
DEFAULT_TIMEOUT = 60
DEFAULT_INVOCATION_TIMEOUT = 1
DEFAULT_INTERVAL = 30
_KEYS = tuple(ProcessSettings.model_fields)


@dataclass(frozen=True)
class HealthCheck:
    type: HealthCheckType | ReadinessCheckType
    endpoint: str
    invocation_timeout: int
    interval: int


@dataclass(frozen=True)
class ProcessPlan:
    type: str
    instances: int  # what the manifest asks for
    replicas: int  # what runs: 0 while the App is STOPPED (S15)
    memory_mb: int
    disk_mb: int
    command: str | None
    health: HealthCheck
    readiness: HealthCheck | None
    timeout: int
    sidecars: tuple[Sidecar, ...]


def _merged(app: App, process_type: str) -> dict[str, object]:
    manifest = app.spec.manifest
    values: dict[str, object] = {}
    if process_type == WEB:
        values = {key: getattr(manifest, key) for key in _KEYS if getattr(manifest, key) is not None}
    for entry in manifest.processes:
        if entry.type == process_type:
            values.update({key: getattr(entry, key) for key in _KEYS if getattr(entry, key) is not None})
    return values


def plan(app: App, settings: Settings) -> list[ProcessPlan]:
    """One plan per process type, web first, then the others in manifest order."""
    types = [WEB, *(p.type for p in app.spec.manifest.processes if p.type != WEB)]
    return [_plan_one(app, process_type, settings) for process_type in types]


def _plan_one(app: App, process_type: str, settings: Settings) -> ProcessPlan:
    values = _merged(app, process_type)
    is_web = process_type == WEB
    instances = int(values.get("instances", 1 if is_web else 0))  # type: ignore[call-overload]
    memory = values.get("memory")
    disk = values.get("disk_quota")
    default_type = HealthCheckType.PORT if is_web else HealthCheckType.PROCESS
    health_type = HealthCheckType(str(values.get("health_check_type", default_type)))
    if health_type is HealthCheckType.NONE:
        health_type = HealthCheckType.PROCESS  # CF: `none` is the old name of `process`
    health = HealthCheck(
        type=health_type,
        endpoint=str(values.get("health_check_http_endpoint", "/")),
        invocation_timeout=int(values.get("health_check_invocation_timeout", DEFAULT_INVOCATION_TIMEOUT)),  # type: ignore[call-overload]
        interval=int(values.get("health_check_interval", DEFAULT_INTERVAL)),  # type: ignore[call-overload]
    )
    readiness = None
    if "readiness_health_check_type" in values:
        readiness = HealthCheck(
            type=ReadinessCheckType(str(values["readiness_health_check_type"])),
            endpoint=str(values.get("readiness_health_check_http_endpoint", "/")),
            invocation_timeout=int(values.get("readiness_health_check_invocation_timeout", DEFAULT_INVOCATION_TIMEOUT)),  # type: ignore[call-overload]
            interval=int(values.get("readiness_health_check_interval", DEFAULT_INTERVAL)),  # type: ignore[call-overload]
        )
    command = values.get("command")
    return ProcessPlan(
        type=process_type,
        instances=instances,
        replicas=0 if app.spec.state is State.STOPPED else instances,
        memory_mb=to_megabytes(str(memory)) if memory is not None else settings.default_memory_mb,
        disk_mb=to_megabytes(str(disk)) if disk is not None else settings.default_disk_mb,
        command=str(command) if command is not None else None,
        health=health,
        readiness=readiness,
        timeout=int(values.get("timeout", DEFAULT_TIMEOUT)),  # type: ignore[call-overload]
        sidecars=tuple(s for s in app.spec.manifest.sidecars if process_type in s.process_types),
    )
