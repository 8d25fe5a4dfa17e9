"""Health checks as probes, with CF's timing meaning (S10).

- `timeout` is the start-up allowance: a startup probe checking every STARTUP_PERIOD seconds until it passes.
- After start, the check runs every `health-check-interval` seconds with `health-check-invocation-timeout`; one
  failure restarts the instance, as in CF (liveness, failureThreshold 1).
- `readiness-health-check-*` become the readiness probe; without them, an instance is routable once its start-up
  check passed (Kubernetes marks a container ready when its startup probe succeeds and no readiness probe exists).
- `port` checks the routed (lowest) port: a Kubernetes probe has exactly one handler, so the other listed ports
  are declared on the container but not probed. `process` (and `none`) render no probe.
"""

from __future__ import annotations

import math
from typing import Any

from wharf.api.manifest import HealthCheckType, ReadinessCheckType
from wharf.render.processes import HealthCheck, ProcessPlan

STARTUP_PERIOD = 2  # seconds between start-up checks: CF polls often while an instance starts


def _handler(check: HealthCheck, port: int) -> dict[str, Any] | None:
    if check.type in (HealthCheckType.HTTP, ReadinessCheckType.HTTP):
        return {"httpGet": {"path": check.endpoint, "port": port}}
    if check.type in (HealthCheckType.PORT, ReadinessCheckType.PORT):
        return {"tcpSocket": {"port": port}}
    return None


def probes(process: ProcessPlan, port: int) -> dict[str, dict[str, Any]]:
    """The probe fields of the main container: startupProbe, livenessProbe, readinessProbe, as present."""
    rendered: dict[str, dict[str, Any]] = {}
    handler = _handler(process.health, port)
    if handler is not None:
        rendered["startupProbe"] = {
            **handler,
            "periodSeconds": STARTUP_PERIOD,
            "timeoutSeconds": process.health.invocation_timeout,
            "failureThreshold": max(1, math.ceil(process.timeout / STARTUP_PERIOD)),
        }
        rendered["livenessProbe"] = {
            **handler,
            "periodSeconds": process.health.interval,
            "timeoutSeconds": process.health.invocation_timeout,
            "failureThreshold": 1,
        }
    if process.readiness is not None:
        readiness = _handler(process.readiness, port)
        if readiness is not None:
            rendered["readinessProbe"] = {
                **readiness,
                "periodSeconds": process.readiness.interval,
                "timeoutSeconds": process.readiness.invocation_timeout,
                "failureThreshold": 1,
            }
    return rendered
