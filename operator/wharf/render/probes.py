"""Health checks as probes, with CF's timing meaning (S10).

- `timeout` is the start-up allowance: a startup probe checking every STARTUP_PERIOD seconds until it passes.
- After start, the check runs every `health-check-interval` seconds with `health-check-invocation-timeout`; one
  failure restarts the instance, as in CF (liveness, failureThreshold 1).
- `readiness-health-check-*` become the readiness probe; without them, an instance is routable once its start-up
  check passed (Kubernetes marks a container ready when its startup probe succeeds and no readiness probe exists).
- `port` checks every listed port. One port is a `tcpSocket` probe. A Kubernetes probe has exactly one handler, so
  several ports are checked by one `exec` probe: a POSIX `sh` script (a `command` runs under `sh` anyway, S5; an
  image with neither `sh` nor a `command` needs `spec.ports` or an http check, docs/manifest.md) that reads the
  kernel's socket tables and needs no other tool. It passes when each port has a listening socket on a
  non-loopback address, which is when the kubelet's TCP connect to the pod IP would succeed.
- `http` checks the endpoint on the routed port (the lowest, unless `spec.ports` names another first).
- `process` (and `none`) render no probe.
"""

from __future__ import annotations

import math
from typing import Any

from wharf.api.manifest import HealthCheckType, ReadinessCheckType
from wharf.render.expansion import literal
from wharf.render.ports import Ports
from wharf.render.processes import HealthCheck, ProcessPlan

STARTUP_PERIOD = 2  # seconds between start-up checks: CF polls often while an instance starts


# Loopback listeners as /proc/net/tcp{,6} print them (address in host byte order, little-endian): 127.0.0.0/8, ::1
# and ::ffff:127.0.0.0/104. The kubelet connects to the pod IP, so a server bound to loopback only fails its check.
_LOOPBACK = ("??????7F", "00000000000000000000000001000000", "0000000000000000FFFF0000??????7F")


def listening_check(ports: tuple[int, ...]) -> str:
    """An `sh` script that exits 0 when every port listens on a non-loopback address, else says which does not.

    The kernel prints every listening socket before any other (tcp_seq_start walks the listening hash, then the
    established one), so a table is read only up to its first non-listening row (after the `st` header): a busy
    server's thousands of connections never slow the check past its one-second timeout."""
    wanted = " ".join(f"{port}:{port:04X}" for port in sorted(ports))
    loopback = " | ".join(f'{address}:"$hex"' for address in _LOOPBACK)
    return f"""\
for want in {wanted}; do
  hex=${{want#*:}}; found=
  for table in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$table" ] || continue
    while read -r _ local _ state _; do
      case $state in
        0A) ;;
        st) continue ;;
        *) break ;;
      esac
      case $local in
        {loopback}) ;;
        *:"$hex") found=1; break ;;
      esac
    done < "$table"
    [ -n "$found" ] && break
  done
  [ -n "$found" ] || {{ echo "port ${{want%%:*}} is not listening on a non-loopback address"; exit 1; }}
done
"""


def _handler(check: HealthCheck, ports: Ports) -> dict[str, Any] | None:
    if check.type in (HealthCheckType.HTTP, ReadinessCheckType.HTTP):
        return {"httpGet": {"path": check.endpoint, "port": ports.routed}}
    if check.type in (HealthCheckType.PORT, ReadinessCheckType.PORT):
        if len(ports.listed) == 1:
            # The kubelet's own TCP check: no process started in the container.
            return {"tcpSocket": {"port": ports.listed[0]}}
        # literal: the kubelet expands `$(VAR)` and `$$` in exec probe commands too.
        return {"exec": {"command": ["sh", "-c", literal(listening_check(ports.listed))]}}
    return None


def probes(process: ProcessPlan, ports: Ports) -> dict[str, dict[str, Any]]:
    """The probe fields of the main container: startupProbe, livenessProbe, readinessProbe, as present."""
    rendered: dict[str, dict[str, Any]] = {}
    handler = _handler(process.health, ports)
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
        readiness = _handler(process.readiness, ports)
        if readiness is not None:
            rendered["readinessProbe"] = {
                **readiness,
                "periodSeconds": process.readiness.interval,
                "timeoutSeconds": process.readiness.invocation_timeout,
                "failureThreshold": 1,
            }
    return rendered
