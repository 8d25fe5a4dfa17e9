"""Reference parsing against docker's own normalization cases (S3, S12).

The tables are facts taken from distribution/reference's tests (normalize_test.go: TestValidateReferenceName,
TestValidateRemoteName, TestParseRepositoryInfo, TestParseAnyReference, TestNormalizedSplitHostname;
reference_test.go: TestReferenceParse), restated for `ParseNormalizedNamed` + `TagNameOnly`.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from wharf.registry import InvalidReference, Reference, parse_reference

HEX64 = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
FFF = "f" * 64

# S12: docker's normalization, input -> canonical string (with TagNameOnly's :latest)
NORMALIZED = [
    ("nginx", "docker.io/library/nginx:latest"),
    ("redis", "docker.io/library/redis:latest"),
    ("redis:latest", "docker.io/library/redis:latest"),
    ("docker.io/library/redis:latest", "docker.io/library/redis:latest"),
    (f"redis@sha256:{HEX64}", f"docker.io/library/redis@sha256:{HEX64}"),
    (f"docker.io/library/redis@sha256:{HEX64}", f"docker.io/library/redis@sha256:{HEX64}"),
    ("dmcgowan/myapp", "docker.io/dmcgowan/myapp:latest"),
    ("dmcgowan/myapp:latest", "docker.io/dmcgowan/myapp:latest"),
    ("docker.io/mcgowan/myapp:latest", "docker.io/mcgowan/myapp:latest"),
    (f"dmcgowan/myapp@sha256:{HEX64}", f"docker.io/dmcgowan/myapp@sha256:{HEX64}"),
    (
        "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9",
        "docker.io/library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9:latest",
    ),
    ("dbcc1", "docker.io/library/dbcc1:latest"),
    ("fooo/bar", "docker.io/fooo/bar:latest"),
    ("index.docker.io/fooo/bar", "docker.io/fooo/bar:latest"),
    ("library/ubuntu", "docker.io/library/ubuntu:latest"),
    ("ubuntu", "docker.io/library/ubuntu:latest"),
    ("nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu:latest"),
    ("other/library", "docker.io/other/library:latest"),
    ("127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase:latest"),
    ("127.0.0.1:8000/privatebase", "127.0.0.1:8000/privatebase:latest"),
    ("example.com/private/moonbase", "example.com/private/moonbase:latest"),
    ("example.com:8000/privatebasee", "example.com:8000/privatebasee:latest"),
    ("ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base:latest"),
    ("index.docker.io/library/ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base:latest"),
    ("docker.io/foo", "docker.io/library/foo:latest"),
    ("library/foo/bar", "docker.io/library/foo/bar:latest"),
    ("store/foo/bar", "docker.io/store/foo/bar:latest"),
    ("Foo/bar", "Foo/bar:latest"),  # an upper-case first element is a registry host, as docker decides
    ("FOO/bar", "FOO/bar:latest"),
    (
        f"busybox:latest@sha256:{'86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa'}",
        "docker.io/library/busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa",
    ),
    ("localhost/foo", "localhost/foo:latest"),
    ("localhost:5000/a/b:tag", "localhost:5000/a/b:tag"),
    ("host:5000/a/b:tag", "host:5000/a/b:tag"),
    ("lowercase:Uppercase", "docker.io/library/lowercase:Uppercase"),
    ("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000/repo:tag"),
    ("[::1]:5000/repo", "[::1]:5000/repo:latest"),
    ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io/test.example.com/my-app:test.example.com"),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage:xn--n3h.com"),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com/bar/baz/quux:some-long-tag"),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo:5050"),
    ("test.com:5000", "docker.io/library/test.com:5000"),  # one element: name test.com, tag 5000
    ("docker-rules/docker", "docker.io/docker-rules/docker:latest"),
    ("docker---rules/docker", "docker.io/docker---rules/docker:latest"),
    ("dock__er/docker", "docker.io/dock__er/docker:latest"),
    ("d/docker", "docker.io/d/docker:latest"),
    ("jess/t", "docker.io/jess/t:latest"),
    ("test_com/foo", "docker.io/test_com/foo:latest"),
]

# (input, domain, path) from TestNormalizedSplitHostname / TestParseRepositoryInfo
SPLIT = [
    ("test.com/foo", "test.com", "foo"),
    ("test_com/foo", "docker.io", "test_com/foo"),
    ("docker/migrator", "docker.io", "docker/migrator"),
    ("test.com:8080/foo", "test.com:8080", "foo"),
    ("test-com:8080/foo", "test-com:8080", "foo"),
    ("foo", "docker.io", "library/foo"),
    ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
    ("docker.io/foo", "docker.io", "library/foo"),
    ("docker.io/library/foo", "docker.io", "library/foo"),
    ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
    ("Foo/bar", "Foo", "bar"),
]

# Refused by ParseNormalizedNamed (TestValidateReferenceName, TestValidateRemoteName, TestReferenceParse)
INVALID = [
    "",
    "https://github.com/docker/docker",
    "docker/Docker",
    "-docker",
    "-docker/docker",
    "-docker.io/docker/docker",
    "docker///docker",
    "docker.io/docker/Docker",
    "docker.io/docker///docker",
    "[fc00::1]",
    "[fc00::1]:5000",
    "fc00::1:5000/debian",
    "[fe80::1%eth0]:5000/debian",
    "[2001:db8:3:4::192.0.2.33]:5000/debian",
    "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    "docker-/docker",
    "-docker-/docker",
    "____/____",
    "_docker/_docker",
    "dock..er/docker",
    "dock_.er/docker",
    "dock-.er/docker",
    "docker/",
    "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker",
    ":justtag",
    f"@sha256:{FFF}",
    "repo@sha256:ffffffffffffffffffffffffffffffffff",
    f"validname@invaliddigest:{FFF}",
    "Uppercase:tag",
    "test:5000/Uppercase/lowercase:tag",
    "a/" * 128 + "a:tag",
    # 255 characters is valid for Parse, but normalizing prefixes docker.io/ and takes it over the limit
    "a/" * 127 + "a:tag-puts-this-over-max",
    "aa/asdf$$^/aa",
    "[2001:db8::1]:tag",
    "[fe80::1%@invalidzone]:5000/repo",
    "Nginx",
    "nginx:-tag",
    "nginx:" + "t" * 129,
    f"nginx@sha256:{FFF.upper()}",
    " nginx",
    # wharf's one deliberate difference: docker parses these to a reference with no registry at all, which
    # nothing can pull; wharf refuses them with a message instead.
    "a_b.c/x",
    "0__0.0/0",
]

VALID_ONLY = [
    "docker/docker",
    "library/debian",
    "debian",
    "docker.io/docker/docker",
    "docker.io/library/debian",
    "docker.io/debian",
    "index.docker.io/docker/docker",
    "index.docker.io/library/debian",
    "index.docker.io/debian",
    "127.0.0.1:5000/docker/docker",
    "127.0.0.1:5000/library/debian",
    "127.0.0.1:5000/debian",
    "192.168.0.1",
    "192.168.0.1:80",
    "192.168.0.1:8/debian",
    "192.168.0.2:25000/debian",
    "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    "[fc00::1]:5000/docker",
    "[fc00::1]:5000/docker/docker",
    "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
    "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    "Docker/docker",
    "DOCKER/docker",
    f"xn--7o8h.com/myimage:xn--7o8h.com@sha512:{'f' * 128}",
]


@pytest.mark.parametrize(("text", "canonical"), NORMALIZED)
def test_normalizes_as_docker_does(text: str, canonical: str) -> None:  # S12
    assert str(parse_reference(text)) == canonical


@pytest.mark.parametrize(("text", "domain", "path"), SPLIT)
def test_splits_domain_and_path_as_docker_does(text: str, domain: str, path: str) -> None:  # S12
    ref = parse_reference(text)
    assert (ref.domain, ref.path) == (domain, path)


@pytest.mark.parametrize("text", INVALID)
def test_refuses_what_docker_refuses(text: str) -> None:  # S3
    with pytest.raises(InvalidReference) as caught:
        parse_reference(text)
    assert "invalid image reference" in str(caught.value)


@pytest.mark.parametrize("text", VALID_ONLY)
def test_accepts_what_docker_accepts(text: str) -> None:  # S3
    parse_reference(text)


def test_messages_say_what_to_change() -> None:  # S3
    with pytest.raises(InvalidReference, match="must be lowercase"):
        parse_reference("Nginx")
    with pytest.raises(InvalidReference, match="64 hex characters"):
        parse_reference("nginx@sha256:abc")
    with pytest.raises(InvalidReference, match="tag '-tag' is invalid"):
        parse_reference("nginx:-tag")
    with pytest.raises(InvalidReference, match="without a URL scheme"):
        parse_reference("https://example.com/app")
    with pytest.raises(InvalidReference, match="empty"):
        parse_reference("")
    with pytest.raises(InvalidReference) as caught:
        parse_reference("Nginx")
    assert caught.value.reference == "Nginx"


def test_docker_hub_api_host_and_aliases() -> None:  # S12
    assert parse_reference("nginx").registry == "registry-1.docker.io"
    assert parse_reference("index.docker.io/library/nginx").registry == "registry-1.docker.io"
    assert parse_reference("docker.io/nginx").domain == "docker.io"
    assert parse_reference("host:5000/a/b").registry == "host:5000"
    # registry-1.docker.io spelled out is just another host, as in docker
    assert parse_reference("registry-1.docker.io/library/nginx").domain == "registry-1.docker.io"


def test_digest_wins_over_tag_when_resolving() -> None:  # S13
    ref = parse_reference(f"busybox:1.36@sha256:{FFF}")
    assert ref.tag == "1.36"
    assert ref.manifest_reference == f"sha256:{FFF}"
    assert parse_reference("busybox").manifest_reference == "latest"


def test_familiar_form() -> None:
    assert parse_reference("docker.io/library/nginx:1").familiar == "nginx:1"
    assert parse_reference("bitnami/redis").familiar == "bitnami/redis:latest"
    assert parse_reference("library/foo/bar").familiar == "library/foo/bar:latest"
    assert parse_reference("host:5000/app:1").familiar == "host:5000/app:1"


# -- properties ---------------------------------------------------------------------------------------------
_component = st.from_regex(r"\A[a-z0-9]{1,8}(?:(?:[._]|__|-{1,3})[a-z0-9]{1,8}){0,2}\Z")
_domain = st.one_of(
    st.just(""),
    st.sampled_from(["docker.io/", "index.docker.io/", "localhost/", "localhost:5000/", "quay.io/", "127.0.0.1:5000/"]),
    st.from_regex(r"\A[a-z][a-z0-9-]{0,6}[a-z0-9]\.[a-z]{2,4}(?::[0-9]{1,5})?/\Z"),
)
_tag = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")
_digest = st.from_regex(r"\A[a-f0-9]{64}\Z").map(lambda h: f"sha256:{h}")


@st.composite
def references(draw: st.DrawFn) -> str:
    text = draw(_domain) + "/".join(draw(st.lists(_component, min_size=1, max_size=3)))
    if draw(st.booleans()):
        text += ":" + draw(_tag)
    if draw(st.booleans()):
        text += "@" + draw(_digest)
    return text


def _parsed(text: str) -> Reference:
    try:
        return parse_reference(text)
    except InvalidReference:
        assume(False)  # the generator can build first elements like `a_b.c` that are refused (see INVALID)
        raise


@given(references())
def test_normalize_is_idempotent(text: str) -> None:  # S12
    once = _parsed(text)
    assert parse_reference(str(once)) == once
    assert str(parse_reference(str(once))) == str(once)


@given(references())
def test_round_trips_through_familiar_form(text: str) -> None:  # S12
    ref = _parsed(text)
    assert parse_reference(ref.familiar) == ref


@given(st.text(max_size=80))
def test_arbitrary_text_is_parsed_or_refused_cleanly(text: str) -> None:  # S3
    try:
        ref = parse_reference(text)
    except InvalidReference as error:
        message = str(error)
    else:
        assert isinstance(ref, Reference)
        assert ref.tag or ref.digest
        return
    assert message.startswith("invalid image reference")


# S3: an IP address registry in any notation is either read as the runtime and the SSRF guard read it (four decimal
# numbers, a bracketed IPv6 literal) or refused with what to write instead; never an exception of another kind.
IP_FORMS_REFUSED = [
    "0177.0.0.1:5000/x/y:1",  # octal
    "0x7f.0.0.1:5000/x/y",  # hex
    "0x7f000001:5000/x/y",  # one hex number
    "2130706433:5000/x/y",  # one decimal number
    "127.1:5000/x/y",  # short
    "127.0.1:5000/x/y",
    "010.0.0.1/x/y",  # a leading zero
    "169.254.169.254.0/x/y",  # five numbers
    "[::ffff:127.0.0.1]:5000/x/y",  # dotted IPv6 tail: outside docker's grammar
    "[1:2:3:4:5:6:7:8:9]:5000/x/y",  # not an IPv6 address
]
IP_FORMS_PARSED = {
    "127.0.0.1:5000/x/y": "127.0.0.1:5000",
    "169.254.169.254/x/y": "169.254.169.254",
    "[::1]:5000/x/y": "[::1]:5000",
    "[::ffff:7f00:1]:5000/x/y": "[::ffff:7f00:1]:5000",  # IPv4-mapped 127.0.0.1: the guard unwraps it
    "[fe80::1]/x/y": "[fe80::1]",
}


@pytest.mark.parametrize("text", IP_FORMS_REFUSED)
def test_ip_registries_in_other_notations_are_refused(text: str) -> None:  # S3
    with pytest.raises(InvalidReference, match=r"invalid image reference"):
        parse_reference(text)


@pytest.mark.parametrize(("text", "domain"), list(IP_FORMS_PARSED.items()))
def test_ip_registries_in_canonical_form_are_parsed(text: str, domain: str) -> None:  # S3
    assert parse_reference(text).domain == domain


def test_an_octal_address_says_what_to_write_instead() -> None:  # S3
    with pytest.raises(InvalidReference, match="four decimal numbers"):
        parse_reference("0177.0.0.1:5000/x/y:1")


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_a_bare_image_id_is_a_local_image_and_refused(algorithm: str) -> None:  # S3
    digest = f"{algorithm}:" + "a" * (64 if algorithm == "sha256" else 128)
    with pytest.raises(InvalidReference, match="local image's ID, which no registry serves"):
        parse_reference(digest)
    assert parse_reference(f"registry.example.com/app@{digest}").digest == digest  # pinned by digest: fine


@given(
    st.lists(st.sampled_from(["0", "00", "0177", "0x7f", "0xff", "1", "127", "255", "256", "4294967295"]), max_size=5)
)
def test_any_numeric_host_is_parsed_as_an_ipv4_address_or_refused(labels: list[str]) -> None:  # S3
    host = ".".join(labels) or "0"
    try:
        canonical = str(ipaddress.IPv4Address(host)) == host
    except ValueError:
        canonical = False
    if canonical:  # only the canonical dotted quad gets through
        assert parse_reference(f"{host}:5000/x/y").domain == f"{host}:5000"
    else:
        with pytest.raises(InvalidReference, match="invalid image reference"):
            parse_reference(f"{host}:5000/x/y")
