"""S14: what the kubelet says about containers, classified; `Failed to create container: <cause>`."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import pytest

from wharf.api.conditions import Reason
from wharf.status.pulls import ContainerProblem, problems

HTTP_CODES = ("401", "403", "404", "502", "503")
REGISTRY = "127.0.0.1:5000"


def _digest(containing: str, *, start: bool = False) -> str:
    """A real sha256 digest whose hex holds `containing` (at its start when asked): ~7% of them hold a code."""
    for i in itertools.count():
        hex_ = hashlib.sha256(f"layer {i}".encode()).hexdigest()
        if hex_.startswith(containing) if start else containing in hex_:
            return f"sha256:{hex_}"
    raise AssertionError("unreachable")


def _image(digest: str, repo: str = "shop/web") -> str:
    return f"{REGISTRY}/{repo}@{digest}"


# The kubelet's (and containerd's) words, as pods show them: IMG is the pod's `repo@sha256:...`, DIGEST its digest.
REFUSED = (
    'rpc error: code = Unavailable desc = failed to pull and unpack image "IMG": failed to resolve reference "IMG": '
    'failed to do request: Head "https://127.0.0.1:5000/v2/shop/web/manifests/DIGEST": '
    "dial tcp 127.0.0.1:5000: connect: connection refused"
)
NO_SPACE = (
    'rpc error: code = Unknown desc = failed to pull and unpack image "IMG": failed to extract layer DIGEST: '
    "write /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/41/fs/app: no space left on device"
)
BARE_BACK_OFF = 'Back-off pulling image "IMG"'  # kubelets before 1.32: no cause
BACK_OFF_132 = (  # kubelet 1.32 and later append the cause
    'Back-off pulling image "IMG": ErrImagePull: rpc error: code = DeadlineExceeded desc = failed to pull and '
    'unpack image "IMG": failed to copy: httpReadSeeker: failed open: failed to do request: '
    'Get "https://127.0.0.1:5000/v2/shop/web/blobs/DIGEST": net/http: TLS handshake timeout'
)
NOT_FOUND_UNQUOTED = (  # containerd repeats the reference unquoted
    'rpc error: code = NotFound desc = failed to pull and unpack image "IMG": failed to resolve reference "IMG": '
    "IMG: not found"
)
HEAD_404 = (
    'rpc error: code = Unknown desc = failed to pull and unpack image "IMG": failed to resolve reference "IMG": '
    "unexpected status from HEAD request to https://127.0.0.1:5000/v2/shop/web/manifests/DIGEST: 404 Not Found"
)


def _say(template: str, digest: str, repo: str = "shop/web") -> str:
    return template.replace("IMG", _image(digest, repo)).replace("DIGEST", digest)


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


@pytest.mark.parametrize("code", HTTP_CODES)
@pytest.mark.parametrize(
    ("waiting", "template", "reason"),
    [
        ("ErrImagePull", REFUSED, Reason.REGISTRY_UNAVAILABLE),
        ("ErrImagePull", NO_SPACE, Reason.IMAGE_PULL_FAILED),
        ("ImagePullBackOff", BARE_BACK_OFF, Reason.IMAGE_PULL_FAILED),
        ("ImagePullBackOff", BACK_OFF_132, Reason.REGISTRY_UNAVAILABLE),
        ("ErrImagePull", NOT_FOUND_UNQUOTED, Reason.IMAGE_NOT_FOUND),
        ("ErrImagePull", HEAD_404, Reason.IMAGE_NOT_FOUND),
    ],
    ids=["refused", "no-space", "bare-back-off", "back-off-1.32", "not-found-unquoted", "head-404"],
)
@pytest.mark.parametrize("start", [False, True], ids=["inside", "at-start"])
def test_s14_an_http_code_in_the_image_digest_is_not_the_cause(
    code: str, waiting: str, template: str, reason: Reason, start: bool
) -> None:
    """S14: the kubelet names the image, `repo@sha256:<hex>`; digits of the digest are no HTTP status."""
    message = _say(template, _digest(code, start=start))
    problem = ContainerProblem(pod="shop-web-1", container="app", waiting_reason=waiting, message=message)
    assert problem.reason is reason, message


@pytest.mark.parametrize("code", HTTP_CODES)
@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (  # a repository named after a code, quoted and unquoted
            _say(NOT_FOUND_UNQUOTED, "sha256:" + "e" * 64, repo="team-CODE/web"),
            Reason.IMAGE_NOT_FOUND,
        ),
        (_say(REFUSED, "sha256:" + "e" * 64, repo="api/vCODE"), Reason.REGISTRY_UNAVAILABLE),
        ("dial tcp: lookup mirror-CODE.internal on 10.96.0.10:53: no such host", Reason.REGISTRY_UNAVAILABLE),
        ("dial tcp 10.0.0.7:CODE: connect: connection refused", Reason.REGISTRY_UNAVAILABLE),
        ('Back-off pulling image "CODE.example.com/shop/web:CODE"', Reason.IMAGE_PULL_FAILED),
    ],
    ids=["repository", "tag-path", "host-name", "port", "bare-back-off"],
)
def test_s14_an_http_code_in_a_name_is_not_the_cause(code: str, message: str, reason: Reason) -> None:
    """S14: hosts, ports, repositories and tags may hold a code's digits; only a status code is one."""
    text = message.replace("CODE", code)
    problem = ContainerProblem(pod="shop-web-1", container="app", waiting_reason="ErrImagePull", message=text)
    assert problem.reason is reason, text


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (  # the digest holds 404; the registry said 401
            _say(HEAD_404, _digest("404")).replace("404 Not Found", "401 Unauthorized"),
            Reason.IMAGE_PULL_UNAUTHORIZED,
        ),
        (  # the digest holds 401; the registry said 404
            _say(HEAD_404, _digest("401")),
            Reason.IMAGE_NOT_FOUND,
        ),
        (
            _say(
                'rpc error: code = Unknown desc = failed to pull and unpack image "IMG": failed to resolve reference '
                '"IMG": pulling from host 127.0.0.1:5000 failed with status code [manifests DIGEST]: 403 Forbidden',
                _digest("503"),
            ),
            Reason.IMAGE_PULL_UNAUTHORIZED,
        ),
        (
            _say(
                'rpc error: code = Unknown desc = failed to pull and unpack image "IMG": failed to resolve reference '
                '"IMG": failed to authorize: failed to fetch anonymous token: unexpected status from GET request to '
                "https://auth.example.com/token?scope=repository%3Ashop%2Fweb%3Apull&service=registry: 502 Bad Gateway",
                _digest("401"),
            ),
            Reason.REGISTRY_UNAVAILABLE,
        ),
        (  # CRI-O (containers/image)
            "initializing source docker://127.0.0.1:5000/shop/web:1: pinging container registry 127.0.0.1:5000: "
            "invalid status code from registry 503 (Service Unavailable)",
            Reason.REGISTRY_UNAVAILABLE,
        ),
        (
            "initializing source docker://127.0.0.1:5000/shop/web:1: Requesting bearer token: "
            "invalid status code from registry 401 (Unauthorized)",
            Reason.IMAGE_PULL_UNAUTHORIZED,
        ),
        (
            "reading manifest 1 in 127.0.0.1:5000/shop/web: received unexpected HTTP status: 502",
            Reason.REGISTRY_UNAVAILABLE,
        ),
        ("failed open: unexpected status code 404", Reason.IMAGE_NOT_FOUND),
    ],
    ids=["401", "404", "403", "502-token", "crio-503", "crio-401", "502-bare", "404-bare"],
)
def test_s14_http_status_codes_still_name_the_cause(message: str, reason: Reason) -> None:
    """S14: a status code the registry answered, in its usual phrasing, is the cause."""
    problem = ContainerProblem(pod="shop-web-1", container="app", waiting_reason="ErrImagePull", message=message)
    assert problem.reason is reason, message


@pytest.mark.parametrize(
    ("waiting", "message", "names_a_cause"),
    [
        ("ImagePullBackOff", _say(BARE_BACK_OFF, _digest("401")), False),
        ("ImagePullBackOff", 'Back-off pulling image "nginx"', False),
        ("ImagePullBackOff", 'Back-off pulling image "eof"', False),  # an image's name is no cause
        ("ImagePullBackOff", "", False),
        ("ErrImagePull", "", False),
        ("ImagePullBackOff", _say(BACK_OFF_132, _digest("401")), True),
        ("ErrImagePull", _say(REFUSED, _digest("401")), True),
        ("ErrImagePull", _say(NO_SPACE, _digest("401")), True),  # a cause, if not one we classify
    ],
    ids=[
        "bare",
        "bare-short-name",
        "bare-named-like-a-cause",
        "empty",
        "empty-pull",
        "back-off-1.32",
        "refused",
        "other",
    ],
)
def test_s14_a_bare_back_off_names_no_cause(waiting: str, message: str, names_a_cause: bool) -> None:
    """S14: kubelets before 1.32 back off with `Back-off pulling image "..."` alone: a failed pull, no cause."""
    problem = ContainerProblem(pod="shop-web-1", container="app", waiting_reason=waiting, message=message)
    assert problem.names_a_cause is names_a_cause
    if not names_a_cause:
        assert problem.reason is Reason.IMAGE_PULL_FAILED


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
