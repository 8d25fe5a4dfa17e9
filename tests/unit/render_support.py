"""Shared helpers of the renderer and status unit tests: App/ImageFacts builders, the PodSecurity `restricted`
profile as a checker (S7, S8), and a round trip through the `kubernetes` package's models (the OpenAPI schema).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from kubernetes.client import ApiClient

from harness.restricted import restricted_violations
from wharf.api.app import App, AppSpec
from wharf.api.image import ExposedPort, ImageFacts
from wharf.config import Settings
from wharf.render import Rendered, render

DIGEST = "sha256:" + "ab" * 32
NAMESPACE = "space"
UID = "0f0e0d0c-0000-4000-8000-000000000001"


def make_app(manifest: dict[str, Any] | None = None, *, name: str = "shop", generation: int = 1, **spec: Any) -> App:
    body: dict[str, Any] = {"dockerImage": "registry.example.com:5000/team/shop:1.0", **spec}
    if manifest is not None:
        body["manifest"] = manifest
    return App(name=name, namespace=NAMESPACE, uid=UID, generation=generation, spec=AppSpec.model_validate(body))


def make_facts(
    ports: tuple[int | str, ...] = (),
    *,
    user: str = "1000",
    entrypoint: tuple[str, ...] | None = ("/bin/server",),
    cmd: tuple[str, ...] | None = None,
    workdir: str = "",
    env: tuple[str, ...] = (),
    reference: str = "registry.example.com:5000/team/shop:1.0",
    created: datetime | None = None,
) -> ImageFacts:
    """`ports` entries are numbers (tcp) or docker's `"53/udp"` spelling."""
    exposed = []
    for entry in ports:
        number, _, protocol = str(entry).partition("/")
        exposed.append(ExposedPort(port=int(number), protocol=protocol or "tcp"))  # type: ignore[arg-type]
    return ImageFacts(
        reference=reference,
        digest=DIGEST,
        exposed_ports=tuple(exposed),
        user=user,
        entrypoint=entrypoint,
        cmd=cmd,
        workdir=workdir,
        env=env,
        created=created,
    )


def render_ok(
    app: App | None = None, facts: ImageFacts | None = None, settings: Settings | None = None, **kwargs: Any
) -> Rendered:
    return render(app or make_app(), facts or make_facts(), settings or Settings(), **kwargs)


def of_kind(rendered: Rendered, kind: str) -> list[dict[str, Any]]:
    return [o for o in rendered.objects if o["kind"] == kind]


def deployment(rendered: Rendered, process_type: str = "web") -> dict[str, Any]:
    found = [o for o in of_kind(rendered, "Deployment") if o["metadata"]["name"].endswith(f"-{process_type}")]
    assert len(found) == 1, f"expected one Deployment for {process_type}"
    return found[0]


def pod_specs(rendered: Rendered) -> Iterator[dict[str, Any]]:
    for obj in of_kind(rendered, "Deployment"):
        yield obj["spec"]["template"]["spec"]


def main_container(rendered: Rendered, process_type: str = "web") -> dict[str, Any]:
    container: dict[str, Any] = deployment(rendered, process_type)["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "app"
    return container


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name -> value (a string) or the valueFrom mapping."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# --- PodSecurity `restricted`: the checker lives in harness.restricted ----------------------------------------


def assert_restricted(rendered: Rendered) -> None:
    specs = list(pod_specs(rendered))
    assert specs, "no pod spec rendered"
    for spec in specs:
        assert restricted_violations(spec) == []


# --- The Kubernetes OpenAPI schema, through the `kubernetes` package's (pydantic) models ---------------------------
MODEL_OF_KIND = {
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("v1", "Secret"): "V1Secret",
    ("networking.k8s.io/v1", "Ingress"): "V1Ingress",
}
_API = ApiClient()

# Gateway API v1 HTTPRoute (not in the kubernetes package): the fields wharf uses, from the Gateway API types.
_NAME = {"type": "string", "minLength": 1, "maxLength": 253}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
HTTPROUTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "gateway.networking.k8s.io/v1"},
        "kind": {"const": "HTTPRoute"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "parentRefs": {
                    "type": "array",
                    "maxItems": 32,
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "group": {"type": "string"},
                            "kind": {"type": "string"},
                            "namespace": {"type": "string", "minLength": 1, "maxLength": 63},
                            "name": _NAME,
                            "sectionName": {"type": "string"},
                            "port": _PORT,
                        },
                    },
                },
                "hostnames": {
                    "type": "array",
                    "maxItems": 16,
                    "items": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 253,
                        "pattern": r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                    },
                },
                "rules": {
                    "type": "array",
                    "maxItems": 16,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "matches": {
                                "type": "array",
                                "maxItems": 64,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "path": {
                                            "type": "object",
                                            "additionalProperties": False,
                                            "properties": {
                                                "type": {"enum": ["Exact", "PathPrefix", "RegularExpression"]},
                                                "value": {"type": "string", "pattern": "^/", "maxLength": 1024},
                                            },
                                        }
                                    },
                                },
                            },
                            "backendRefs": {
                                "type": "array",
                                "maxItems": 16,
                                "items": {
                                    "type": "object",
                                    "required": ["name"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "group": {"type": "string"},
                                        "kind": {"type": "string"},
                                        "name": _NAME,
                                        "namespace": {"type": "string"},
                                        "port": _PORT,
                                        "weight": {"type": "integer", "minimum": 0},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def schema_problems(obj: dict[str, Any]) -> list[str]:
    """Why `obj` is not a valid object of its kind: a type error, a missing required field, or a field the schema
    does not know (the models drop unknown fields silently, so a round trip that loses data found one)."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key == ("gateway.networking.k8s.io/v1", "HTTPRoute"):
        import jsonschema

        return [e.message for e in jsonschema.Draft202012Validator(HTTPROUTE_SCHEMA).iter_errors(obj)]
    model = MODEL_OF_KIND.get(key)  # type: ignore[arg-type]
    if model is None:
        return [f"no schema known for {key}"]
    try:
        parsed = _API.deserialize(json.dumps(obj), model, None)
    except Exception as error:  # pydantic's ValidationError: a wrong type or a missing required field
        return [f"{model}: {error}"]
    back = _API.sanitize_for_serialization(parsed)
    if back != obj:
        return [f"{model}: round trip changed the object (unknown or mistyped fields): {_diff(obj, back)}"]
    return []


def _diff(want: Any, got: Any, path: str = "") -> str:
    if isinstance(want, dict) and isinstance(got, dict):
        for k in sorted(set(want) | set(got)):
            if want.get(k) != got.get(k):
                return _diff(want.get(k), got.get(k), f"{path}.{k}")
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for i, (a, b) in enumerate(zip(want, got, strict=True)):
            if a != b:
                return _diff(a, b, f"{path}[{i}]")
    return f"{path}: {want!r} -> {got!r}"
