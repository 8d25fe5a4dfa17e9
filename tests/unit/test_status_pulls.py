"""S14: what the kubelet says about containers, classified; `Failed to create container: <cause>`."""

from __future__ import annotations

from typing import Any

import pytest

from wharf.api.conditions import Reason
from wharf.status.pulls import ContainerProblem, problems


def _pod(name: str, *waiting: tuple[str, str], deleting: bool = False, init: bool = False) -> dict[str, Any]:
    statuses = [
        {"name": f"c{i}", "state": {"waiting": {"reason": reason, "message": message}}}
        for i, (reason, message) in enumerate(waiting)
    ]
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    key = "initContainerStatuses" if init else "containerStatuses"
    return {"metadata": meta, "status": {key: statuses}}


@pytest.mark.parametrize(
    ("waiting", "message", "reason"),
    [
        ("ErrImagePull", 'failed to resolve reference "r/x:1": r/x:1: not found', Reason.IMAGE_NOT_FOUND),
        ("ErrImagePull", "rpc error: manifest unknown: manifest unknown", Reason.IMAGE_NOT_FOUND),
        ("ImagePullBackOff", 'Back-off pulling image "r/x:1": name unknown', Reason.IMAGE_NOT_FOUND),
        ("ErrImagePull", "failed to authorize: 401 Unauthorized", Reason.IMAGE_PULL_UNAUTHORIZED),
        (
            "ErrImagePull",
            "pull access denied, repository does not exist or may require authorization",
            Reason.IMAGE_PULL_UNAUTHORIZED,
        ),
        ("ErrImagePull", "dial tcp 10.0.0.1:5000: connect: connection refused", Reason.REGISTRY_UNAVAILABLE),
        ("ErrImagePull", "dial tcp: lookup registry.invalid: no such host", Reason.REGISTRY_UNAVAILABLE),
        ("ImagePullBackOff", "i/o timeout", Reason.REGISTRY_UNAVAILABLE),
        ("ErrImagePull", "something else entirely", Reason.IMAGE_PULL_FAILED),
        ("InvalidImageName", "couldn't parse image reference", Reason.INVALID_IMAGE_NAME),
        ("CreateContainerConfigError", 'secret "x" not found', Reason.CONTAINER_CONFIG_ERROR),
        ("CrashLoopBackOff", "back-off 10s restarting failed container", Reason.CRASHING),
    ],
)
def test_classification(waiting: str, message: str, reason: Reason) -> None:
    # S14
    problem = ContainerProblem(pod="shop-web-1", container="app", waiting_reason=waiting, message=message)
    assert problem.reason is reason


@pytest.mark.parametrize(
    "waiting", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError"]
)
def test_pull_failures_say_failed_to_create_container_with_the_kubelets_words(waiting: str) -> None:
    # S14
    problem = ContainerProblem(pod="shop-web-1", container="app", waiting_reason=waiting, message="the cause")
    assert problem.is_pull_failure
    text = problem.describe()
    assert text.startswith("Failed to create container:")
    assert waiting in text
    assert "the cause" in text
    assert "shop-web-1" in text


def test_crash_is_not_a_pull_failure() -> None:
    # S14
    problem = ContainerProblem(pod="p", container="app", waiting_reason="CrashLoopBackOff", message="back-off")
    assert not problem.is_pull_failure
    assert not problem.describe().startswith("Failed to create container")


def test_problems_finds_waiting_containers_pull_failures_first() -> None:
    # S14
    pods = [
        _pod("b", ("CrashLoopBackOff", "back-off")),
        _pod("a", ("ContainerCreating", ""), ("ErrImagePull", "manifest unknown")),
        _pod("c", ("ErrImagePull", "gone"), deleting=True),  # leaving: says nothing about the future
        _pod("d", ("ImagePullBackOff", "unauthorized"), init=True),
        {"metadata": {"name": "e"}, "status": {}},
        {"metadata": {"name": "f"}},
    ]
    found = problems(pods)
    assert [(p.pod, p.waiting_reason) for p in found] == [
        ("a", "ErrImagePull"),
        ("d", "ImagePullBackOff"),
        ("b", "CrashLoopBackOff"),
    ]
    assert [p.reason for p in found] == [Reason.IMAGE_NOT_FOUND, Reason.IMAGE_PULL_UNAUTHORIZED, Reason.CRASHING]


def test_running_pods_have_no_problems() -> None:
    # S14
    pod = {"metadata": {"name": "ok"}, "status": {"containerStatuses": [{"name": "app", "state": {"running": {}}}]}}
    assert problems([pod]) == []
