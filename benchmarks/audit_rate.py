"""Benchmark helper (not a test): how fast the apiserver served each client of a scale run, from its audit log.

`benchmarks/scale.py run --workdir DIR` leaves the audit log (level Metadata, the operator's and the raw client's
users) in DIR/cluster/logs/audit.log. For each user this prints the requests (watches aside), and over the busiest
60 s the requests per second and the mean apiserver latency (requestReceived -> ResponseComplete): what
docs/performance.md uses to say what bounds the operator (in-flight requests / latency).
Usage: `python benchmarks/audit_rate.py /tmp/bench/n1000/cluster/logs/audit.log`
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
from pathlib import Path

WINDOW_S = 60
BUCKET_S = 10


def _at(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def rates(log: Path) -> dict[str, tuple[int, float, float]]:
    """user -> (requests, requests/s over the busiest minute, mean latency in s over it)."""
    by_user: dict[str, list[tuple[dt.datetime, float]]] = collections.defaultdict(list)
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event.get("stage") != "ResponseComplete" or event.get("verb") == "watch":
            continue
        received = _at(event["requestReceivedTimestamp"])
        latency = (_at(event["stageTimestamp"]) - received).total_seconds()
        by_user[event["user"]["username"]].append((received, latency))
    result = {}
    for user, requests in by_user.items():
        requests.sort()
        start = requests[0][0]
        buckets: dict[int, list[float]] = collections.defaultdict(list)
        for received, latency in requests:
            buckets[int((received - start).total_seconds() // BUCKET_S)].append(latency)
        span = WINDOW_S // BUCKET_S
        first = max(buckets, key=lambda b: sum(len(buckets.get(b + i, [])) for i in range(span)))
        window = [latency for i in range(span) for latency in buckets.get(first + i, [])]
        result[user] = (len(requests), len(window) / WINDOW_S, sum(window) / len(window))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audit_log", type=Path)
    args = parser.parse_args()
    for user, (count, per_second, latency) in sorted(rates(args.audit_log).items()):
        busiest = f"busiest {WINDOW_S} s: {per_second:.0f}/s, mean latency {latency * 1000:.0f} ms"
        print(f"{user}: {count} requests; {busiest}")


if __name__ == "__main__":
    main()
