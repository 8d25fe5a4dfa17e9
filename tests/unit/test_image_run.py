"""harness.image_run's config.json: what a restricted pod gets, and nothing this machine's runc refuses (no
negative oomScoreAdj, RLIMIT_NOFILE not above the hard limit: root here lacks CAP_SYS_RESOURCE)."""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

from harness.image_run import Mount, restricted_config

UMOCI_LIKE: dict[str, Any] = {
    "ociVersion": "1.0.2",
    "process": {
        "user": {"uid": 65532, "gid": 65532},
        "args": ["wharf", "run"],
        "env": ["PATH=/opt/wharf/bin:/usr/bin", "PYTHONUNBUFFERED=1"],
        "cwd": "/tmp",
        "oomScoreAdj": -998,
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1 << 30, "soft": 1 << 30}],
        "capabilities": {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"]},
    },
    "root": {"path": "rootfs"},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]},
}


def test_restricted_config() -> None:
    token = Mount(Path("/tmp/sa"), "/var/run/secrets/kubernetes.io/serviceaccount")
    config = restricted_config(
        UMOCI_LIKE, args=["wharf", "run", "-A"], env={"PYTHONUNBUFFERED": "0", "X": "1"}, mounts=[token], hostname="h"
    )
    process = config["process"]
    assert process["args"] == ["wharf", "run", "-A"]
    assert process["env"] == ["PATH=/opt/wharf/bin:/usr/bin", "PYTHONUNBUFFERED=0", "X=1"]
    assert process["user"] == {"uid": 65532, "gid": 65532}  # the image's USER, as umoci resolved it
    assert "oomScoreAdj" not in process
    (nofile,) = process["rlimits"]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert nofile["soft"] == nofile["hard"] <= hard
    assert process["noNewPrivileges"] is True
    assert all(caps == [] for caps in process["capabilities"].values())
    assert config["root"] == {"path": "rootfs", "readonly": True}
    assert [n["type"] for n in config["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount"]  # host network
    mounts = {m["destination"]: m for m in config["mounts"]}
    assert mounts["/tmp"]["type"] == "tmpfs"
    assert mounts[token.destination]["source"] == "/tmp/sa"
    assert "ro" in mounts[token.destination]["options"]
    assert UMOCI_LIKE["process"]["oomScoreAdj"] == -998  # the input is left alone
