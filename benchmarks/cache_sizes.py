"""Benchmark helper (not a test): what the operator's caches hold per App, from live objects of a running cluster.

For up to 50 Apps of a namespace and their Deployments, Services and pods: the deep size (sys.getsizeof, recursively)
of each object as the apiserver sends it and as wharf's cache keeps it (wharf.handlers.cache.strip_*), the part of
the operator's memory per App that docs/performance.md accounts for.
Usage: `python benchmarks/cache_sizes.py --kubeconfig K --kubectl PATH --namespace NS` (e.g. a scale run's
DIR/cluster/admin.kubeconfig while its Apps exist).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "operator")]

from wharf.handlers.cache import strip_app, strip_owned, strip_pod  # noqa: E402

SAMPLE = 50
KINDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "apps.wharf.dev": strip_app,
    "deployments": strip_owned,
    "services": strip_owned,
    "pods": strip_pod,
}


def deep_size(obj: object, seen: set[int] | None = None) -> int:
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set):
        size += sum(deep_size(item, seen) for item in obj)
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("--namespace", required=True)
    args = parser.parse_args()
    total = 0.0
    for kind, strip in KINDS.items():
        command = [args.kubectl, f"--kubeconfig={args.kubeconfig}", "get", kind, "-n", args.namespace, "-o", "json"]
        items = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)["items"]
        items = items[:SAMPLE]
        full = sum(deep_size(item) for item in items) / len(items) / 1024
        kept = sum(deep_size(strip(item)) for item in items) / len(items) / 1024
        total += kept
        print(f"{kind:16s} {len(items)} objects: {full:6.1f} KiB as sent, {kept:6.1f} KiB cached")
    print(f"cached per App (one of each): {total:.1f} KiB")


if __name__ == "__main__":
    main()
