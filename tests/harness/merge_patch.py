"""RFC 7386 (section 2): applying a JSON merge patch, as the apiserver does. The tests' independent counterpart
of wharf.kube.merge_patch, which computes the patch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def apply_merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            nested = result.get(key)
            result[key] = apply_merge_patch(nested if isinstance(nested, Mapping) else {}, value)
        else:
            result[key] = value
    return result
