"""Fixtures shared by the unit tests."""

from __future__ import annotations

import shutil

import pytest

# The shells images carry: dash (Debian's sh), BusyBox ash (Alpine's sh), bash. Scripts wharf puts into pods (the
# several-port health check, the service-binding init container) must run under each.
SHELLS = {"dash": ["dash"], "busybox": ["busybox", "sh"], "bash": ["bash"]}


@pytest.fixture(params=sorted(SHELLS))
def shell(request: pytest.FixtureRequest) -> list[str]:
    command: list[str] = SHELLS[request.param]
    # Installed by scripts/setup.sh (tests/harness/apt-packages.txt): a missing shell is a broken setup, not a skip.
    assert shutil.which(command[0]), f"{command[0]} is not installed: run scripts/setup.sh"
    return command
