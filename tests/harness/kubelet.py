"""The kubelet's own `$(VAR)` expansion, for tests: what a rendered container really starts with.

The kubelet rewrites a container's `command`, `args` and env `value`s, and exec probe commands, before they run
(`$(VAR)` -> the value, `$$` -> `$`). `tests/cluster/gobuild/cmd/kubelet-expand` runs the kubelet's code for it
(k8s.io/kubernetes at the version tests/cluster/build-binaries.sh builds); `build()` compiles it once into the
cache build-binaries.sh uses (~/.cache/wharf, or $WHARF_CACHE), keyed by its sources. A cold build (an empty Go
build cache) took 1.5 to 2 minutes on 2 busy cores; with the control plane built before, seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GOBUILD = Path(__file__).resolve().parents[1] / "cluster" / "gobuild"
PACKAGE = "./cmd/kubelet-expand"
SOURCES = (GOBUILD / "cmd" / "kubelet-expand" / "main.go", GOBUILD / "go.mod", GOBUILD / "go.sum")
BUILD_TIMEOUT = 1800  # seconds: a cold build compiles a good part of k8s.io/kubernetes on 2 shared cores


def build() -> Path:
    """The kubelet-expand binary, built if the cache has none for these sources."""
    digest = hashlib.sha256()
    for source in SOURCES:
        digest.update(source.read_bytes())
    cache = Path(os.environ.get("WHARF_CACHE") or Path.home() / ".cache" / "wharf")
    binary = cache / "bin" / f"kubelet-expand-{digest.hexdigest()[:16]}"
    if binary.is_file():
        return binary
    go = shutil.which("go")
    # The Go toolchain builds the control plane too (build-binaries.sh): a missing one is a broken setup.
    assert go, "go is not installed: tests/cluster/build-binaries.sh needs it too"
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
    # As build-binaries.sh builds: the machine's Go, the module graph gobuild/go.mod pins.
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    # -buildvcs=false: the binary is keyed by its sources, not by the checkout's git state.
    command = [go, "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", str(partial), PACKAGE]
    out = subprocess.run(command, cwd=GOBUILD, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    if out.returncode != 0:
        raise RuntimeError(f"building kubelet-expand failed ({out.returncode}):\n{out.stderr[-4000:]}")
    partial.replace(binary)
    return binary


@dataclass(frozen=True)
class Started:
    """One container as the kubelet starts it."""

    env: dict[str, str]  # the container's declared variables, valueFrom resolved, values expanded
    command: list[str]
    args: list[str]
    probes: dict[str, list[str]]  # probe field (livenessProbe, ...) -> its exec command, as the prober runs it


@dataclass(frozen=True)
class Kubelet:
    binary: Path

    def start(
        self,
        containers: list[dict[str, Any]],
        resolved: Mapping[str, str] | None = None,
        service_env: Mapping[str, str] | None = None,
    ) -> list[Started]:
        """Each container (rendered dicts) as the kubelet starts it. `resolved` gives every `valueFrom` variable's
        value (the downward API's, a Secret's: the test chooses); `service_env` the service variables
        (KUBERNETES_SERVICE_HOST, ...), which the kubelet also lets `$(VAR)` see."""
        request = {"containers": containers, "resolved": dict(resolved or {}), "serviceEnv": dict(service_env or {})}
        out = subprocess.run([self.binary], input=json.dumps(request), capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"kubelet-expand failed ({out.returncode}): {out.stderr.strip()}")
        return [
            Started(
                env=one["env"],
                command=one["command"] or [],  # Go writes an empty list as null
                args=one["args"] or [],
                probes=one["probes"],
            )
            for one in json.loads(out.stdout)["containers"]
        ]

    def start_pod(
        self,
        pod_spec: dict[str, Any],
        resolved: Mapping[str, str] | None = None,
        service_env: Mapping[str, str] | None = None,
    ) -> dict[str, Started]:
        """Every container of a pod spec, init containers included, by name."""
        containers = [*pod_spec.get("initContainers", []), *pod_spec["containers"]]
        started = self.start(containers, resolved, service_env)
        return {container["name"]: one for container, one in zip(containers, started, strict=True)}
