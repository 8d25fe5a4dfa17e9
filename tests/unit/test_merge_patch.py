"""The status is written as an RFC 7386 merge patch: keys the new status no longer has must be deleted."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from harness.merge_patch import apply_merge_patch
from wharf.kube.merge_patch import merge_patch


def test_a_key_the_new_status_lacks_is_deleted() -> None:
    # The bug this prevents: status.image of a new image kept the old image's entrypoint and cmd.
    before = {"image": {"digest": "sha256:1", "entrypoint": ["/app"], "cmd": ["serve"]}, "runAsNote": "uid 2000"}
    after = {"image": {"digest": "sha256:2"}}
    patch = merge_patch(before, after)
    assert patch == {"image": {"digest": "sha256:2", "entrypoint": None, "cmd": None}, "runAsNote": None}
    assert apply_merge_patch(before, patch) == after


def test_equal_documents_need_no_patch() -> None:
    doc = {"a": {"b": [1, {"c": 2}]}, "d": "x"}
    assert merge_patch(doc, dict(doc)) == {}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)
# A status as wharf writes it: objects of JSON values with no nulls (exclude_none), nested objects allowed.
NO_NULLS = st.recursive(
    st.booleans() | st.integers() | st.text(max_size=5) | st.lists(JSON, max_size=3),
    lambda inner: st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=12,
)
OBJECTS = st.dictionaries(st.text(max_size=3), NO_NULLS, max_size=4)


@given(OBJECTS, OBJECTS)
def test_the_patch_turns_before_into_after(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert apply_merge_patch(before, merge_patch(before, after)) == after
