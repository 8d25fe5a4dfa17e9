"""The pure half of the scale benchmark (benchmarks/scale_report.py): percentiles, audit-log counting, the table."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import scale_report as report


def test_percentiles_interpolate_between_ranks() -> None:
    assert report.percentile([], 50) is None
    assert report.percentile([3.0], 99) == 3.0
    assert report.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert report.percentile([float(i) for i in range(1, 101)], 99) == pytest.approx(99.01)
    assert report.percentile([1.0, 2.0], 100) == 2.0
    with pytest.raises(ValueError, match="outside"):
        report.percentile([1.0], 101)


def _event(audit_id: str, stage: str, user: str, verb: str, resource: str, at: str, sub: str = "") -> str:
    ref = {"resource": resource, **({"subresource": sub} if sub else {})}
    return json.dumps(
        {
            "auditID": audit_id,
            "stage": stage,
            "verb": verb,
            "user": {"username": user},
            "objectRef": ref,
            "responseStatus": {"code": 200},
            "requestReceivedTimestamp": at,
        }
    )


def test_audit_requests_are_counted_once_per_request_by_user_verb_and_window() -> None:
    lines = [
        _event("w1", "ResponseStarted", "op", "watch", "apps", "2026-01-01T00:00:01.000000Z"),
        _event("p1", "ResponseComplete", "op", "patch", "apps", "2026-01-01T00:00:02.500000Z", sub="status"),
        _event("l1", "ResponseComplete", "op", "list", "pods", "2026-01-01T00:00:03Z"),
        _event("k1", "ResponseComplete", "op", "patch", "kopfpeerings", "2026-01-01T00:00:03Z"),
        _event("x1", "ResponseComplete", "someone", "create", "deployments", "2026-01-01T00:00:03Z"),
        _event("l2", "ResponseComplete", "op", "list", "pods", "2026-01-01T00:01:00Z"),
    ]
    seen: set[str] = set()
    records = report.parse_audit_lines(lines[:1], seen) + report.parse_audit_lines(
        [*lines, _event("w1", "ResponseComplete", "op", "watch", "apps", "2026-01-01T00:00:01Z")], seen
    )
    assert len(records) == 6  # the watch's two stages are one request, even read piecewise
    start = records[0].at
    counts = report.count_requests(records, ["op"], start, start + 10)
    assert counts["verbs"] == {"list": 1, "patch": 2, "watch": 1}
    assert counts["resources"]["patch apps/status"] == 1
    assert report.app_requests(counts) == {"list": 1, "patch": 1, "watch": 1, "writes": 1, "reads": 2}


def _run(label: str, **extra: Any) -> dict[str, Any]:
    return {
        "label": label,
        "apps": 1000,
        "shards": 1,
        "ratios": {"ready": 1.2, "children": 1.9},
        "wharf": {"ready_count": 1000, "timed_out": False, "create_to_deployment": {"p50": 0.4, "p99": 1.5}},
        "log": {"errors": 0, "tracebacks": 0},
        **extra,
    }


def test_the_table_has_a_column_per_run_and_a_dash_for_what_a_run_lacks() -> None:
    text = report.table([_run("before", edits={"p50": 1.0, "p99": 9.5, "count": 100, "updated": 90}), _run("after")])
    lines = text.splitlines()
    assert lines[0] == "| figure | target (N=1,000) | before N=1,000 | after N=1,000 |"
    row = next(line for line in lines if line.startswith("| ratio (b)"))
    assert row == "| ratio (b): all Apps Ready / raw all Available | <= 1.25 | 1.20 | 1.20 |"
    edits = next(line for line in lines if line.startswith("| 100 concurrent edits"))
    assert "1.0 / 9.5 s (90 of 100)" in edits
    assert edits.endswith("| - |")  # the "after" run measured no edits
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_the_table_is_spliced_between_its_markers_and_the_text_around_it_stays() -> None:
    first = report.splice("# Performance\n\nintro\n", "TABLE 1")
    assert first.startswith("# Performance\n\nintro\n")
    assert report.TABLE_START in first
    second = report.splice(first + "\nafterword\n", "TABLE 2")
    assert "TABLE 1" not in second
    assert "TABLE 2" in second
    assert second.endswith("afterword\n")
