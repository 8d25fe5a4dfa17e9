"""The pure half of benchmarks/scale.py: percentiles, the apiserver audit log counted by user and verb, the figures
of one run, and the Markdown table of several runs (docs/performance.md). No I/O besides reading given text.

Unit-tested in tests/unit/test_scale_report.py; the benchmark itself is not a test.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TABLE_START = "<!-- scale-table:start (written by benchmarks/scale.py table; edit the text around it) -->"
TABLE_END = "<!-- scale-table:end -->"
# Requests that are not about Apps: kopf's peering keep-alives and leader leases (the targets set them aside).
HOUSEKEEPING_RESOURCES = frozenset({"kopfpeerings", "clusterkopfpeerings", "leases"})
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's default); None when
    there are no values."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class AuditRecord:
    """One apiserver request, from the audit log (level Metadata)."""

    at: float  # requestReceivedTimestamp, seconds since the epoch
    user: str
    verb: str
    resource: str  # "deployments", "apps", "pods/status" (subresource after a slash)
    code: int


def parse_audit_lines(lines: Iterable[str], seen: set[str] | None = None) -> list[AuditRecord]:
    """Audit events (JSON lines) -> one record per request. A long-running request (watch) logs two stages
    (ResponseStarted, ResponseComplete) under one auditID: counted once, via `seen` (pass the same set for the
    whole log when reading it piecewise)."""
    seen = set() if seen is None else seen
    records = []
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        audit_id = event.get("auditID", "")
        if audit_id in seen:
            continue
        seen.add(audit_id)
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        stamp = dt.datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))
        records.append(
            AuditRecord(
                at=stamp.timestamp(),
                user=(event.get("user") or {}).get("username", ""),
                verb=event.get("verb", ""),
                resource=resource or event.get("requestURI", ""),
                code=int((event.get("responseStatus") or {}).get("code") or 0),
            )
        )
    return records


def count_requests(
    records: Iterable[AuditRecord], users: Iterable[str], start: float, end: float
) -> dict[str, dict[str, int]]:
    """Requests of `users` received in [start, end): {"verbs": {verb: n}, "resources": {"verb resource": n}}."""
    wanted = set(users)
    verbs: Counter[str] = Counter()
    resources: Counter[str] = Counter()
    for record in records:
        if record.user in wanted and start <= record.at < end:
            verbs[record.verb] += 1
            resources[f"{record.verb} {record.resource}"] += 1
    return {"verbs": dict(sorted(verbs.items())), "resources": dict(sorted(resources.items()))}


def app_requests(counts: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """`count_requests` output without housekeeping (peering, leases), by verb; plus "writes" and "reads"."""
    by_verb: Counter[str] = Counter()
    for key, n in counts["resources"].items():
        verb, _, resource = key.partition(" ")
        if resource.split("/")[0] not in HOUSEKEEPING_RESOURCES:
            by_verb[verb] += n
    out = dict(sorted(by_verb.items()))
    out["writes"] = sum(n for verb, n in by_verb.items() if verb in WRITE_VERBS)
    out["reads"] = sum(n for verb, n in by_verb.items() if verb not in WRITE_VERBS)
    return out


def per(value: float | None, divisor: float) -> float | None:
    return None if value is None or not divisor else value / divisor


@dataclass
class Row:
    """One line of the table: a label, the target it is judged by, and how to read it out of a run's JSON."""

    label: str
    target: str
    cell: Any  # Callable[[dict], str]


def _num(value: float | None, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{unit}"


def _pair(a: float | None, b: float | None, digits: int = 1, unit: str = " s") -> str:
    return f"{_num(a, digits)} / {_num(b, digits)}{unit}" if a is not None or b is not None else "-"


def _verbs(counts: Mapping[str, float] | None) -> str:
    if not counts:
        return "-"
    shown = {k: v for k, v in counts.items() if k not in ("writes", "reads") and v}
    return ", ".join(f"{k} {v:.1f}" for k, v in shown.items()) or "0"


def _get(run: Mapping[str, Any], path: str) -> Any:
    node: Any = run
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


ROWS: list[Row] = [
    Row(
        "Apps Ready at the end (of N)",
        "N",
        lambda r: (
            f"{_get(r, 'wharf.ready_count')} of {r['apps']}" + (" (cap reached)" if _get(r, "wharf.timed_out") else "")
        ),
    ),
    Row("ratio (b): all Apps Ready / raw all Available", "<= 1.25", lambda r: _num(_get(r, "ratios.ready"))),
    Row("ratio (a): all child objects exist / raw all created", "<= 2", lambda r: _num(_get(r, "ratios.children"))),
    Row(
        "create -> Deployment, p50 / p99",
        "p99 <= 2 s",
        lambda r: _pair(_get(r, "wharf.create_to_deployment.p50"), _get(r, "wharf.create_to_deployment.p99")),
    ),
    Row(
        "create -> Ready, p50 / p99",
        "-",
        lambda r: _pair(_get(r, "wharf.create_to_ready.p50"), _get(r, "wharf.create_to_ready.p99")),
    ),
    Row(
        "100 concurrent edits -> Deployment updated, p50 / p99",
        "p99 <= 2 s",
        lambda r: (
            _pair(_get(r, "edits.p50"), _get(r, "edits.p99"))
            + (f" ({_get(r, 'edits.updated')} of {_get(r, 'edits.count')})" if _get(r, "edits.count") else "")
        ),
    ),
    Row(
        "API requests per App to converge, by verb",
        "-",
        lambda r: _verbs(_get(r, "wharf.requests_per_app")),
    ),
    Row(
        "idle: writes / LISTs per App per minute",
        "0 / 0",
        lambda r: (
            f"{_num(_get(r, 'idle.writes_per_app_per_min'), 3)} / {_num(_get(r, 'idle.lists_per_app_per_min'), 3)}"
        ),
    ),
    Row(
        "idle: all requests per App per minute",
        "-",
        lambda r: _num(_get(r, "idle.requests_per_app_per_min"), 3),
    ),
    Row("idle: operator CPU (cores)", "<= 0.02", lambda r: _num(_get(r, "idle.cpu_cores"), 3)),
    Row(
        "operator RSS before / converged / after delete (MiB)",
        "-",
        lambda r: " / ".join(_num(_get(r, f"rss.{k}"), 0) for k in ("before_mib", "converged_mib", "after_delete_mib")),
    ),
    Row("operator RSS per App (KiB, converged - before)", "<= 50", lambda r: _num(_get(r, "rss.kib_per_app"), 0)),
    Row(
        "second wave: peak RSS vs first wave's peak",
        "<= +10%",
        lambda r: "-" if _get(r, "rss.second_wave_growth") is None else f"{_get(r, 'rss.second_wave_growth'):+.1%}",
    ),
    Row(
        "operator CPU to converge (core-seconds per App)", "-", lambda r: _num(_get(r, "wharf.cpu_seconds_per_app"), 3)
    ),
    Row("registry requests by the operator (per App)", "-", lambda r: _num(_get(r, "wharf.registry_per_app"), 3)),
    Row(
        "errors / tracebacks in the operator log",
        "0 / 0",
        lambda r: f"{_get(r, 'log.errors')} / {_get(r, 'log.tracebacks')}",
    ),
    Row(
        "raw client: all created / all Available (s, for scale)",
        "-",
        lambda r: _pair(_get(r, "raw.created_s"), _get(r, "raw.available_s")),
    ),
    Row(
        "wharf: all children exist / all Ready (s, for scale)",
        "-",
        lambda r: _pair(_get(r, "wharf.children_s"), _get(r, "wharf.ready_s")),
    ),
]


def column_title(run: Mapping[str, Any]) -> str:
    shards = run.get("shards", 1)
    return f"{run['label']} N={run['apps']:,}" + (f" {shards} shards" if shards > 1 else "")


def table(runs: Sequence[Mapping[str, Any]]) -> str:
    """The Markdown table: one row per figure, one column per run (in the order given)."""
    head = ["figure", "target (N=1,000)", *(column_title(r) for r in runs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in ROWS:
        cells = []
        for run in runs:
            try:
                cells.append(str(row.cell(run)))
            except (KeyError, TypeError):
                cells.append("-")
        lines.append("| " + " | ".join([row.label, row.target, *cells]) + " |")
    return "\n".join(lines)


def provenance(runs: Sequence[Mapping[str, Any]]) -> str:
    """Where each column comes from: date, commit, machine and the command."""
    out = []
    for run in runs:
        machine = run.get("machine", {})
        out.append(
            f"- **{column_title(run)}**: {run.get('date', '?')}, commit `{run.get('commit', '?')}`, "
            f"{machine.get('cpus', '?')} CPUs ({machine.get('cpu_model', '?')}), "
            f"{machine.get('memory_gib', '?')} GiB, load {machine.get('load', '?')} at start; "
            f"`{run.get('command', '?')}`"
        )
    return "\n".join(out)


def splice(document: str, generated: str) -> str:
    """`document` with the text between TABLE_START and TABLE_END replaced by `generated` (appended with both
    markers when absent)."""
    block = f"{TABLE_START}\n{generated}\n{TABLE_END}"
    start, end = document.find(TABLE_START), document.find(TABLE_END)
    if start == -1 or end == -1 or end < start:
        return document.rstrip("\n") + "\n\n" + block + "\n"
    return document[:start] + block + document[end + len(TABLE_END) :]


@dataclass
class Timeline:
    """When things were first seen, by name (seconds on one clock)."""

    first: dict[str, float] = field(default_factory=dict)

    def see(self, name: str, at: float) -> None:
        self.first.setdefault(name, at)

    def latencies(self, since: Mapping[str, float]) -> list[float]:
        """For every name in `since` seen here: how long after `since[name]` it was first seen."""
        return [self.first[name] - start for name, start in since.items() if name in self.first]
