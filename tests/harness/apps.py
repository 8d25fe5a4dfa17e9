"""App resources for the tests: one way to write an App's body."""

from __future__ import annotations

from typing import Any


def app_resource(
    name: str,
    namespace: str,
    image: str,
    /,
    *,
    labels: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
    **manifest: Any,
) -> dict[str, Any]:
    """An App running `image` with these CF manifest keys (as given, CF's own spelling, `name` included: the first
    three parameters are positional only); `labels` on the App, `spec` for its other fields
    (dockerPasswordSecretRef, imagePullSecrets, ...)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = labels
    return {
        "apiVersion": "wharf.dev/v1alpha1",
        "kind": "App",
        "metadata": metadata,
        "spec": {"dockerImage": image, **(spec or {}), "manifest": manifest},
    }
