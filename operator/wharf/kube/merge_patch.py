"""RFC 7386 JSON merge patches: the patch that turns one JSON object into another.

A merge patch merges nested objects key by key, so writing the new status whole would leave behind every key the
new status no longer has (the previous image's `entrypoint`, a `runAsNote` that no longer applies). The patch
between the two names those keys with `null`, which deletes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merge_patch(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch taking `before` to `after` (empty when equal). Lists and scalars are replaced whole."""
    patch: dict[str, Any] = {key: None for key in before if key not in after}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            nested = merge_patch(old, value)
            if nested:
                patch[key] = nested
        elif key not in before or old != value:
            patch[key] = value
    return patch
