"""The `wharf` command line as a user runs it: its own process, against the real control plane's kubeconfig."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
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
