"""Test images: an OCI image layout written by a few lines of Python, pushed with the real `skopeo copy`.

Only the image config matters to wharf (S13: ports, user, entrypoint, cmd, workdir, env, created), so each
image has one tiny but real gzip tar layer and a config carrying exactly the chosen fields: a field left None
is absent from the config (not empty), which is how "no ENTRYPOINT" and "USER not set" look in real images.
Images that must really run on the real node (harness.node) set `runnable=True`: their layer is a busybox root
filesystem (harness.rootfs), so `sh`, `httpd` and friends exist; RUNNABLE_IMAGES is their catalogue.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from harness.registry import RegistryServer
from harness.rootfs import busybox_layer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CREATED = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class ImageSpec:
    """The config fields of one single-platform image. None = field absent from the config."""

    exposed_ports: Sequence[str] = ()  # "8080/tcp", "53/udp", "9000" (docker treats a bare port as tcp)
    user: str | None = None
    entrypoint: Sequence[str] | None = None
    cmd: Sequence[str] | None = None
    workdir: str | None = None
    env: Sequence[str] = (DEFAULT_PATH,)
    labels: Mapping[str, str] = field(default_factory=dict)
    created: dt.datetime = DEFAULT_CREATED
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None
    runnable: bool = False  # the layer is a real root filesystem (harness.rootfs) instead of one text file

    @property
    def platform(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def config(self, diff_id: str) -> dict[str, Any]:
        """The image config JSON (OCI image-spec `config` + docker's keys, which the OCI spec shares)."""
        cfg: dict[str, Any] = {"Env": list(self.env)}
        if self.exposed_ports:
            cfg["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.user is not None:
            cfg["User"] = self.user
        if self.entrypoint is not None:
            cfg["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            cfg["Cmd"] = list(self.cmd)
        if self.workdir is not None:
            cfg["WorkingDir"] = self.workdir
        if self.labels:
            cfg["Labels"] = dict(self.labels)
        created = self.created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        doc: dict[str, Any] = {
            "created": created,
            "architecture": self.architecture,
            "os": self.os,
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": created, "created_by": "wharf test harness (tests/harness/images.py)"}],
        }
        if self.variant:
            doc["variant"] = self.variant
        return doc


@dataclass(frozen=True)
class ImageIndexSpec:
    """A multi-platform image: an OCI index of one manifest per ImageSpec (each carries its os/arch)."""

    manifests: Sequence[ImageSpec]


AnySpec = ImageSpec | ImageIndexSpec


def with_platform(spec: ImageSpec, platform: str) -> ImageSpec:
    os_, arch, *variant = platform.split("/")
    return replace(spec, os=os_, architecture=arch, variant=variant[0] if variant else None)


# -- the catalogue every test uses -------------------------------------------------------------------------
# Names are stable: tests (and the pull agent) refer to them. Keep each image about one fact.
STANDARD_IMAGES: dict[str, AnySpec] = {
    # S6: several TCP ports, unsorted on purpose; lowest is 8080, the route target
    "multi-port": ImageSpec(exposed_ports=["9000/tcp", "8080/tcp", "8443/tcp"], user="1001", cmd=["/app/server"]),
    "single-port": ImageSpec(exposed_ports=["8080/tcp"], user="1001", cmd=["/app/server"]),
    "udp-only": ImageSpec(exposed_ports=["53/udp", "9090/udp"], user="1001", cmd=["/app/dns"]),
    "mixed-tcp-udp": ImageSpec(exposed_ports=["5353/udp", "7000/tcp"], user="1001", cmd=["/app/server"]),
    "no-expose": ImageSpec(user="1001", cmd=["/app/worker"]),
    # S7: root in each spelling, numeric non-root, non-numeric
    "user-root": ImageSpec(exposed_ports=["8080/tcp"], user="root", cmd=["/app/server"]),
    "user-empty": ImageSpec(exposed_ports=["8080/tcp"], user="", cmd=["/app/server"]),
    "user-unset": ImageSpec(exposed_ports=["8080/tcp"], user=None, cmd=["/app/server"]),
    "user-zero": ImageSpec(exposed_ports=["8080/tcp"], user="0", cmd=["/app/server"]),
    "user-zero-group": ImageSpec(exposed_ports=["8080/tcp"], user="0:0", cmd=["/app/server"]),
    "user-numeric": ImageSpec(exposed_ports=["8080/tcp"], user="1001", cmd=["/app/server"]),
    "user-numeric-group": ImageSpec(exposed_ports=["8080/tcp"], user="1001:1001", cmd=["/app/server"]),
    "user-named": ImageSpec(exposed_ports=["8080/tcp"], user="nginx", cmd=["nginx", "-g", "daemon off;"]),
    "low-port-nonroot": ImageSpec(exposed_ports=["80/tcp"], user="1001", cmd=["/app/server"]),
    # S5: start command
    "entrypoint-and-cmd": ImageSpec(
        exposed_ports=["8080/tcp"], user="1001", entrypoint=["/docker-entrypoint.sh"], cmd=["serve", "--port", "8080"]
    ),
    "entrypoint-only": ImageSpec(exposed_ports=["8080/tcp"], user="1001", entrypoint=["/app/server"]),
    "cmd-only": ImageSpec(exposed_ports=["8080/tcp"], user="1001", cmd=["/app/server", "--verbose"]),
    "no-command": ImageSpec(exposed_ports=["8080/tcp"], user="1001"),
    "workdir": ImageSpec(exposed_ports=["8080/tcp"], user="1001", cmd=["./server"], workdir="/srv/app"),
    # S9: image ENV is the lowest layer; the platform's PORT overrides the image's
    "env-port": ImageSpec(
        exposed_ports=["8080/tcp"],
        user="1001",
        cmd=["/app/server"],
        env=[DEFAULT_PATH, "PORT=1234", "GREETING=hello world", "APP_MODE=production", "EMPTY="],
    ),
    "labels": ImageSpec(
        exposed_ports=["8080/tcp"],
        user="1001",
        cmd=["/app/server"],
        labels={"org.opencontainers.image.title": "wharf-test", "maintainer": "wharf"},
    ),
    # S16: an old base image
    "old-image": ImageSpec(
        exposed_ports=["8080/tcp"],
        user="1001",
        cmd=["/app/server"],
        created=dt.datetime(2019, 1, 15, 8, 30, 0, tzinfo=dt.UTC),
    ),
    # S13: index -> node platform; the ports tell which manifest was chosen
    "multi-platform": ImageIndexSpec(
        [
            ImageSpec(
                exposed_ports=["8080/tcp"],
                user="1001",
                cmd=["/app/server"],
                os="linux",
                architecture="amd64",
                labels={"platform": "linux/amd64"},
            ),
            ImageSpec(
                exposed_ports=["9090/tcp"],
                user="1001",
                cmd=["/app/server"],
                os="linux",
                architecture="arm64",
                variant="v8",
                labels={"platform": "linux/arm64"},
            ),
        ]
    ),
    # an index without the default node platform (linux/amd64)
    "arm-only": ImageIndexSpec(
        [
            ImageSpec(
                exposed_ports=["8080/tcp"],
                user="1001",
                cmd=["/app/server"],
                os="linux",
                architecture="arm64",
                variant="v8",
            ),
        ]
    ),
}


# Images whose process really starts on the real node. `httpd` serves /www (index.html) on $PORT: without a
# manifest `command` (S5) the image's CMD runs as it is, so the shell in CMD expands the PORT wharf sets (S6).
# The shell stays PID 1 and exits on SIGTERM, as an app should (httpd as PID 1 would ignore it until SIGKILL).
SERVE_ON_PORT = [
    "/bin/sh",
    "-c",
    'echo "serving as $(id -u) on $PORT"; trap "exit 0" TERM; httpd -f -v -p "$PORT" -h /www & wait',
]
RUNNABLE_IMAGES: dict[str, ImageSpec] = {
    "web": ImageSpec(exposed_ports=["8080/tcp"], user="1001", cmd=SERVE_ON_PORT, runnable=True),
    # S7: root and a name, which wharf runs as its default non-root uid; port 80 served by a non-root uid
    "web-root": ImageSpec(exposed_ports=["8080/tcp"], user="root", cmd=SERVE_ON_PORT, runnable=True),
    "web-named": ImageSpec(exposed_ports=["8080/tcp"], user="nginx", cmd=SERVE_ON_PORT, runnable=True),
    "web-port-80": ImageSpec(exposed_ports=["80/tcp"], user="1001", cmd=SERVE_ON_PORT, runnable=True),
    # a process with no port (S10 `process` health check); the manifest's command usually replaces the CMD
    "shell": ImageSpec(user="1001", cmd=["/bin/sh", "-c", "exec sleep 2147483647"], runnable=True),
}


# -- OCI layout --------------------------------------------------------------------------------------------
def _layer() -> tuple[bytes, str]:
    """One small real layer (gzip tar with one file), byte-for-byte reproducible: (gzip bytes, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = b"hello from a wharf test image\n"
        info = tarfile.TarInfo("wharf-test/hello.txt")
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    gz = gzip.compress(tar_bytes, mtime=0)
    return gz, "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


class _Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def json_blob(self, doc: dict[str, Any], media_type: str) -> dict[str, Any]:
        return self.blob(json.dumps(doc, separators=(",", ":")).encode(), media_type)

    def image(self, spec: ImageSpec) -> dict[str, Any]:
        gz, diff_id = busybox_layer() if spec.runnable else _layer()
        layer = self.blob(gz, OCI_LAYER)
        config = self.json_blob(spec.config(diff_id), OCI_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]}
        return self.json_blob(manifest, OCI_MANIFEST)

    def write(self, spec: AnySpec, tag: str) -> None:
        if isinstance(spec, ImageIndexSpec):
            entries = []
            for one in spec.manifests:
                desc = self.image(one)
                plat = {"architecture": one.architecture, "os": one.os}
                if one.variant:
                    plat["variant"] = one.variant
                entries.append({**desc, "platform": plat})
            top = self.json_blob({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, OCI_INDEX)
        else:
            top = self.image(spec)
        top["annotations"] = {"org.opencontainers.image.ref.name": tag}
        (self.root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))


# -- skopeo ------------------------------------------------------------------------------------------------
def _skopeo_home() -> Path:
    """Hermetic skopeo settings: accept-anything policy, empty auth file and registries.conf, so neither the
    machine's /etc/containers nor a developer's ~/.docker/config.json changes what a test sees."""
    home = Path(tempfile.gettempdir()) / f"wharf-skopeo-{os.getuid()}"
    home.mkdir(exist_ok=True)
    files = {
        "policy.json": json.dumps({"default": [{"type": "insecureAcceptAnything"}]}),
        "auth.json": "{}",
        "registries.conf": "",
    }
    for name, text in files.items():
        if not (home / name).exists():
            (home / name).write_text(text)
    return home


def skopeo_env() -> dict[str, str]:
    home = _skopeo_home()
    env = dict(os.environ)
    env["REGISTRY_AUTH_FILE"] = str(home / "auth.json")
    env["CONTAINERS_REGISTRIES_CONF"] = str(home / "registries.conf")
    return env


def skopeo_flags(
    registry: RegistryServer,
    prefix: Literal["", "src-", "dest-"] = "",
    *,
    creds: tuple[str, str] | Literal["default"] | None = "default",
    trust_ca: bool = True,
) -> list[str]:
    """skopeo options to reach `registry`: TLS verification (or not for plain HTTP) and credentials.
    `creds`: default = the registry's test account; None = anonymous; (user, password) = those.
    `trust_ca=False` drops the CA, to show TLS fails without it."""
    flags: list[str] = []
    if not registry.tls:
        flags.append(f"--{prefix}tls-verify=false")
    else:
        flags.append(f"--{prefix}tls-verify=true")
        if trust_ca and registry.cert_dir is not None:
            flags.append(f"--{prefix}cert-dir={registry.cert_dir}")
    if isinstance(creds, str):  # "default"
        creds = (registry.username, registry.password) if registry.username and registry.password else None
    if creds is None:
        flags.append(f"--{prefix}no-creds")
    else:
        flags.append(f"--{prefix}creds={creds[0]}:{creds[1]}")
    return flags


def skopeo(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    home = _skopeo_home()
    cmd = ["skopeo", "--policy", str(home / "policy.json"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=skopeo_env(), timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def inspect_raw(registry: RegistryServer, reference: str, **kw: Any) -> bytes:
    """The manifest (or index) bytes the registry serves for `repo:tag` or `repo@digest`."""
    out = skopeo("inspect", "--raw", *skopeo_flags(registry, **kw), f"docker://{registry.host}/{reference}")
    return out.stdout.encode()


def inspect_config(registry: RegistryServer, reference: str, **kw: Any) -> dict[str, Any]:
    """The image config blob exactly as stored (--raw: skopeo's parsed form drops empty fields such as
    `"User": ""`); for an index, the linux/amd64 manifest's."""
    out = skopeo(
        "inspect",
        "--config",
        "--raw",
        "--override-os=linux",
        "--override-arch=amd64",
        *skopeo_flags(registry, **kw),
        f"docker://{registry.host}/{reference}",
    )
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def push_image(
    registry: RegistryServer,
    repository: str,
    tag: str,
    spec: AnySpec,
    *,
    platforms: Sequence[str] | None = None,
    fmt: Literal["oci", "docker"] = "oci",
) -> str:
    """Push `spec` to `registry` as `repository:tag` with skopeo; return the manifest digest the registry
    serves for it. `platforms=["linux/amd64", "linux/arm64"]` turns one ImageSpec into an index of that spec
    per platform. `fmt="docker"` stores Docker schema 2 media types (what Docker Hub mostly serves) instead of
    OCI. Re-pushing a tag with another spec moves the tag (restage tests)."""
    if platforms is not None:
        if not isinstance(spec, ImageSpec):
            raise TypeError("platforms= needs a single ImageSpec")
        spec = ImageIndexSpec([with_platform(spec, p) for p in platforms])
    with tempfile.TemporaryDirectory(prefix="wharf-oci-") as tmp:
        layout = Path(tmp) / "layout"
        _Layout(layout).write(spec, tag)
        args = ["copy", "--retry-times=2"]
        if isinstance(spec, ImageIndexSpec):
            args.append("--all")  # keep the index and every platform, not just the host's
        if fmt == "docker":
            args.append("--format=v2s2")
        args += skopeo_flags(registry, "dest-")
        skopeo(*args, f"oci:{layout}:{tag}", f"docker://{registry.host}/{repository}:{tag}")
    raw = inspect_raw(registry, f"{repository}:{tag}")
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def push_standard_images(registry: RegistryServer, prefix: str = "std", tag: str = "latest") -> dict[str, str]:
    """Push the whole catalogue as `<prefix>/<name>:<tag>`; return name -> digest."""
    return {name: push_image(registry, f"{prefix}/{name}", tag, spec) for name, spec in STANDARD_IMAGES.items()}
