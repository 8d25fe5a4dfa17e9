"""pytest plugin: `kubelet` (session): the kubelet's own `$(VAR)` expansion (harness.kubelet), built on first use."""

from __future__ import annotations

import pytest

from harness.kubelet import Kubelet, build


@pytest.fixture(scope="session")
def kubelet() -> Kubelet:
    return Kubelet(build())
