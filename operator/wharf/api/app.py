"""The App custom resource (`wharf.dev/v1alpha1`): spec and status (S1).

`crds/app.yaml` is the apiserver's view of the same truth; `tests/unit/test_crd_agrees.py` proves they agree.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from wharf.api.conditions import Condition
from wharf.api.image import ImageFacts
from wharf.api.manifest import Manifest
from wharf.config import SHARD_LABEL

GROUP = "wharf.dev"
VERSION = "v1alpha1"
KIND = "App"
PLURAL = "apps"
API_VERSION = f"{GROUP}/{VERSION}"
BUILDPACK_UNKNOWN = "unknown"  # S2: what CF reports for image apps


class State(StrEnum):
    STARTED = "STARTED"
    STOPPED = "STOPPED"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class SecretKeyRef(_Model):
    name: str = Field(max_length=253)
    key: str = Field(default="password", max_length=253)


class LocalObjectReference(_Model):
    name: str = Field(max_length=253)


class AppSpec(_Model):
    docker_image: str | None = Field(default=None, alias="dockerImage", max_length=1024)
    docker_username: str | None = Field(default=None, alias="dockerUsername", max_length=256)
    docker_password_secret_ref: SecretKeyRef | None = Field(default=None, alias="dockerPasswordSecretRef")
    image_pull_secrets: tuple[LocalObjectReference, ...] = Field(default=(), alias="imagePullSecrets", max_length=16)
    state: State = State.STARTED
    ports: tuple[int, ...] | None = Field(default=None, min_length=1, max_length=16)
    restarted_at: str | None = Field(default=None, alias="restartedAt", max_length=64)
    restage: str | None = Field(default=None, max_length=64)
    manifest: Manifest = Field(default_factory=Manifest)

    @model_validator(mode="after")
    def _image_given_once(self) -> AppSpec:
        manifest_image = self.manifest.docker.image if self.manifest.docker else None
        if self.docker_image is None and manifest_image is None:
            raise ValueError("set spec.dockerImage (or manifest.docker.image) to the image to run")
        if self.docker_image and manifest_image and self.docker_image != manifest_image:
            raise ValueError(
                f"spec.dockerImage ({self.docker_image}) and manifest.docker.image ({manifest_image}) differ: keep one"
            )
        manifest_user = self.manifest.docker.username if self.manifest.docker else None
        if self.docker_username and manifest_user and self.docker_username != manifest_user:
            raise ValueError("spec.dockerUsername and manifest.docker.username differ: keep one")
        if (self.docker_username or manifest_user) and self.docker_password_secret_ref is None:
            raise ValueError(
                "dockerUsername (or manifest docker.username) needs dockerPasswordSecretRef: the Secret key holding "
                "the password (cf push read it from CF_DOCKER_PASSWORD)"
            )
        if self.ports is not None and any(not 1 <= p <= 65535 for p in self.ports):
            raise ValueError("spec.ports must be TCP port numbers from 1 to 65535")
        return self

    @property
    def image(self) -> str:
        image = self.docker_image or (self.manifest.docker.image if self.manifest.docker else None)
        assert image is not None  # the validator above guarantees one
        return image

    @property
    def username(self) -> str | None:
        return self.docker_username or (self.manifest.docker.username if self.manifest.docker else None)


class ResolvedImage(ImageFacts):
    """The last good resolution, kept in status so scaling and restarts never need the registry (S13, S14)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    resolved_at: str | None = Field(default=None, alias="resolvedAt")
    restage: str | None = Field(default=None, description="spec.restage token this resolution answered")


class ProcessStatus(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    type: str
    desired: int = 0
    ready: int = 0
    available: int = 0


class AppStatus(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    conditions: list[Condition] = Field(default_factory=list)
    buildpack: str = BUILDPACK_UNKNOWN
    image: ResolvedImage | None = None
    port: int | None = None
    ports: list[int] = Field(default_factory=list)
    run_as_user: int | None = Field(default=None, alias="runAsUser")
    run_as_note: str | None = Field(default=None, alias="runAsNote")  # S7: why that uid, said plainly
    instances: str | None = None
    ready_instances: int | None = Field(default=None, alias="readyInstances")
    # The web pods' label selector: the scale subresource's labelSelectorPath, which a HorizontalPodAutoscaler
    # targeting the App needs ("selector is required" without it).
    selector: str | None = None
    processes: list[ProcessStatus] = Field(default_factory=list)
    routes: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class App(BaseModel):
    """An App as the operator sees it: identity plus the parsed spec."""

    model_config = ConfigDict(frozen=True)

    name: str
    namespace: str
    uid: str
    generation: int = 1
    shard: str = ""  # its SHARD_LABEL, copied onto what it owns
    spec: AppSpec

    @classmethod
    def from_resource(cls, body: dict[str, Any]) -> App:
        meta = body.get("metadata", {})
        return cls(
            name=meta["name"],
            namespace=meta.get("namespace", "default"),
            uid=meta.get("uid", ""),
            generation=meta.get("generation", 1),
            shard=(meta.get("labels") or {}).get(SHARD_LABEL, ""),
            spec=AppSpec.model_validate(body.get("spec", {})),
        )

    @property
    def app_name(self) -> str:
        """The CF application name: the manifest's `name`, else the resource name."""
        return self.spec.manifest.name or self.name
