"""An image from a registry run for real without a container engine (test-only): `skopeo copy` to an OCI layout,
`umoci unpack` into a runtime bundle (the image's own filesystem, owners and modes kept), and `runc run` of it.

The bundle's config.json is umoci's (the image config's entrypoint, env, user, working directory) with what a
restricted pod gets on top: a read-only root filesystem, no capabilities, no new privileges, a tmpfs /tmp (the
chart's emptyDir), the host's network (so it reaches the loopback control plane and registry), and read-only bind
mounts (e.g. a ServiceAccount token where the kubelet puts one). This machine's root lacks CAP_SYS_RESOURCE
(/work/shared/recipes/real-node.md): a negative oomScoreAdj or a raised RLIMIT_NOFILE makes runc fail, so the
config asks for neither (no oomScoreAdj; RLIMIT_NOFILE at most this process's hard limit).

Needs skopeo, umoci and runc (deploy/apt-packages.txt) and root. Every container is killed and deleted on stop()
and at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import resource
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNC = shutil.which("runc") or "/usr/sbin/runc"
UMOCI = shutil.which("umoci") or "/usr/bin/umoci"
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"
_LIVE: set[Container] = set()


@atexit.register
def _stop_all() -> None:
    for container in list(_LIVE):
        with contextlib.suppress(Exception):
            container.stop()


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done


def unpack(reference: str, workdir: Path, *, tls_verify: bool = True) -> Path:
    """The runtime bundle (rootfs/ + config.json) of `reference` (docker://... as skopeo names it)."""
    for tool in (SKOPEO, UMOCI, RUNC):
        assert Path(tool).exists(), f"{tool} missing: apt-get install $(cat deploy/apt-packages.txt)"
    layout, bundle = workdir / "layout", workdir / "bundle"
    _run(SKOPEO, "copy", "--quiet", f"--src-tls-verify={str(tls_verify).lower()}", reference, f"oci:{layout}:run")
    _run(UMOCI, "unpack", "--image", f"{layout}:run", str(bundle))
    return bundle


@dataclass(frozen=True)
class Mount:
    source: Path
    destination: str


@dataclass(eq=False)
class Container:
    name: str
    bundle: Path
    state_root: Path
    process: subprocess.Popen[bytes]
    log_file: Path

    def state(self) -> dict[str, Any]:
        out = _run(RUNC, "--root", str(self.state_root), "state", self.name, timeout=30)
        state: dict[str, Any] = json.loads(out.stdout)
        return state

    def proc(self, entry: str) -> str:
        """/proc/<the container's first process>/<entry>, as the host sees it."""
        return Path(f"/proc/{self.state()['pid']}/{entry}").read_text(errors="replace")

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 15) -> None:
        _LIVE.discard(self)
        runc = [RUNC, "--root", str(self.state_root)]
        if self.process.poll() is None:
            subprocess.run([*runc, "kill", self.name, "TERM"], capture_output=True, timeout=30, check=False)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                subprocess.run(
                    [*runc, "kill", "--all", self.name, "KILL"], capture_output=True, timeout=30, check=False
                )
                self.process.wait(30)
        subprocess.run([*runc, "delete", "--force", self.name], capture_output=True, timeout=30, check=False)


def restricted_config(
    config: dict[str, Any],
    *,
    args: Sequence[str] | None,
    env: Mapping[str, str],
    mounts: Sequence[Mount],
    hostname: str,
) -> dict[str, Any]:
    """umoci's config.json, changed as described above (pure: returns a new dict)."""
    config = json.loads(json.dumps(config))
    process = config["process"]
    if args is not None:
        process["args"] = list(args)
    image_env = dict(item.split("=", 1) for item in process.get("env", []))
    process["env"] = [f"{k}={v}" for k, v in {**image_env, **env}.items()]
    process["terminal"] = False
    process["noNewPrivileges"] = True
    process["capabilities"] = {k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")}
    process.pop("oomScoreAdj", None)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limits = [r for r in process.get("rlimits", []) if r["type"] != "RLIMIT_NOFILE"]
    nofile = min(1024, hard) if hard != resource.RLIM_INFINITY else 1024
    process["rlimits"] = [*limits, {"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}]
    config["root"] = {"path": "rootfs", "readonly": True}
    config["hostname"] = hostname
    linux = config.setdefault("linux", {})
    # The host's network; the rest (pid, ipc, uts, mount) stays the container's own.
    linux["namespaces"] = [n for n in linux.get("namespaces", []) if n["type"] not in ("network", "user")]
    linux.pop("uidMappings", None)
    linux.pop("gidMappings", None)
    config["mounts"] = [
        *(m for m in config.get("mounts", []) if m["destination"] not in ("/tmp", *(x.destination for x in mounts))),
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]},
        *(
            {"destination": m.destination, "type": "bind", "source": str(m.source), "options": ["rbind", "ro"]}
            for m in mounts
        ),
    ]
    return config


def run(
    bundle: Path,
    log_file: Path,
    *,
    args: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    mounts: Sequence[Mount] = (),
) -> Container:
    """`runc run` of the bundle in the background, its output in `log_file`."""
    name = f"wharf-test-{uuid.uuid4().hex[:8]}"
    config_file = bundle / "config.json"
    original = bundle / "config.umoci.json"
    if not original.exists():
        shutil.copy(config_file, original)
    config = restricted_config(json.loads(original.read_text()), args=args, env=env or {}, mounts=mounts, hostname=name)
    config_file.write_text(json.dumps(config, indent=2))
    state_root = bundle.parent / "runc-state"
    state_root.mkdir(exist_ok=True)
    process = subprocess.Popen(
        [RUNC, "--root", str(state_root), "run", "--bundle", str(bundle), name],
        stdin=subprocess.DEVNULL,
        stdout=log_file.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    container = Container(name, bundle, state_root, process, log_file)
    _LIVE.add(container)
    return container
