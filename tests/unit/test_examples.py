"""examples/ stay valid (S1), and docs/manifest.md only cites tests that exist.

Every file in examples/ parses as an App (the model the operator uses, which agrees with the CRD) and renders into
schema-valid, PodSecurity-`restricted` objects against a sample image. tests/integration/test_app_manifest.py
applies the same files on a real cluster.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from render_support import assert_restricted, make_facts, schema_problems

from wharf.api.app import API_VERSION, KIND, App
from wharf.config import Settings
from wharf.render import render

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
MANIFEST_DOC = ROOT / "docs" / "manifest.md"


def load(path: Path) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert len(docs) == 1, f"{path.name}: one App per file"
    body: dict[str, Any] = docs[0]
    return body


def test_there_are_examples() -> None:
    assert {p.name for p in EXAMPLES} >= {"minimal-app.yaml", "realistic-app.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_parses_and_renders(path: Path) -> None:  # S1
    body = load(path)
    assert body["apiVersion"] == API_VERSION
    assert body["kind"] == KIND
    body["metadata"]["uid"] = "0f0e0d0c-0000-4000-8000-00000000000e"
    app = App.from_resource(body)
    facts = make_facts(
        (8080,), user="101", entrypoint=("/docker-entrypoint.sh",), cmd=("nginx",), reference=app.spec.image
    )
    rendered = render(app, facts, Settings(), service_credentials={})
    kinds = [o["kind"] for o in rendered.objects]
    assert kinds.count("Service") == 1
    assert kinds.count("Deployment") == 1 + len([p for p in app.spec.manifest.processes if p.type != "web"])
    for obj in rendered.objects:
        assert schema_problems(obj) == [], obj["metadata"]["name"]
    assert_restricted(rendered)


def test_realistic_example_exercises_the_common_keys() -> None:
    manifest = load(ROOT / "examples" / "realistic-app.yaml")["spec"]["manifest"]
    for key in ("processes", "env", "routes", "health-check-type", "buildpacks", "services", "memory", "instances"):
        assert key in manifest, key
    app = App.from_resource({**load(ROOT / "examples" / "realistic-app.yaml")})
    rendered = render(app, make_facts((8080,)), Settings(), service_credentials={})
    assert any("buildpacks is ignored" in w.message for w in rendered.warnings)  # S2: the example shows the warning


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
    }


def test_manifest_doc_cites_only_existing_tests() -> None:
    cited = set(re.findall(r"(tests/[\w/]+\.py)::(\w+)", MANIFEST_DOC.read_text()))
    assert len(cited) >= 10, "docs/manifest.md should back its rows with tests"
    missing = [
        f"{file}::{name}"
        for file, name in sorted(cited)
        if not (ROOT / file).exists() or name not in _tests_in(ROOT / file)
    ]
    assert missing == []
