"""Events for meaningful transitions of the App's status only (not one per reconcile). Pure: the handlers post
them and count what they count."""

from __future__ import annotations

from dataclasses import dataclass

from wharf.api.app import AppStatus
from wharf.api.conditions import ConditionType
from wharf.status.conditions import find
from wharf.status.pulls import FAILED_TO_CREATE


@dataclass(frozen=True)
class EventRecord:
    type: str  # Normal | Warning
    reason: str
    message: str

    @property
    def pull_failure(self) -> bool:
        """A Warning saying instances cannot pull (the kubelet's words, S14): what wharf_pull_failures counts."""
        return self.type == "Warning" and self.message.startswith(FAILED_TO_CREATE)


def transitions(previous: AppStatus, current: AppStatus) -> list[EventRecord]:
    events: list[EventRecord] = []
    before = find(previous.conditions, ConditionType.READY)
    after = find(current.conditions, ConditionType.READY)
    if current.image and (previous.image is None or previous.image.digest != current.image.digest):
        events.append(
            EventRecord("Normal", "ImageResolved", f"{current.image.reference} resolved to {current.image.digest}")
        )
    if current.port is not None and (current.port != previous.port or current.ports != previous.ports):
        events.append(EventRecord("Normal", "PortChosen", f"routing to port {current.port} of {current.ports}"))
    warned = find(current.conditions, ConditionType.MANIFEST_WARNINGS)
    if current.warnings and current.warnings != previous.warnings and warned is not None:
        events.append(EventRecord("Warning", warned.reason, "; ".join(current.warnings)))
    if after is not None and (before is None or (before.status, before.reason) != (after.status, after.reason)):
        if after.status == "True":
            recovered = before is not None and before.status == "False" and before.reason not in ("Starting", "Pending")
            events.append(EventRecord("Normal", "Recovered" if recovered else after.reason, after.message))
        elif after.status == "False" and after.reason not in ("Starting", "Pending"):
            events.append(EventRecord("Warning", after.reason, after.message))
    # Stalled for a reason Ready does not name (a rollout past its progress deadline while Ready names the cause
    # that held it) is a transition a person must hear of too.
    stalled_before = find(previous.conditions, ConditionType.STALLED)
    stalled = find(current.conditions, ConditionType.STALLED)
    if (
        stalled is not None
        and stalled.status == "True"
        and (after is None or stalled.reason != after.reason)
        and (stalled_before is None or (stalled_before.status, stalled_before.reason) != ("True", stalled.reason))
    ):
        events.append(EventRecord("Warning", stalled.reason, stalled.message))
    return events
