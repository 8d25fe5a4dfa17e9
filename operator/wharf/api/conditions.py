"""The condition shape of the Kubernetes API conventions, and the types and reasons wharf uses."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ConditionType(StrEnum):
    READY = "Ready"  # the summary kubectl wait, Argo CD and Flux read
    IMAGE_RESOLVED = "ImageResolved"
    INSTANCES_AVAILABLE = "InstancesAvailable"
    RECONCILING = "Reconciling"  # kstatus: work in progress
    STALLED = "Stalled"  # kstatus: cannot progress without a change from someone
    MANIFEST_WARNINGS = "ManifestWarnings"  # keys accepted but ignored (S2) or not enforced


class Reason(StrEnum):
    # Ready / InstancesAvailable
    RUNNING = "Running"
    STARTING = "Starting"
    STOPPED = "Stopped"
    IMAGE_PULL_FAILED = "ImagePullFailed"
    IMAGE_NOT_FOUND = "ImageNotFound"
    IMAGE_PULL_UNAUTHORIZED = "ImagePullUnauthorized"
    REGISTRY_UNAVAILABLE = "RegistryUnavailable"
    CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
    INVALID_IMAGE_NAME = "InvalidImageName"
    CRASHING = "CrashLoopBackOff"
    INSTANCES_FORBIDDEN = "InstancesForbidden"  # a ResourceQuota, LimitRange or admission policy refuses the pods
    INSTANCES_NOT_CREATED = "InstancesNotCreated"  # the ReplicaSet cannot create pods yet, and retries
    UNSCHEDULABLE = "Unschedulable"  # no node has room for the pods
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"  # the Deployment gave up waiting for progress
    # ImageResolved
    RESOLVED = "Resolved"
    RESOLVING = "Resolving"
    INVALID_REFERENCE = "InvalidReference"
    UNAUTHORIZED = "Unauthorized"
    DENIED = "Denied"
    RATE_LIMITED = "RateLimited"
    UNSUPPORTED_REGISTRY = "UnsupportedRegistry"
    CREDENTIALS_MISSING = "CredentialsMissing"
    # Stalled
    INVALID_SPEC = "InvalidSpec"
    NO_START_COMMAND = "NoStartCommand"
    ROOT_USER_REFUSED = "RootUserRefused"
    APPLY_REFUSED = "ApplyRefused"
    ROUTE_CONFLICT = "RouteConflict"  # S19: another namespace owns a route the App asks for
    NAME_CONFLICT = "NameConflict"  # S17: a name wharf would use is taken by an object it did not make
    # Manifest warnings
    IGNORED_KEYS = "IgnoredKeys"
    NOT_ENFORCED = "NotEnforced"
    INSTANCES_OVERRIDDEN = "InstancesOverridden"
    SERVICE_SECRET_MISSING = "ServiceSecretMissing"
    ROUTES_NOT_ROUTED = "RoutesNotRouted"
    OLD_IMAGE = "OldImage"
    NONE = "None"
    # First visit
    PENDING = "Pending"


class Condition(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    last_transition_time: str | None = Field(default=None, alias="lastTransitionTime")
