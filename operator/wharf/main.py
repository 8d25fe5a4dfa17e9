"""`wharf run`: the operator's entry point (what the Helm chart's Deployment runs)."""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import socket
import sys

import kopf

from wharf import __version__
from wharf.config import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wharf", description="Cloud Foundry-style image apps on Kubernetes")
    parser.add_argument("--version", action="version", version=f"wharf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the operator")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)")
    peering = run.add_mutually_exclusive_group()
    peering.add_argument("--peering", default=None, help="kopf peering name, for a standby replica's failover")
    peering.add_argument("--standalone", action="store_true", help="no peering (one replica)")
    run.add_argument("--liveness", default=None, help="health endpoint URL, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument(
        "--priority",
        type=int,
        default=None,
        help="kopf peering priority (the highest live peer runs, the others pause); default with --peering: a "
        "stable hash of $POD_ID (else the hostname) so replicas differ, else 0",
    )
    return parser


def default_priority(peering: str | None, pod_id: str | None = None) -> int:
    """0 without peering. With peering, a stable 31-bit hash of the pod's name: kopf pauses every peer that sees
    another live peer of the same priority, so replicas with one fixed priority would all pause."""
    if peering is None:
        return 0
    identity = pod_id or os.environ.get("POD_ID") or socket.gethostname()
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:4], "big") & 0x7FFFFFFF


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    kopf.configure(
        verbose=settings.log_level.upper() == "DEBUG",
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    logging.getLogger().setLevel(settings.log_level.upper())
    if settings.log_level.upper() != "DEBUG":
        # httpx says every request at INFO: at scale, one line per request is most of the operator's log and CPU.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    import wharf.handlers.operator  # noqa: F401  (registers the handlers with kopf)

    namespaces = args.namespace or list(settings.namespaces)
    kopf.run(
        standalone=args.standalone or args.peering is None,
        peering_name=args.peering,
        priority=args.priority if args.priority is not None else default_priority(args.peering),
        liveness_endpoint=args.liveness,
        clusterwide=not namespaces,
        namespaces=namespaces,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
