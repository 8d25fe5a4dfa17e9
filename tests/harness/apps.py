"""App resources for the tests: one way to write an App's body."""

from __future__ import annotations

from typing import Any


def app_resource(name: str, namespace: str, image: str, **manifest: Any) -> dict[str, Any]:
    """An App running `image` with these CF manifest keys (as given, CF's own spelling)."""
    return {
        "apiVersion": "wharf.dev/v1alpha1",
        "kind": "App",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"dockerImage": image, "manifest": manifest},
    }
