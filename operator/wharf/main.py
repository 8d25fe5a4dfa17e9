"""`wharf run`: the operator's entry point (what the Helm chart's Deployment runs)."""

from __future__ import annotations

import argparse
import logging
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    kopf.configure(
        verbose=settings.log_level.upper() == "DEBUG",
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    logging.getLogger().setLevel(settings.log_level.upper())
    import wharf.handlers.operator  # noqa: F401  (registers the handlers with kopf)

    namespaces = args.namespace or list(settings.namespaces)
    kopf.run(
        standalone=args.standalone or args.peering is None,
        peering_name=args.peering,
        liveness_endpoint=args.liveness,
        clusterwide=not namespaces,
        namespaces=namespaces,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
