"""What the App's Deployments and pods say, as the Observation `compute` decides from. Pure: the caches hand in
the objects (stripped to the fields read here, see handlers/cache.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from wharf.render.names import APPLIED_HASH_ANNOTATION, PROCESS_LABEL
from wharf.render.processes import ProcessPlan
from wharf.status.compute import Observation, ProcessObservation
from wharf.status.pulls import problems
from wharf.status.rollout import rollout_problems

DRIFT_KEY = "wharf.dev/drift"  # set by the cache on a Deployment whose pod template others changed (S17)


def as_rendered(deployment: Mapping[str, Any], applied: Mapping[str, str] | None) -> bool:
    """The Deployment is what wharf renders: the hash of the last apply is the rendered one's, and no other writer
    changed its pod template since (S17). `applied` maps Deployment names to the rendered hashes; None when wharf
    keeps what runs as it is (S14: credentials missing), and then any Deployment counts as it stands."""
    if deployment.get(DRIFT_KEY):
        return False
    if applied is None:
        return True
    meta = deployment.get("metadata") or {}
    expected = applied.get(meta.get("name", ""))
    return expected is not None and (meta.get("annotations") or {}).get(APPLIED_HASH_ANNOTATION) == expected


def observe(
    deployments: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    processes: Iterable[ProcessPlan],
    applied: Mapping[str, str] | None = None,
) -> Observation:
    """Each process's instances from its Deployment; a process whose Deployment is not (yet) as rendered has not
    rolled out, so the App never says Running while its pod template differs from what wharf renders."""
    found_by_type = {(d.get("metadata") or {}).get("labels", {}).get(PROCESS_LABEL): d for d in deployments}
    observed = []
    current = []  # the Deployments of the processes the App asks for (one of a removed type is being pruned)
    for plan in processes:
        found = found_by_type.get(plan.type)
        if found is not None:
            current.append(found)
        status = (found or {}).get("status") or {}
        generation = (found or {}).get("metadata", {}).get("generation", 0)
        updated = status.get("updatedReplicas", 0)
        observed.append(
            ProcessObservation(
                type=plan.type,
                desired=plan.replicas,
                ready=status.get("readyReplicas", 0),
                available=status.get("availableReplicas", 0),
                updated=updated,
                rolled_out=found is not None
                and as_rendered(found, applied)
                and status.get("observedGeneration", 0) >= generation
                and (found.get("spec") or {}).get("replicas") == plan.replicas
                and updated >= plan.replicas
                and status.get("replicas", 0) <= plan.replicas,
            )
        )
    pods = list(pods)
    return Observation(processes=observed, problems=problems(pods), rollout=rollout_problems(current, pods))
