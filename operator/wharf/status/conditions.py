"""Conditions per the Kubernetes API conventions: lastTransitionTime moves only when status changes."""

from __future__ import annotations

from collections.abc import Iterable

from wharf.api.conditions import Condition


def merge(previous: Iterable[Condition], current: Iterable[Condition], now: str) -> list[Condition]:
    """`current` with each lastTransitionTime kept from `previous` where the status did not change."""
    before = {c.type: c for c in previous}
    merged = []
    for condition in current:
        old = before.get(condition.type)
        keep = old is not None and old.status == condition.status and old.last_transition_time
        merged.append(condition.model_copy(update={"last_transition_time": old.last_transition_time if keep else now}))  # type: ignore[union-attr]
    return merged


def find(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)
