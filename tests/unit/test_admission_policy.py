"""S18: the admission policy checks every Secret an App can name, at every index the CRD allows (its behaviour with
real users is proven in tests/integration/test_admission_secrets.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "deploy" / "helm" / "wharf" / "admission" / "app-secret-access.yaml"
CRD = ROOT / "crds" / "app.yaml"


def _documents() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(POLICY.read_text())}


def _spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def test_every_index_of_every_secret_reference_is_checked() -> None:
    spec = _spec_schema()
    expected = {"passwordSecret": 1, "pullSecrets": spec["properties"]["imagePullSecrets"]["maxItems"]}
    expected["serviceSecrets"] = spec["properties"]["manifest"]["properties"]["services"]["maxItems"]
    validations = _documents()["ValidatingAdmissionPolicy"]["spec"]["validations"]
    for variable, count in expected.items():
        for index in range(count):
            check = f"variables.secrets.name(variables.{variable}[{index}]).check('get').allowed()"
            matching = [v for v in validations if check in v["expression"]]
            assert len(matching) == 1, f"no single validation for {variable}[{index}]"
            assert f"size(variables.{variable}) <= {index} ||" in matching[0]["expression"]
            assert f"variables.{variable}[{index}]" in matching[0]["messageExpression"]
            assert matching[0]["reason"] == "Forbidden"
    assert not any(f"[{expected['serviceSecrets']}]" in v["expression"] for v in validations)


def test_the_policy_matches_app_writes_and_is_bound_to_deny() -> None:
    docs = _documents()
    policy, binding = docs["ValidatingAdmissionPolicy"], docs["ValidatingAdmissionPolicyBinding"]
    assert policy["spec"]["failurePolicy"] == "Fail"  # an evaluation error refuses, never lets through
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert (rule["apiGroups"], rule["resources"], sorted(rule["operations"])) == (
        ["wharf.dev"],
        ["apps"],
        ["CREATE", "UPDATE"],
    )
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
