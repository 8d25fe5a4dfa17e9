"""The registry harness itself: real docker-registry in each auth mode, real skopeo pushes, restarts (S12-S14)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import ssl
import time
from pathlib import Path
from typing import Literal

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness import images
from harness.certs import CA
from harness.images import STANDARD_IMAGES, ImageIndexSpec, ImageSpec, inspect_config, inspect_raw
from harness.registry import LIMITED_PASSWORD, LIMITED_USERNAME, RegistryServer

pytestmark = pytest.mark.registry

ACCEPT = ", ".join(
    [
        images.OCI_MANIFEST,
        images.OCI_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def client(registry: RegistryServer) -> httpx.Client:
    return httpx.Client(base_url=registry.url, verify=registry.ssl_context(), timeout=10)


def challenge(response: httpx.Response) -> tuple[str, dict[str, str]]:
    scheme, _, rest = response.headers["WWW-Authenticate"].partition(" ")
    return scheme, dict(re.findall(r'(\w+)="([^"]*)"', rest))


def bearer_token(registry: RegistryServer, scope: str, auth: tuple[str, str] | None) -> httpx.Response:
    assert registry.token_server is not None
    return httpx.get(
        registry.token_server.realm,
        params={"service": registry.token_server.service, "scope": scope},
        auth=auth,
        verify=registry.ssl_context(),
        timeout=10,
    )


def run_skopeo_inspect(
    registry: RegistryServer,
    reference: str,
    *,
    creds: tuple[str, str] | Literal["default"] | None = "default",
    trust_ca: bool = True,
) -> tuple[int, str]:
    flags = images.skopeo_flags(registry, creds=creds, trust_ca=trust_ca)
    proc = images.skopeo("inspect", "--raw", *flags, f"docker://{registry.host}/{reference}", check=False)
    return proc.returncode, proc.stderr


@pytest.fixture(scope="module")
def pushed(registry_plain: RegistryServer) -> dict[str, str]:
    """The whole catalogue on the plain registry: name -> digest."""
    return images.push_standard_images(registry_plain, prefix="harness")


# -- plain --------------------------------------------------------------------------------------------------
def test_plain_registry_answers_v2_and_digest_matches_registry(registry_plain: RegistryServer) -> None:
    digest = images.push_image(registry_plain, "plain/app", "v1", STANDARD_IMAGES["single-port"])
    with client(registry_plain) as c:
        base = c.get("/v2/")
        head = c.head("/v2/plain/app/manifests/v1", headers={"Accept": ACCEPT})
        by_digest = c.get(f"/v2/plain/app/manifests/{digest}", headers={"Accept": ACCEPT})
    assert base.status_code == 200
    assert base.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert registry_plain.url.startswith("http://127.0.0.1:")
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == digest
    assert hashlib.sha256(by_digest.content).hexdigest() == digest.removeprefix("sha256:")
    assert registry_plain.username is None
    assert registry_plain.ca_file is None


# -- TLS ----------------------------------------------------------------------------------------------------
def test_tls_registry_trusted_with_ca_and_refused_without(registry_tls: RegistryServer) -> None:
    images.push_image(registry_tls, "tls/app", "v1", STANDARD_IMAGES["single-port"])
    assert registry_tls.url.startswith("https://127.0.0.1:")
    assert registry_tls.ca_file is not None
    with client(registry_tls) as c:
        assert c.get("/v2/").status_code == 200
        assert c.head("/v2/tls/app/manifests/v1", headers={"Accept": ACCEPT}).status_code == 200
    # the default trust store (no test CA) must refuse the certificate
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{registry_tls.url}/v2/", verify=ssl.create_default_context(), timeout=5)
    # the name "localhost" is in the certificate too
    localhost = registry_tls.url.replace("127.0.0.1", "localhost")
    assert httpx.get(f"{localhost}/v2/", verify=registry_tls.ssl_context(), timeout=5).status_code == 200
    rc, err = run_skopeo_inspect(registry_tls, "tls/app:v1", trust_ca=False)
    assert rc != 0
    assert "certificate signed by unknown authority" in err
    rc, err = run_skopeo_inspect(registry_tls, "tls/app:v1")
    assert rc == 0, err


# -- Basic --------------------------------------------------------------------------------------------------
def test_basic_registry_accepts_right_credentials_only(registry_basic: RegistryServer) -> None:
    assert registry_basic.username
    assert registry_basic.password
    digest = images.push_image(registry_basic, "basic/app", "v1", STANDARD_IMAGES["single-port"])
    right = (registry_basic.username, registry_basic.password)
    with client(registry_basic) as c:
        anon = c.get("/v2/")
        scheme, params = challenge(anon)
        assert anon.status_code == 401
        assert scheme == "Basic"
        assert params["realm"] == "wharf-test-registry"
        assert c.get("/v2/", auth=right).status_code == 200
        assert c.get("/v2/", auth=(registry_basic.username, "wrong")).status_code == 401
        assert c.get("/v2/", auth=("nobody", registry_basic.password)).status_code == 401
        ok = c.get("/v2/basic/app/manifests/v1", auth=right, headers={"Accept": ACCEPT})
        assert ok.status_code == 200
        assert ok.headers["Docker-Content-Digest"] == digest
        bad = c.get("/v2/basic/app/manifests/v1", auth=("nobody", "x"), headers={"Accept": ACCEPT})
        assert bad.status_code == 401
        assert bad.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert run_skopeo_inspect(registry_basic, "basic/app:v1")[0] == 0
    rc, err = run_skopeo_inspect(registry_basic, "basic/app:v1", creds=(registry_basic.username, "wrong"))
    assert rc != 0
    assert "unauthorized" in err
    rc, err = run_skopeo_inspect(registry_basic, "basic/app:v1", creds=None)
    assert rc != 0
    assert "unauthorized" in err


def test_basic_auth_over_plain_http_is_possible(tmp_path: Path) -> None:
    # distribution accepts htpasswd without TLS; the harness allows it for clients' "insecure" tests
    with RegistryServer("basic", tls=False, workdir=tmp_path / "r") as reg:
        assert reg.url.startswith("http://")
        assert reg.username
        assert reg.password
        assert httpx.get(f"{reg.url}/v2/", auth=(reg.username, reg.password)).status_code == 200
        assert httpx.get(f"{reg.url}/v2/").status_code == 401


# -- Bearer tokens -----------------------------------------------------------------------------------------
def test_token_registry_challenge_points_at_token_service(registry_token: RegistryServer) -> None:
    ts = registry_token.token_server
    assert ts is not None
    with client(registry_token) as c:
        r = c.get("/v2/")
    scheme, params = challenge(r)
    assert r.status_code == 401
    assert scheme == "Bearer"
    assert params == {"realm": ts.realm, "service": ts.service}


def test_token_service_issues_registry_trusted_tokens(registry_token: RegistryServer) -> None:
    assert registry_token.username
    assert registry_token.password
    digest = images.push_image(registry_token, "token/app", "v1", STANDARD_IMAGES["single-port"])
    ts = registry_token.token_server
    assert ts is not None
    with client(registry_token) as c:
        r = c.get("/v2/token/app/manifests/v1", headers={"Accept": ACCEPT})
        scheme, params = challenge(r)
        assert r.status_code == 401
        assert scheme == "Bearer"
        assert params["scope"] == "repository:token/app:pull"

        reply = bearer_token(registry_token, params["scope"], (registry_token.username, registry_token.password))
        assert reply.status_code == 200
        body = reply.json()
        assert body["token"] == body["access_token"]
        assert body["expires_in"] == 300
        assert dt.datetime.strptime(body["issued_at"], "%Y-%m-%dT%H:%M:%SZ")
        header = jwt.get_unverified_header(body["token"])
        assert header["alg"] == "RS256"
        assert len(header["x5c"]) == 1
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        assert claims["iss"] == ts.issuer
        assert claims["aud"] == ts.service
        assert claims["sub"] == registry_token.username
        assert claims["access"] == [{"type": "repository", "name": "token/app", "actions": ["pull"]}]
        assert {"exp", "nbf", "iat", "jti"} <= claims.keys()
        # the signature verifies with the x5c certificate's key (what the registry checks)
        cert = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
        jwt.decode(body["token"], cert.public_key(), algorithms=["RS256"], audience=ts.service)  # type: ignore[arg-type]

        ok = c.get("/v2/token/app/manifests/v1", headers={"Accept": ACCEPT, "Authorization": f"Bearer {body['token']}"})
        assert ok.status_code == 200
        assert ok.headers["Docker-Content-Digest"] == digest

        # anonymous: a token, but with no access, so the registry answers insufficient_scope (Docker Hub)
        anon = bearer_token(registry_token, params["scope"], None)
        assert anon.status_code == 200
        assert jwt.decode(anon.json()["token"], options={"verify_signature": False})["access"] == []
        denied = c.get(
            "/v2/token/app/manifests/v1", headers={"Accept": ACCEPT, "Authorization": f"Bearer {anon.json()['token']}"}
        )
        assert denied.status_code == 401
        assert challenge(denied)[1]["error"] == "insufficient_scope"
        # the base endpoint needs no scope: any valid token passes it
        assert c.get("/v2/", headers={"Authorization": f"Bearer {anon.json()['token']}"}).status_code == 200

    wrong = bearer_token(registry_token, params["scope"], (registry_token.username, "wrong"))
    assert wrong.status_code == 401
    assert wrong.json() == {"details": "incorrect username or password"}
    # POST: the OAuth2 password grant
    posted = httpx.post(
        ts.realm,
        data={
            "grant_type": "password",
            "username": registry_token.username,
            "password": registry_token.password,
            "service": ts.service,
            "scope": params["scope"],
            "client_id": "wharf-tests",
        },
        verify=registry_token.ssl_context(),
    )
    assert posted.status_code == 200
    assert jwt.decode(posted.json()["access_token"], options={"verify_signature": False})["access"]


def test_token_registry_refuses_tokens_not_chained_to_its_ca(registry_token: RegistryServer, tmp_path: Path) -> None:
    ts = registry_token.token_server
    assert ts is not None
    images.push_image(registry_token, "token/forged", "v1", STANDARD_IMAGES["single-port"])
    other = CA(tmp_path / "other-ca")
    pair = other.issue("forger")
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    now = int(time.time())
    forged = jwt.encode(
        {
            "iss": ts.issuer,
            "sub": "mallory",
            "aud": ts.service,
            "exp": now + 60,
            "nbf": now - 5,
            "iat": now,
            "jti": "x",
            "access": [{"type": "repository", "name": "token/forged", "actions": ["pull"]}],
        },
        key,
        algorithm="RS256",
        headers={"x5c": [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]},
    )
    with client(registry_token) as c:
        r = c.get("/v2/token/forged/manifests/v1", headers={"Accept": ACCEPT, "Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_token_registry_with_skopeo_scopes_and_public_repos(registry_token: RegistryServer) -> None:
    assert registry_token.username
    images.push_image(registry_token, "token/private", "v1", STANDARD_IMAGES["single-port"])
    images.push_image(registry_token, "public/app", "v1", STANDARD_IMAGES["single-port"])
    images.push_image(registry_token, "limited/app", "v1", STANDARD_IMAGES["single-port"])
    assert run_skopeo_inspect(registry_token, "token/private:v1")[0] == 0
    rc, err = run_skopeo_inspect(registry_token, "token/private:v1", creds=(registry_token.username, "bad"))
    assert rc != 0
    assert "incorrect username or password" in err
    rc, err = run_skopeo_inspect(registry_token, "token/private:v1", creds=None)
    assert rc != 0
    assert "authentication required" in err
    # Docker Hub: anyone may pull a public repository
    assert run_skopeo_inspect(registry_token, "public/app:v1", creds=None)[0] == 0
    # a valid user without rights on the repository is refused; with rights, served
    limited = (LIMITED_USERNAME, LIMITED_PASSWORD)
    rc, err = run_skopeo_inspect(registry_token, "token/private:v1", creds=limited)
    assert rc != 0
    assert "authentication required" in err
    assert run_skopeo_inspect(registry_token, "limited/app:v1", creds=limited)[0] == 0
    assert registry_token.token_server is not None
    seen = [r for r in registry_token.token_server.requests if r.username == LIMITED_USERNAME]
    assert any(r.authenticated and r.granted == [] for r in seen)


# -- images -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n, s in STANDARD_IMAGES.items() if isinstance(s, ImageSpec)])
def test_standard_image_config_reads_back(registry_plain: RegistryServer, pushed: dict[str, str], name: str) -> None:
    spec = STANDARD_IMAGES[name]
    assert isinstance(spec, ImageSpec)
    doc = inspect_config(registry_plain, f"harness/{name}:latest")
    cfg = doc["config"]
    assert sorted(cfg.get("ExposedPorts", {})) == sorted(spec.exposed_ports)
    assert cfg.get("User") == spec.user  # None: absent, "" present and empty
    assert ("User" in cfg) == (spec.user is not None)
    assert cfg.get("Entrypoint") == (list(spec.entrypoint) if spec.entrypoint is not None else None)
    assert cfg.get("Cmd") == (list(spec.cmd) if spec.cmd is not None else None)
    assert cfg.get("WorkingDir") == spec.workdir
    assert cfg["Env"] == list(spec.env)
    assert cfg.get("Labels", {}) == dict(spec.labels)
    assert dt.datetime.fromisoformat(doc["created"]) == spec.created
    assert (doc["os"], doc["architecture"]) == (spec.os, spec.architecture)
    assert len(doc["rootfs"]["diff_ids"]) == 1
    assert pushed[name].startswith("sha256:")


def test_catalogue_covers_what_the_suite_needs() -> None:
    specs = {n: s for n, s in STANDARD_IMAGES.items() if isinstance(s, ImageSpec)}
    multi = specs["multi-port"]
    assert min(int(p.split("/")[0]) for p in multi.exposed_ports) == 8080
    assert len(multi.exposed_ports) >= 3
    assert all(p.endswith("/udp") for p in specs["udp-only"].exposed_ports)
    assert not specs["no-expose"].exposed_ports
    assert {specs[n].user for n in ("user-root", "user-empty", "user-zero")} == {"root", "", "0"}
    assert specs["user-numeric"].user == "1001"
    assert specs["user-named"].user == "nginx"
    assert specs["entrypoint-and-cmd"].entrypoint
    assert specs["entrypoint-and-cmd"].cmd
    assert specs["no-command"].entrypoint is None
    assert specs["no-command"].cmd is None
    assert "PORT=1234" in specs["env-port"].env
    assert specs["workdir"].workdir
    index = STANDARD_IMAGES["multi-platform"]
    assert isinstance(index, ImageIndexSpec)
    assert {m.platform for m in index.manifests} == {"linux/amd64", "linux/arm64/v8"}


@pytest.mark.parametrize("fmt", ["oci", "docker"])
def test_multi_platform_index_has_both_platforms(registry_plain: RegistryServer, fmt: Literal["oci", "docker"]) -> None:
    digest = images.push_image(registry_plain, "multi/app", fmt, STANDARD_IMAGES["multi-platform"], fmt=fmt)
    raw = inspect_raw(registry_plain, f"multi/app:{fmt}")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    index = json.loads(raw)
    expected_type = images.OCI_INDEX if fmt == "oci" else "application/vnd.docker.distribution.manifest.list.v2+json"
    assert index["mediaType"] == expected_type
    ports = {}
    for entry in index["manifests"]:
        plat = entry["platform"]
        cfg = inspect_config(registry_plain, f"multi/app@{entry['digest']}")
        ports[f"{plat['os']}/{plat['architecture']}"] = sorted(cfg["config"]["ExposedPorts"])
        assert cfg["architecture"] == plat["architecture"]
    assert ports == {"linux/amd64": ["8080/tcp"], "linux/arm64": ["9090/tcp"]}


def test_platforms_argument_builds_an_index(registry_plain: RegistryServer) -> None:
    images.push_image(
        registry_plain,
        "multi/same",
        "v1",
        STANDARD_IMAGES["single-port"],
        platforms=["linux/amd64", "linux/arm64", "linux/arm/v7"],
    )
    index = json.loads(inspect_raw(registry_plain, "multi/same:v1"))
    platforms = {
        "/".join(filter(None, (m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant"))))
        for m in index["manifests"]
    }
    assert platforms == {"linux/amd64", "linux/arm64", "linux/arm/v7"}


def test_repush_moves_the_tag(registry_plain: RegistryServer) -> None:
    first = images.push_image(registry_plain, "restage/app", "latest", STANDARD_IMAGES["single-port"])
    second = images.push_image(registry_plain, "restage/app", "latest", STANDARD_IMAGES["multi-port"])
    assert first != second
    cfg = inspect_config(registry_plain, "restage/app:latest")["config"]
    assert sorted(cfg["ExposedPorts"]) == ["8080/tcp", "8443/tcp", "9000/tcp"]
    # the old digest stays pullable (pods pinned to it keep running, S13)
    assert inspect_config(registry_plain, f"restage/app@{first}")["config"]["ExposedPorts"] == {"8080/tcp": {}}


def test_docker_schema2_single_image(registry_plain: RegistryServer) -> None:
    digest = images.push_image(registry_plain, "fmt/app", "v1", STANDARD_IMAGES["env-port"], fmt="docker")
    manifest = json.loads(inspect_raw(registry_plain, f"fmt/app@{digest}"))
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert "PORT=1234" in inspect_config(registry_plain, "fmt/app:v1")["config"]["Env"]


# -- outages ------------------------------------------------------------------------------------------------
def test_stop_and_start_keep_port_and_content(stoppable_registry: RegistryServer) -> None:
    reg = stoppable_registry
    digest = images.push_image(reg, "outage/app", "v1", STANDARD_IMAGES["single-port"])
    host, pid = reg.host, reg.pid
    assert pid is not None
    reg.stop()
    assert not reg.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{reg.url}/v2/", timeout=2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    reg.start()
    assert reg.host == host
    assert reg.pid != pid
    with client(reg) as c:
        head = c.head("/v2/outage/app/manifests/v1", headers={"Accept": ACCEPT})
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == digest
    reg.restart()
    assert inspect_config(reg, f"outage/app@{digest}")["config"]["ExposedPorts"] == {"8080/tcp": {}}


def test_token_registry_restart_keeps_auth(tmp_path: Path) -> None:
    with RegistryServer("token", workdir=tmp_path / "r") as reg:
        images.push_image(reg, "outage/private", "v1", STANDARD_IMAGES["single-port"])
        reg.restart()
        assert run_skopeo_inspect(reg, "outage/private:v1")[0] == 0
        assert run_skopeo_inspect(reg, "outage/private:v1", creds=None)[0] != 0


def test_close_leaves_no_process(tmp_path: Path) -> None:
    reg = RegistryServer("basic", workdir=tmp_path / "r")
    reg.start()
    pid = reg.pid
    assert pid is not None
    reg.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
