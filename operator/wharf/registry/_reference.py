"""Image references, parsed and normalized exactly as docker does (S3, S12).

The grammar is distribution/reference's (`regexp.go`), and normalization follows its `ParseNormalizedNamed`
and `TagNameOnly`: `nginx` -> `docker.io/library/nginx:latest`, `index.docker.io/x` -> `docker.io/library/x`,
the first path element is a registry only if it is `localhost` or contains `.` or `:` (or upper case), and a
reference with neither tag nor digest gets `:latest`. A reference with both a tag and a digest keeps both; the
digest is what gets resolved (as `docker pull` does).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from wharf.registry._errors import InvalidReference

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
# Docker Hub's registry API is not served at docker.io; docker's own client talks to this host.
DOCKER_HUB_API_HOST = "registry-1.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255
# No sane reference is this long; bounding the input bounds the regex work.
_INPUT_LENGTH_MAX = 4096

# distribution/reference regexp.go, transcribed. Go's `\w` is ASCII-only, hence the explicit classes.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME}"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REFERENCE_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_ANCHORED_NAME_RE = re.compile(rf"^(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})$")
_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")
# `sha256:<hex>`: docker's image ID as `docker images --no-trunc` prints it (a local image, S3), which the grammar
# would otherwise read as the Docker Hub repository `library/sha256` with that tag.
_IMAGE_ID_RE = re.compile(r"^(sha256|sha384|sha512):[a-fA-F0-9]{32,}$")
# A host whose last label is a number or 0x-hex is an IPv4 address in some notation (octal 0177.0.0.1, hex
# 0x7f.0.0.1, decimal 2130706433, short 127.1): no DNS name ends in a numeric label.
_NUMERIC_LABEL_RE = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)
_TAG_RE = re.compile(rf"^{_TAG}$")

# go-digest's registered algorithms and the length of their hex encoding.
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True, order=True)
class Reference:
    """A normalized image reference: `domain/path[:tag][@digest]`.

    `str(reference)` is the canonical form (`docker.io/library/nginx:latest`); parsing it again gives an
    equal `Reference`.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The repository's full name, without tag or digest: `docker.io/library/nginx`."""
        return f"{self.domain}/{self.path}"

    @property
    def registry(self) -> str:
        """`host[:port]` to send Registry API requests to (Docker Hub's API lives at registry-1.docker.io)."""
        return DOCKER_HUB_API_HOST if self.domain == DEFAULT_DOMAIN else self.domain

    @property
    def manifest_reference(self) -> str:
        """What goes in `/v2/<path>/manifests/<...>`: the digest when there is one (docker pull's rule)."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def familiar(self) -> str:
        """The short form docker prints: `nginx:latest`, `bitnami/redis:7`, `host:5000/app:1`."""
        name = self.name
        # docker would print `docker.io/a.b/c` as `a.b/c`, which parses back with registry `a.b`; keep the
        # domain in that case so the familiar form always means the same image.
        if self.domain == DEFAULT_DOMAIN and _split_docker_domain(self.path)[0] == DEFAULT_DOMAIN:
            name = self.path
            remainder = self.path.removeprefix(OFFICIAL_REPO_PREFIX)
            if self.path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in remainder:
                name = remainder
        return name + self._suffix()

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, self.tag, digest)

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()


def _invalid(text: str, why: str) -> InvalidReference:
    return InvalidReference(f"invalid image reference {text!r}: {why}", reference=text)


def _split_docker_domain(name: str) -> tuple[str, str]:
    """distribution/reference's splitDockerDomain: which part of `name` is the registry."""
    maybe_domain, slash, maybe_remote = name.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == "localhost":
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif "." in maybe_domain or ":" in maybe_domain or maybe_domain.lower() != maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def _validate_digest(text: str, digest: str) -> None:
    algorithm, _, encoded = digest.partition(":")
    expected = _DIGEST_HEX_LENGTH.get(algorithm)
    if expected is None:
        raise _invalid(text, f"unsupported digest algorithm {algorithm!r} (use sha256)")
    if len(encoded) != expected:
        raise _invalid(text, f"a {algorithm} digest has {expected} hex characters, this one has {len(encoded)}")
    if encoded.lower() != encoded:
        raise _invalid(text, "digest hex must be lowercase")


def parse_reference(text: str) -> Reference:
    """Parse and normalize an image reference as `docker pull` would, or raise `InvalidReference`.

    `nginx` -> `docker.io/library/nginx:latest`; `host:5000/a/b:tag` keeps its registry;
    `name@sha256:<64 hex>` pins a digest.
    """
    if not isinstance(text, str) or not text:
        raise _invalid(str(text), "the reference is empty; give an image such as 'nginx' or 'host:5000/app:1.0'")
    if len(text) > _INPUT_LENGTH_MAX:
        raise _invalid(text[:64] + "...", f"longer than {_INPUT_LENGTH_MAX} characters")
    if text != text.strip():
        raise _invalid(text, "remove the leading/trailing whitespace")
    if "://" in text:
        raise _invalid(text, "give the image without a URL scheme, e.g. 'registry.example.com/app:1.0'")
    if _IDENTIFIER_RE.match(text):
        raise _invalid(text, "a bare 64-character hex string is an image ID, not a reference; give a repository name")
    if _IMAGE_ID_RE.match(text):
        raise _invalid(
            text,
            "this is a local image's ID, which no registry serves (S3): push the image to a registry and give its "
            "name, e.g. 'registry.example.com/team/app@sha256:...'",
        )
    domain, remainder = _split_docker_domain(text)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise _invalid(text, f"repository name {remote.split('@', 1)[0]!r} must be lowercase")
    candidate = f"{domain}/{remainder}"
    match = _REFERENCE_RE.match(candidate)
    if match is None:
        raise _invalid(text, _explain(text))
    name, tag, digest = match.group(1), match.group(2), match.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise _invalid(text, f"the repository name is longer than {NAME_TOTAL_LENGTH_MAX} characters")
    if digest is not None:
        _validate_digest(text, digest)
    name_match = _ANCHORED_NAME_RE.match(name)
    if name_match is None:  # pragma: no cover - implied by _REFERENCE_RE
        raise _invalid(text, _explain(text))
    if name_match.group(1) is None:
        # docker's grammar would fall back to a reference without a registry (`a_b.c/x`); nothing can pull that.
        raise _invalid(text, f"{domain!r} looks like a registry host but is not a valid host name")
    _check_ip_host(text, name_match.group(1))
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain=name_match.group(1), path=name_match.group(2), tag=tag, digest=digest)


def _check_ip_host(text: str, domain: str) -> None:
    """An IP address registry is written as the kubelet's runtime reads it, and as the SSRF guard checks it: four
    decimal numbers, or an IPv6 literal in brackets. Other IPv4 notations (octal, hex, decimal, short) are read
    differently by different resolvers (glibc turns 0177.0.0.1 into 127.0.0.1, Go's parser refuses it), so the
    address wharf would check might not be the one contacted: refused."""
    host = domain.rsplit(":", 1)[0] if not domain.endswith("]") else domain
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host.strip("[]"))
        except ValueError as error:
            raise _invalid(text, f"{host} is not an IPv6 address ({error})") from error
        return
    if _NUMERIC_LABEL_RE.match(host.rsplit(".", 1)[-1]):
        try:
            ipaddress.IPv4Address(host)
        except ValueError as error:
            raise _invalid(
                text,
                f"{host} is not a host name, and as an IPv4 address it must be four decimal numbers from 0 to 255 "
                "without leading zeros (such as 10.0.0.5): octal, hex, decimal and short forms are refused",
            ) from error


def _explain(text: str) -> str:
    """A hint for the most common mistakes; the grammar itself is in the module docstring."""
    name, at, digest = text.partition("@")
    if at and not digest:
        return "nothing follows '@'; a digest looks like 'sha256:<64 hex characters>'"
    algorithm, colon, encoded = digest.partition(":")
    if at and (not colon or not re.fullmatch(r"[0-9a-fA-F]{32,}", encoded)):
        expected = _DIGEST_HEX_LENGTH.get(algorithm, 64)
        return (
            f"a digest looks like 'sha256:<64 hex characters>'; "
            f"a {algorithm or 'sha256'} digest has {expected} hex characters"
        )
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        tag = last.split(":", 1)[1]
        if not _TAG_RE.match(tag):
            return f"tag {tag!r} is invalid: up to 128 letters, digits, '_', '.', '-', not starting with '.' or '-'"
    if name.startswith(("/", ":", "@")) or name.endswith(("/", ":")) or "//" in name:
        return "it has an empty name component; the form is [registry[:port]/]repository[:tag][@digest]"
    return (
        "expected [registry[:port]/]name[/name...][:tag][@digest], where names use lowercase letters, digits "
        "and single '.', '_' or '-' separators, and do not start or end with a separator"
    )
