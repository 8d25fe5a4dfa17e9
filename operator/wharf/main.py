"""The `wharf` console script: `wharf run` is the operator (what the Helm chart's Deployment runs); every other
command is the CF users' command line (wharf.cli: push, convert, apps, app, logs, ...)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import hashlib
import logging
import os
import secrets
import socket
import sys
from collections.abc import Mapping

import click

from wharf import __version__
from wharf.cli.commands import cli
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


def own_identity(environ: Mapping[str, str] | None = None) -> str:
    """This process's name in kopf's peering objects and logs: $POD_ID (the chart sets it to the pod's name),
    else `user@host/time/random` as kopf would make it. kopf's own fallback asks getpass.getuser(), which raises
    ("getpwuid(): uid not found") when the uid has no passwd entry and no USER/LOGNAME is set: any image run
    under an arbitrary uid (`docker run --user`, OpenShift's restricted SCC). Then the uid number names it."""
    env = os.environ if environ is None else environ
    if env.get("POD_ID"):
        return env["POD_ID"]
    user = next((env[name] for name in ("LOGNAME", "USER", "LNAME", "USERNAME") if env.get(name)), None)
    if user is None:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = f"uid-{os.getuid()}"
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    return f"{user}@{socket.gethostname()}/{now}/{secrets.token_hex(2)}"


@cli.command(
    name="run",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
)
@click.pass_context
def _run_command(ctx: click.Context) -> None:
    """Run the operator (wharf run --help for its options)."""
    sys.exit(run(["run", *ctx.args]))


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["run"]:
        return run(arguments)
    return int(cli.main(arguments, prog_name="wharf", standalone_mode=True) or 0)


def run(argv: list[str]) -> int:
    """`wharf run ...`: the operator."""
    import kopf  # here, not at the top: the CLI commands must not pay for importing the operator's framework

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
    from wharf.handlers import indexing_gate, kind_back, kind_gone, namespaces

    namespaces.install()  # new namespaces are served after an apiserver restart too (issue 11)
    indexing_gate.install()  # a namespace gone before its listing is done does not stop every handler
    kind_gone.install()  # a CRD deleted while watched ends its watches, not the operator
    kind_back.install()  # and once created again, its kind is watched again

    watched = args.namespace or list(settings.namespaces)
    kopf.run(
        standalone=args.standalone or args.peering is None,
        peering_name=args.peering,
        priority=args.priority if args.priority is not None else default_priority(args.peering),
        liveness_endpoint=args.liveness,
        identity=own_identity(),  # type: ignore[arg-type]  # kopf.Identity is a NewType of str, not exported
        clusterwide=not watched,
        namespaces=watched,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
