"""S1: the App CRD's spec schema (crds/app.yaml) and the pydantic model (wharf.api) are one truth.

Both are walked together: every property of the CRD's spec schema is a field (by alias) of the model at the same
place and the other way round, with compatible types, the same required keys, enums, defaults, patterns and bounds
where both state them.
"""

from __future__ import annotations

import re
import types
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import annotated_types
import pytest
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from wharf.api.app import AppSpec
from wharf.api.units import BYTE_QUANTITY_PATTERN

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "app.yaml"
FREE_FORM = "free-form"


def _crd_spec() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_PATH.read_text())
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


SPEC = _crd_spec()


# --- the model side, as a schema-like description ----------------------------------------------------------------
def _constraints(metadata: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):
            found.update(_constraints(item.metadata))
        elif isinstance(item, annotated_types.Ge):
            found["minimum"] = item.ge
        elif isinstance(item, annotated_types.Le):
            found["maximum"] = item.le
        elif isinstance(item, annotated_types.MinLen):
            found["min"] = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            found["max"] = item.max_length
        elif getattr(item, "pattern", None) is not None:
            found["pattern"] = item.pattern
    return found


def _shape(annotation: Any, metadata: list[Any]) -> dict[str, Any]:
    """{types, enum, constraints, model, items, values} of an annotation."""
    constraints = _constraints(metadata)
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extra = get_args(annotation)
        shape = _shape(inner, [*extra, *metadata])
        return shape
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            return _shape(options[0], metadata)
        shapes = [_shape(o, []) for o in options]
        return {"types": set().union(*(s["types"] for s in shapes)), "constraints": constraints, "union": shapes}
    if origin in (tuple, list):
        return {"types": {"array"}, "constraints": constraints, "items": _shape(get_args(annotation)[0], [])}
    if origin is dict:
        return {"types": {"object"}, "constraints": constraints, "values": _shape(get_args(annotation)[1], [])}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {"types": {"object"}, "constraints": constraints, "model": annotation}
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return {"types": {"string"}, "constraints": constraints, "enum": {e.value for e in annotation}}
    simple = {str: "string", bool: "boolean", int: "integer", float: "number"}
    assert annotation in simple, f"unexpected annotation {annotation!r}"
    return {"types": {simple[annotation]}, "constraints": constraints}


def _crd_types(node: dict[str, Any]) -> set[str]:
    if node.get("x-kubernetes-int-or-string"):
        return {"integer", "string"}
    if "type" in node:
        return {node["type"]}
    assert node.get("x-kubernetes-preserve-unknown-fields"), f"untyped schema node {node}"
    return {FREE_FORM}  # anything: the operator checks the value and reports a bad one (InvalidSpec)


# --- the walk ------------------------------------------------------------------------------------------------------
def _compare(path: str, node: dict[str, Any], shape: dict[str, Any], problems: list[str]) -> None:
    crd_types = _crd_types(node)
    model_types = set(shape["types"])
    if "integer" in model_types and "number" in crd_types:
        model_types = (model_types - {"integer"}) | {"number"}
    if model_types != crd_types and crd_types != {FREE_FORM}:
        problems.append(f"{path}: CRD allows {sorted(crd_types)}, model allows {sorted(model_types)}")
    model_enum = shape.get("enum")
    alternatives = re.fullmatch(r"\^\(([-\w|]+)\)\$", shape["constraints"].get("pattern", ""))
    if model_enum is None and alternatives:  # `^(http1|http2|tcp)$` is an enum spelled as a pattern
        model_enum = set(alternatives.group(1).split("|"))
    if ("enum" in node or model_enum is not None) and set(node.get("enum", [])) != model_enum:
        problems.append(f"{path}: enum CRD {node.get('enum')} vs model {model_enum}")
    constraints = shape["constraints"]
    bounds = [("minimum", "minimum"), ("maximum", "maximum")]
    kind = next(iter(crd_types)) if len(crd_types) == 1 else ""
    sized = {
        "string": ("minLength", "maxLength"),
        "array": ("minItems", "maxItems"),
        "object": ("minProperties", "maxProperties"),
    }
    if kind in sized:
        bounds += [("min", sized[kind][0]), ("max", sized[kind][1])]
    for model_key, crd_key in bounds:
        if model_key in constraints and crd_key in node and constraints[model_key] != node[crd_key]:
            problems.append(f"{path}: {crd_key} CRD {node[crd_key]} vs model {constraints[model_key]}")
    if "pattern" in constraints and "pattern" in node and constraints["pattern"] != node["pattern"]:
        problems.append(f"{path}: pattern CRD {node['pattern']!r} vs model {constraints['pattern']!r}")
    if "model" in shape:
        _compare_model(path, node, shape["model"], problems)
    elif "items" in shape:
        if "items" not in node:
            problems.append(f"{path}: CRD array without items")
        else:
            _compare(f"{path}[]", node["items"], shape["items"], problems)
    elif "values" in shape:
        values = node.get("additionalProperties")
        if not isinstance(values, dict):
            problems.append(f"{path}: CRD map without additionalProperties")
        else:
            _compare(f"{path}{{}}", values, shape["values"], problems)
    elif "union" in shape and any("model" in o for o in shape["union"]) and crd_types != {FREE_FORM}:
        problems.append(f"{path}: a string-or-object in the model needs a free-form CRD node")


def _compare_model(path: str, node: dict[str, Any], model: type[BaseModel], problems: list[str]) -> None:
    properties: dict[str, Any] = node.get("properties", {})
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    for missing in sorted(set(properties) - set(fields)):
        problems.append(f"{path}.{missing}: in the CRD, not in {model.__name__}")
    for missing in sorted(set(fields) - set(properties)):
        problems.append(f"{path}.{missing}: in {model.__name__}, not in the CRD")
    required = {key for key, f in fields.items() if f.is_required()}
    if set(node.get("required", [])) != required:
        problems.append(f"{path}: required CRD {sorted(node.get('required', []))} vs model {sorted(required)}")
    for key in sorted(set(properties) & set(fields)):
        field = fields[key]
        _compare(f"{path}.{key}", properties[key], _shape(field.annotation, field.metadata), problems)
        default = field.default
        if "default" in properties[key]:
            value = default.value if isinstance(default, Enum) else default
            if value != properties[key]["default"]:
                problems.append(f"{path}.{key}: default CRD {properties[key]['default']} vs model {value}")
        elif default not in (None, PydanticUndefined, False, (), {}) and field.default_factory is None:
            problems.append(f"{path}.{key}: the model defaults to {default!r}, the CRD states no default")


def _problems() -> list[str]:
    problems: list[str] = []
    _compare_model("spec", SPEC, AppSpec, problems)
    return problems


def test_crd_spec_and_model_agree() -> None:
    # S1
    assert _problems() == []


@pytest.mark.parametrize(
    "path",
    [
        "manifest",
        "manifest.processes",
        "manifest.sidecars",
        "manifest.routes",
        "manifest.docker",
        "manifest.metadata",
        "dockerPasswordSecretRef",
        "imagePullSecrets",
        "manifest.services",
        "manifest.env",
    ],
)
def test_the_walk_reaches_every_nested_part(path: str) -> None:
    # S1: the nested objects named in the brief are in the CRD and get compared (not skipped)
    node = SPEC
    for part in path.split("."):
        node = node["properties"][part]
    assert node.get("properties") or node.get("items") or node.get("additionalProperties")


def test_the_walk_finds_disagreements() -> None:
    # S1: a changed CRD makes the walk complain (a walk that finds nothing proves nothing)
    global SPEC
    original = SPEC
    try:
        broken = yaml.safe_load(yaml.safe_dump(original))
        manifest = broken["properties"]["manifest"]["properties"]
        manifest["instances"]["maximum"] = 999
        manifest["processes"]["items"]["properties"]["colour"] = {"type": "string"}
        del manifest["routes"]["items"]["properties"]["protocol"]
        manifest["health-check-type"]["enum"] = ["port", "http"]
        manifest["no-route"]["type"] = "string"
        broken["properties"]["state"]["default"] = "STOPPED"
        manifest["env"]["additionalProperties"] = {"type": "string"}
        SPEC = broken
        problems = "\n".join(_problems())
    finally:
        SPEC = original
    for expected in [
        "spec.manifest.instances: maximum CRD 999 vs model 1000",
        "spec.manifest.processes[].colour: in the CRD, not in Process",
        "spec.manifest.routes[].protocol: in Route, not in the CRD",
        "spec.manifest.health-check-type: enum",
        "spec.manifest.no-route: CRD allows ['string'], model allows ['boolean']",
        "spec.state: default CRD STOPPED vs model STARTED",
        "spec.manifest.env{}: CRD allows ['string'], model allows ['integer', 'string']",
    ]:
        assert expected in problems


def _cel_pattern(rule: str) -> str:
    """The regular expression of a CEL rule's `x.matches('...')` (the CRD states CF-worded rules, not patterns)."""
    match = re.search(r"matches\('([^']*)'\)", rule)
    return match.group(1) if match else ""


def _byte_quantity_nodes(node: dict[str, Any], path: str = "spec") -> list[tuple[str, str]]:
    found = []
    for key, child in node.get("properties", {}).items():
        if key in ("memory", "disk_quota"):
            rules = [r["rule"] for r in child.get("x-kubernetes-validations", [])]
            found.append((f"{path}.{key}", next((_cel_pattern(r) for r in rules if ".matches(" in r), "")))
        found += _byte_quantity_nodes(child, f"{path}.{key}")
    if "items" in node:
        found += _byte_quantity_nodes(node["items"], f"{path}[]")
    return found


def test_byte_quantities_use_the_units_pattern() -> None:
    # S4, S20: the apiserver refuses exactly what wharf.api.units refuses, with a rule in CF's words
    nodes = _byte_quantity_nodes(SPEC)
    assert {path for path, _ in nodes} == {
        "spec.manifest.memory",
        "spec.manifest.disk_quota",
        "spec.manifest.processes[].memory",
        "spec.manifest.processes[].disk_quota",
        "spec.manifest.sidecars[].memory",
    }
    assert all(pattern == BYTE_QUANTITY_PATTERN for _, pattern in nodes)


def test_crd_status_covers_the_status_model() -> None:
    # S1: the status subresource schema names every status field the operator writes
    from wharf.api.app import AppStatus

    crd = yaml.safe_load(CRD_PATH.read_text())
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    aliases = {(f.alias or name) for name, f in AppStatus.model_fields.items()}
    assert aliases <= set(status)


def test_scale_subresource_paths_are_fields_the_model_has() -> None:
    # S4: `kubectl scale` and a HorizontalPodAutoscaler read and write the App through these paths; the HPA
    # refuses a scale without a selector ("selector is required").
    from wharf.api.app import AppStatus
    from wharf.api.manifest import Manifest

    crd = yaml.safe_load(CRD_PATH.read_text())
    scale = crd["spec"]["versions"][0]["subresources"]["scale"]
    assert scale == {
        "specReplicasPath": ".spec.manifest.instances",
        "statusReplicasPath": ".status.readyInstances",
        "labelSelectorPath": ".status.selector",
    }
    assert "instances" in Manifest.model_fields
    status_fields = {(f.alias or name): f for name, f in AppStatus.model_fields.items()}
    assert {"readyInstances", "selector"} <= set(status_fields)


def test_route_pattern_is_the_models() -> None:
    # S11: the apiserver and the operator refuse the same route strings.
    from wharf.api.manifest import ROUTE_PATTERN

    items = _crd_spec()["properties"]["manifest"]["properties"]["routes"]["items"]
    (rule,) = items["x-kubernetes-validations"]
    assert _cel_pattern(rule["rule"]) == ROUTE_PATTERN
    assert "pattern" not in items["properties"]["route"]  # S20: a refusal says what to write, not a regex
    assert "fortune-teller.example.com" in rule["messageExpression"]


def _described(node: dict[str, Any], path: str) -> list[str]:
    """Paths under `node` without a description, or whose description cites an internal rule id (S1..S20)."""
    problems = []
    for key, child in node.get("properties", {}).items():
        where = f"{path}.{key}"
        text = child.get("description", "")
        if not text:
            problems.append(f"{where}: no description")
        elif re.search(r"\(S[0-9]+\)|\bS[0-9]+\b", text):
            problems.append(f"{where}: cites a rule id: {text}")
        problems += _described(child, where)
    if "items" in node:
        problems += _described(node["items"], f"{path}[]")
    return problems


def test_kubectl_explain_describes_every_manifest_field_in_cf_words() -> None:
    # S1, S20: `kubectl explain app.spec.manifest...` has a description for every field, without rule ids
    assert _described(_crd_spec()["properties"]["manifest"], "spec.manifest") == []
    assert _described(_crd_spec(), "spec") == []
