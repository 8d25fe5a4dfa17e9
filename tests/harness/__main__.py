"""`python -m harness up|down|status --dir DIR`: the test control plane (+ pull agent) for a person.

    cd tests && ../.venv/bin/python -m harness up --dir /tmp/wharf-cluster [--insecure 127.0.0.1:5000] \\
        [--ca-file registry-ca.crt]
    export KUBECONFIG=/tmp/wharf-cluster/admin.kubeconfig          # printed by `up`
    ../.venv/bin/python -m harness down --dir /tmp/wharf-cluster     # from another shell, or Ctrl-C `up`

`up` stays in the foreground until Ctrl-C / SIGTERM, then stops everything. It writes DIR/state.json
(pid, kubeconfig, process groups) for `down`, which SIGTERMs `up` and, if `up` is gone or stuck, the process
groups it recorded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from harness.controlplane import ControlPlane, terminate_groups
from harness.fixtures_cluster import locate_binaries
from harness.pull_agent import PullAgent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def up(args: argparse.Namespace) -> int:
    workdir: Path = args.dir.resolve()
    state_file = workdir / "state.json"
    if state_file.exists():
        old = json.loads(state_file.read_text())
        if _alive(old["pid"]):
            print(f"already running (pid {old['pid']}): export KUBECONFIG={old['kubeconfig']}", file=sys.stderr)
            return 1
    workdir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())

    bin_dir = args.bin_dir or locate_binaries()
    cp = ControlPlane(workdir, bin_dir, nodes=args.nodes)
    agent: PullAgent | None = None
    try:
        started = time.monotonic()
        cp.start()
        agent = PullAgent(cp.kubeconfig, ca_files=args.ca_file, insecure=args.insecure).start()
        state_file.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "kubeconfig": str(cp.kubeconfig),
                    "server": cp.server,
                    "bin_dir": str(bin_dir),
                    "pgids": cp.pgids,
                    "logs": str(workdir / "logs"),
                },
                indent=2,
            )
        )
        print(f"# control plane up in {time.monotonic() - started:.1f}s; logs in {workdir / 'logs'}", flush=True)
        print(f"export KUBECONFIG={cp.kubeconfig}", flush=True)
        print(f"export PATH={bin_dir}:$PATH", flush=True)
        while not stop.wait(1.0):
            dead = [p.name for p in cp.procs if not p.alive()]
            if dead:
                print(f"# exited: {', '.join(dead)}; stopping (see {workdir / 'logs'})", file=sys.stderr)
                return 1
        return 0
    finally:
        if agent:
            agent.stop()
        cp.stop()
        state_file.unlink(missing_ok=True)
        print("# control plane stopped", file=sys.stderr)


def down(args: argparse.Namespace) -> int:
    state_file = args.dir.resolve() / "state.json"
    if not state_file.exists():
        print(f"nothing running in {args.dir}", file=sys.stderr)
        return 0
    state = json.loads(state_file.read_text())
    pid = int(state["pid"])
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + args.timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    terminate_groups(state.get("pgids", []), timeout=5)  # no-op when `up` cleaned up; else the leftovers
    state_file.unlink(missing_ok=True)
    print("stopped")
    return 0


def status(args: argparse.Namespace) -> int:
    state_file = args.dir.resolve() / "state.json"
    if not state_file.exists() or not _alive(json.loads(state_file.read_text())["pid"]):
        print("not running")
        return 1
    print(f"running: export KUBECONFIG={json.loads(state_file.read_text())['kubeconfig']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description="wharf's test control plane")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start etcd, apiserver, controllers, scheduler, kwok and the pull agent")
    p_up.add_argument("--dir", type=Path, required=True, help="work dir: certs, kubeconfig, etcd data, logs")
    p_up.add_argument("--bin-dir", type=Path, help="binaries (default: $WHARF_BIN_DIR or build-binaries.sh)")
    p_up.add_argument("--nodes", type=int, default=1, help="number of fake nodes")
    p_up.add_argument("--ca-file", type=Path, action="append", default=[], help="registry CA the nodes trust")
    p_up.add_argument("--insecure", action="append", default=[], help="host:port the nodes reach over HTTP")
    p_up.set_defaults(func=up)
    p_down = sub.add_parser("down", help="stop a control plane started with `up --dir DIR`")
    p_down.add_argument("--dir", type=Path, required=True)
    p_down.add_argument("--timeout", type=float, default=30.0)
    p_down.set_defaults(func=down)
    p_status = sub.add_parser("status", help="is `up --dir DIR` running?")
    p_status.add_argument("--dir", type=Path, required=True)
    p_status.set_defaults(func=status)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
