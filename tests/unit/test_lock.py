"""The lock files (requirements/*.lock, made by scripts/lock.sh) pin everything pyproject.toml asks for, with
hashes, at one version per package; the image, CI and the local run install from them.

A dependency added to or changed in pyproject.toml without `bash scripts/lock.sh` fails here, with that command.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
OPERATOR_LOCK = REPO / "requirements" / "operator.lock"
DEV_LOCK = REPO / "requirements" / "dev.lock"
BUILD_IN = REPO / "requirements" / "build.in"
FIX = "run `bash scripts/lock.sh` and commit requirements/"

# One entry: `name==version [; marker] \` followed by `--hash=sha256:...` continuation lines.
ENTRY = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?:\s*;[^\\]*)?\s*\\\n((?:\s+--hash=sha256:[0-9a-f]{64}\s*\\?\n?)+)", re.M
)


def pins(lock: Path) -> dict[str, tuple[str, int]]:
    """canonical name -> (version, number of hashes)."""
    text = lock.read_text()
    found = {canonicalize_name(m[1]): (m[2], m[3].count("--hash=")) for m in ENTRY.finditer(text)}
    listed = re.findall(r"^[A-Za-z0-9][A-Za-z0-9._-]*==", text, re.M)
    assert len(found) == len(listed), f"{lock.name}: an entry without hashes or in an unexpected form"
    return found


def requirements(names: list[str], extras: set[str] = frozenset()) -> list[Requirement]:  # type: ignore[assignment]
    """The requirements, with this project's own extras (`wharf[test]`) expanded."""
    out: list[Requirement] = []
    for text in names:
        req = Requirement(text)
        if canonicalize_name(req.name) == canonicalize_name(PYPROJECT["project"]["name"]):
            for extra in req.extras - extras:
                out += requirements(PYPROJECT["project"]["optional-dependencies"][extra], extras | req.extras)
        else:
            out.append(req)
    return out


def build_requirements() -> list[str]:
    return [line.split("#")[0].strip() for line in BUILD_IN.read_text().splitlines() if line.split("#")[0].strip()]


RUNTIME = requirements(PYPROJECT["project"]["dependencies"])
DEV = RUNTIME + requirements(PYPROJECT["project"]["optional-dependencies"]["dev"])
BUILD = requirements(PYPROJECT["build-system"]["requires"])


@pytest.mark.parametrize(
    ("lock", "wanted"),
    [(OPERATOR_LOCK, RUNTIME + BUILD), (DEV_LOCK, DEV + BUILD)],
    ids=["operator.lock", "dev.lock"],
)
def test_the_lock_pins_what_pyproject_asks_for(lock: Path, wanted: list[Requirement]) -> None:
    pinned = pins(lock)
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req} (pyproject.toml) is not in {lock.name}: {FIX}"
        version, hashes = pinned[name]
        assert req.specifier.contains(version, prereleases=True), (
            f"{lock.name} pins {name}=={version}, not {req}: {FIX}"
        )
        assert hashes >= 1


def test_build_in_is_the_build_system() -> None:
    assert sorted(build_requirements()) == sorted(PYPROJECT["build-system"]["requires"])


def test_tests_run_the_versions_the_image_ships() -> None:
    operator, dev = pins(OPERATOR_LOCK), pins(DEV_LOCK)
    assert set(operator) <= set(dev)
    assert {n: operator[n][0] for n in operator} == {n: dev[n][0] for n in operator}


def test_every_install_uses_the_locks_with_hashes() -> None:
    dockerfile = (REPO / "operator" / "Dockerfile").read_text()
    assert "pip install --no-compile --require-hashes --no-deps -r requirements/operator.lock" in dockerfile
    assert "pip install --no-compile --no-deps --no-build-isolation ." in dockerfile
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "pip install -q --require-hashes -r requirements/dev.lock" in setup
    assert "pip install -q --no-deps --no-build-isolation -e ." in setup
    # Nothing else installs the project's dependencies unlocked.
    for script in (REPO / "scripts").glob("*.sh"):
        assert not re.search(r"pip install[^\n]*\[dev\]", script.read_text()), script.name
