"""The `wharf` command line as a user runs it: its own process, against the real control plane's kubeconfig."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli_env(kubeconfig: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a `wharf` process: this checkout's package, the cluster's kubeconfig, no stray
    CF_DOCKER_PASSWORD, a short start-up timeout (CF_STARTUP_TIMEOUT is in minutes, as the cf CLI reads it)."""
    env = {k: v for k, v in os.environ.items() if k != "CF_DOCKER_PASSWORD"}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "KUBECONFIG": str(kubeconfig),
            "CF_STARTUP_TIMEOUT": "1.5",
            "COLUMNS": "200",
        }
    )
    env.update(extra or {})
    return env


def wharf_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "wharf.main", *args]


def run_wharf(
    kubeconfig: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 150,
) -> subprocess.CompletedProcess[str]:
    """`wharf ARGS`, its output captured (not a terminal: plain lines)."""
    return subprocess.run(
        wharf_command(*args),
        env=cli_env(kubeconfig, env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class Interrupted:
    """A `wharf` process stopped with Ctrl-C: its output before the signal, then the rest, and its exit code."""

    seen: str
    out: str
    err: str
    returncode: int


def interrupt_when(
    args: list[str], env: Mapping[str, str], done: Callable[[str], bool], timeout: float, exit_timeout: float
) -> Interrupted:
    """Run `args`, read its output until `done(output so far)` or `timeout` seconds, then send SIGINT (a user's
    Ctrl-C) and wait up to `exit_timeout` for it to exit; killed if it does not."""
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        seen = ""
        deadline = time.monotonic() + timeout
        while not done(seen) and time.monotonic() < deadline:
            seen += process.stdout.readline()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=exit_timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return Interrupted(seen, out, err, process.returncode)
