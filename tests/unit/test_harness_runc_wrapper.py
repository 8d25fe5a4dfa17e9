"""harness/runc-wrapper: the OCI process spec clamped to what root without CAP_SYS_RESOURCE may set, nothing else."""

from __future__ import annotations

import json
import os
import resource
import subprocess
from pathlib import Path

WRAPPER = Path(__file__).resolve().parents[1] / "harness" / "runc-wrapper"


def _run(args: list[str], cwd: Path, fake_runc: Path) -> str:
    env = {**os.environ, "WHARF_RUNC": str(fake_runc)}
    return subprocess.run([str(WRAPPER), *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


def _fake_runc(tmp_path: Path) -> Path:
    runc = tmp_path / "runc"
    runc.write_text('#!/bin/sh\necho "runc $*"\n')
    runc.chmod(0o755)
    return runc


def test_create_clamps_oom_score_adj_and_nofile_and_passes_every_argument(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    spec = {
        "ociVersion": "1.0.2",
        "process": {
            "args": ["sh"],
            "oomScoreAdj": -998,
            "rlimits": [
                {"type": "RLIMIT_NOFILE", "hard": hard + 1000, "soft": hard + 1000},
                {"type": "RLIMIT_NPROC", "hard": 99, "soft": 99},
            ],
        },
        "root": {"path": "rootfs"},
    }
    (bundle / "config.json").write_text(json.dumps(spec))
    args = ["--root", "/run/x", "--log-format", "json", "create", "--bundle", str(bundle), "--pid-file", "p", "id1"]
    assert _run(args, tmp_path, _fake_runc(tmp_path)).strip() == "runc " + " ".join(args)
    process = json.loads((bundle / "config.json").read_text())["process"]
    assert process["oomScoreAdj"] == 0
    assert process["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": hard, "soft": hard},
        {"type": "RLIMIT_NPROC", "hard": 99, "soft": 99},
    ]
    assert json.loads((bundle / "config.json").read_text())["root"] == {"path": "rootfs"}


def test_exec_clamps_the_process_file_and_a_spec_within_limits_is_left_as_it_is(tmp_path: Path) -> None:
    process_file = tmp_path / "process.json"
    process_file.write_text(json.dumps({"args": ["id"], "oomScoreAdj": -1}))
    _run(["exec", "--process", str(process_file), "id1"], tmp_path, _fake_runc(tmp_path))
    assert json.loads(process_file.read_text()) == {"args": ["id"], "oomScoreAdj": 0}

    fine = '{"process": {"args": ["sh"], "oomScoreAdj": 5}}'
    (tmp_path / "config.json").write_text(fine)
    _run(["create", "id2"], tmp_path, _fake_runc(tmp_path))  # bundle = the working directory
    assert (tmp_path / "config.json").read_text() == fine  # untouched, byte for byte
